"""`POST /api/v1/alerts`: Alertmanager's webhook receiver (payload version "4").

200 with one outcome per alert whenever the message was valid, whatever the verdicts
(Alertmanager must not retry a decision); 400 naming the bad field, 401/403, 413, 415
are final too. An invalid alert inside a valid message is rejected alone: the others are
handled, and the answer is a 400 naming the first bad alert's field that still carries
every alert's outcome (`alerts`, `summary`), so nothing handled is retried or hidden. Only an unreachable API server (or a cluster view not yet synced)
answers 503, which Alertmanager retries; every step is idempotent, so a retried message
changes nothing that was already done.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from webhook.api.common import authenticate, json_body
from webhook.auth import Role
from webhook.payload import PayloadError, parse_message
from webhook.services import ApiProblem, services

bp = Blueprint("alerts", __name__)


@bp.post("/api/v1/alerts")
def post_alerts() -> ResponseReturnValue:
    svc = services()
    authenticate(Role.ALERTMANAGER)
    try:
        data = json_body(required=True)
        message = parse_message(data)
    except PayloadError as exc:
        svc.metrics.invalid_payloads.labels("400").inc()
        raise ApiProblem(400, f"invalid payload: {exc.message}", field=exc.field) from None
    except ApiProblem as exc:
        svc.metrics.invalid_payloads.labels(str(exc.code)).inc()
        raise
    except RequestEntityTooLarge:
        svc.metrics.invalid_payloads.labels("413").inc()
        raise
    svc.require_synced()
    results = svc.intake.handle(message)
    counts: dict[str, int] = {}
    for result in results:
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    body = {
        "receiver": message.receiver,
        "groupKey": message.group_key,
        "truncatedAlerts": message.truncated_alerts,
        "summary": counts,
        "alerts": results,
    }
    invalid = message.invalid
    if invalid:
        svc.metrics.invalid_payloads.labels("400").inc()
        first = invalid[0]
        raise ApiProblem(
            400,
            f"invalid payload: {first.message} ({len(invalid)} of {len(results)} alerts invalid)",
            field=first.field,
            **body,
        )
    return jsonify(body)
