"""The operator API: request, list, read, approve and cancel remediations.

Operator credentials only (the Alertmanager credential gets 403); a Kubernetes identity
is authorized per action by SubjectAccessReview (`webhook.api.common.operator`). Reads come from the
watch-fed cache; writes go through the same policy and writer as alerts do, so an
operator cannot bypass pause, storm protection, rate limit or cooldown.

Status codes: 201 a remediation was started; 200 the request changed nothing new
(already active, already approved) or was carried out (approve, cancel); 404 no such
remediation; 409 policy or the remediation's state refuses it (body has `reason`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from core.kube import JSON
from core.remediation import Phase
from webhook.api.common import Verb, authenticate, authorize, json_body, operator
from webhook.auth import Role
from webhook.decisions import Context
from webhook.policy import Outcome, Reason, Request, Source, Verdict
from webhook.policy.decide import valid_node_name
from webhook.records import MAX_TEXT, Trigger, summary
from webhook.services import ApiProblem, services

bp = Blueprint("remediations", __name__)
PHASES = tuple(str(p) for p in Phase)  # the `phase` query's enum in /openapi.json
BASE = "/api/v1/remediations"


def _fields(data: Any, allowed: dict[str, type]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiProblem(400, "expected a JSON object", field="(body)")
    for key, value in data.items():
        if key not in allowed:
            raise ApiProblem(400, f"unknown field {str(key)[:64]!r}", field=str(key)[:64])
        if not isinstance(value, allowed[key]) or (
            allowed[key] is not bool and isinstance(value, bool)
        ):
            raise ApiProblem(400, f"expected {allowed[key].__name__}", field=key)
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ApiProblem(400, f"longer than {MAX_TEXT} characters", field=key)
    return data


def _answer(verdict: Verdict, obj: JSON | None, ok_code: int = 200) -> ResponseReturnValue:
    body = {
        "outcome": str(verdict.outcome),
        "reason": str(verdict.reason),
        "message": verdict.message,
    }
    if verdict.outcome is Outcome.REJECTED:
        code = 404 if verdict.reason is Reason.NO_REMEDIATION else 409
        if verdict.reason is Reason.API_ERROR:
            code = 502
        raise ApiProblem(
            code, verdict.message, outcome=str(verdict.outcome), reason=str(verdict.reason)
        )
    return jsonify({**body, "remediation": obj}), ok_code


@bp.post(BASE)
def request_remediation() -> ResponseReturnValue:
    identity = authenticate(Role.OPERATOR)
    data = _fields(
        json_body(required=True), {"node": str, "reason": str, "dryRun": bool, "force": bool}
    )
    node = data.get("node")
    if not node:
        raise ApiProblem(400, "required", field="node")
    if not valid_node_name(node):
        raise ApiProblem(
            400, "not a valid node name", field="node", reason=str(Reason.INVALID_NODE_NAME)
        )
    identity = authorize(identity, Verb.CREATE, node)
    svc = services()
    svc.require_synced()
    reason = data.get("reason") or "requested through the operator API"
    trigger = Trigger(
        source=Source.OPERATOR,
        received_at=svc.clock.now(),
        requested_by=identity.name,
        reason=reason,
    )
    ctx = Context(source=str(Source.OPERATOR), action="Remediate", actor=identity.name)
    verdict, obj = svc.actions.start(
        Request(
            Source.OPERATOR, node, dry_run=bool(data.get("dryRun")), force=bool(data.get("force"))
        ),
        trigger,
        None,
        ctx,
    )
    return _answer(verdict, obj, 201 if verdict.outcome is Outcome.ACCEPTED else 200)


@bp.get(BASE)
def list_remediations() -> ResponseReturnValue:
    operator(Verb.LIST)
    svc = services()
    svc.require_synced()
    unknown = sorted(set(request.args) - {"phase"})
    if unknown:
        raise ApiProblem(400, f"unknown query parameter {unknown[0][:64]!r}", field=unknown[0][:64])
    phase = request.args.get("phase")
    if phase is not None and phase not in PHASES:
        raise ApiProblem(400, f"phase must be one of {', '.join(PHASES)}", field="phase")
    items = [summary(obj) for obj in svc.cache.remediations()]
    if phase:
        items = [i for i in items if i["phase"] == phase]
    return jsonify({"items": items})


@bp.get(f"{BASE}/<node>")
def get_remediation(node: str) -> ResponseReturnValue:
    operator(Verb.GET, node[:253])
    svc = services()
    svc.require_synced()
    obj = svc.cache.remediation(node)
    if obj is None:
        raise ApiProblem(404, f"no remediation of {node[:253]}", reason=str(Reason.NO_REMEDIATION))
    return jsonify({"summary": summary(obj), "remediation": obj})


@bp.post(f"{BASE}/<node>/approve")
def approve(node: str) -> ResponseReturnValue:
    identity = operator(Verb.APPROVE, node[:253])
    _fields(json_body(required=False), {})
    svc = services()
    ctx = Context(source=str(Source.OPERATOR), action="Approve", actor=identity.name)
    verdict, obj = svc.actions.approve(_known(node), identity.name, ctx)
    return _answer(verdict, obj)


@bp.post(f"{BASE}/<node>/cancel")
def cancel(node: str) -> ResponseReturnValue:
    identity = operator(Verb.CANCEL, node[:253])
    data = _fields(json_body(required=False), {"reason": str})
    svc = services()
    ctx = Context(source=str(Source.OPERATOR), action="Cancel", actor=identity.name)
    verdict, obj = svc.actions.cancel(_known(node), identity.name, data.get("reason", ""), ctx)
    return _answer(verdict, obj)


def _known(node: str) -> str:
    if not valid_node_name(node):
        raise ApiProblem(404, "no remediation by that name", reason=str(Reason.NO_REMEDIATION))
    return node
