"""Operations endpoints, unauthenticated: `/healthz` (the process answers), `/readyz`
(the API server answers and the cluster view is synced), `/metrics` (Prometheus text,
all gunicorn workers merged) and `/openapi.json` (the checked-in API description)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from core.kube import KubeError
from webhook.metrics import exposition
from webhook.services import services

bp = Blueprint("ops", __name__)
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"
PING_CACHE_S = 1.0


@cache
def openapi_document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return doc


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    svc = services()
    now = svc.clock.monotonic()
    reachable, detail = True, "ok"
    if svc.reachable_at < 0 or now - svc.reachable_at > PING_CACHE_S:
        try:
            svc.kube.ping()
            svc.reachable_at = now
        except KubeError as exc:
            reachable, detail = False, str(exc)[:200]
    synced = svc.cache.synced()
    checks = {"apiServer": detail, "cache": "synced" if synced else "not synced"}
    ready = reachable and synced
    return jsonify(
        {"status": "ok" if ready else "not ready", "checks": checks}
    ), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    svc = services()
    body, content_type = exposition(
        svc.metrics,
        svc.state_collector,
        before=lambda: svc.metrics.set_event_queue(svc.recorder.pending(), always=True),
    )
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())
