"""Request helpers shared by the blueprints: authentication by role and JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from flask import Request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from webhook.auth import AuthError, Identity, Role
from webhook.services import ApiProblem, services


def authenticate(role: Role) -> Identity:
    """The caller's identity if it holds `role`: 401 without valid credentials, 403 with
    a valid credential of the other role (Alertmanager's only posts alerts)."""
    svc = services()
    try:
        identity = svc.credentials.identify(request.headers.get("Authorization"))
    except AuthError as exc:
        reason = "missing" if "missing" in str(exc) else "invalid"
        svc.metrics.auth_failures.labels(reason).inc()
        problem = ApiProblem(401, f"authentication required: {exc}", reason="Unauthorized")
        problem.headers["WWW-Authenticate"] = ", ".join(
            f'{scheme} realm="nodewarden"' for scheme in svc.credentials.schemes
        )
        raise problem from None
    if svc.credentials.open:
        return Identity(role, "anonymous")
    if identity.role is not role:
        svc.metrics.auth_failures.labels("forbidden").inc()
        raise ApiProblem(403, f"this credential may not call {request.path}", reason="Forbidden")
    return identity


def json_body(required: bool) -> Any:
    """The request's JSON body: 415 if it is not JSON, 400 if it does not parse, 413 if
    it is larger than the limit (enforced while reading). An absent body is None when
    not required."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    mimetype = req.mimetype or ""
    is_json = mimetype == "application/json" or mimetype.endswith("+json")
    if required and not is_json:
        raise _unsupported()
    data = _read_body(req)
    if not data and not required:
        return None
    if not is_json:
        raise _unsupported()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ApiProblem(
            400, f"the body is not valid JSON: {str(exc)[:120]}", field="(body)"
        ) from None


def _read_body(req: Request) -> bytes:
    """The body, at most MAX_CONTENT_LENGTH bytes (413 beyond). Werkzeug enforces the
    limit on a declared Content-Length but silently truncates a chunked body at it, so
    a chunked body is read here, one byte past the limit to tell the two apart."""
    if req.content_length is not None or "wsgi.input_terminated" not in req.environ:
        return req.get_data(cache=False)
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    stream = req.environ["wsgi.input"]
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(65536, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RequestEntityTooLarge()


def _unsupported() -> ApiProblem:
    return ApiProblem(415, "expected Content-Type: application/json", reason="UnsupportedMediaType")
