"""Alertmanager intake: one webhook message in, one outcome per alert out.

Alerts are handled in order, each independently: an alert that is not ours (another
alert name, no node label) or not valid (`InvalidAlert`, with the offending `field`) is
`rejected` with its reason and the others still count. A
firing alert starts a remediation or is recorded on the existing one (`duplicate`); a
resolved alert may cancel one that has not ordered a fence yet (`cancelled`), is
otherwise `recorded` or `ignored`. Several alerts about one node in one message are
naturally idempotent: the first one's write is in the cache before the second is decided.
"""

from __future__ import annotations

from core.clock import Clock
from core.kube import JSON
from webhook.actions import Actions
from webhook.decisions import Context, Decisions
from webhook.metrics import WebhookMetrics
from webhook.payload import Alert, InvalidAlert, Message
from webhook.policy import Outcome, Policy, Reason, Request, Source, Verdict, alert_target
from webhook.records import AlertEntry, Trigger


class AlertIntake:
    def __init__(
        self,
        actions: Actions,
        decisions: Decisions,
        policy: Policy,
        clock: Clock,
        metrics: WebhookMetrics,
    ) -> None:
        self.actions = actions
        self.decisions = decisions
        self.policy = policy
        self.clock = clock
        self.metrics = metrics

    def handle(self, message: Message) -> list[JSON]:
        return [self._one(i, alert) for i, alert in enumerate(message.alerts)]

    def _one(self, index: int, alert: Alert | InvalidAlert) -> JSON:
        if isinstance(alert, InvalidAlert):
            return self._invalid(alert)
        self.metrics.child(self.metrics.alerts_received, alert.status).inc()
        result: JSON = {
            "index": index,
            "alertname": alert.name,
            "status": alert.status,
            "fingerprint": alert.fingerprint,
        }
        ctx = Context(
            source=str(Source.ALERTMANAGER),
            action="Remediate" if alert.firing else "Cancel",
            alert_name=alert.name,
            fingerprint=alert.fingerprint,
            alert_status=alert.status,
        )
        target = alert_target(alert.name, alert.labels, self.policy)
        if isinstance(target, Verdict):
            self.decisions.report(target, None, ctx)
            return {**result, "node": None, **_outcome(target, None)}
        node, now = target, self.clock.now()
        entry = AlertEntry(alert.name, alert.fingerprint, alert.status, alert.starts_at, now)
        if alert.firing:
            trigger = Trigger(
                source=Source.ALERTMANAGER,
                received_at=now,
                alert_name=alert.name,
                fingerprint=alert.fingerprint,
                starts_at=alert.starts_at,
            )
            verdict, obj = self.actions.start(
                Request(Source.ALERTMANAGER, node), trigger, entry, ctx
            )
        else:
            verdict, obj = self.actions.resolve(node, entry, ctx)
        return {**result, "node": node, **_outcome(verdict, obj)}


    def _invalid(self, alert: InvalidAlert) -> JSON:
        verdict = Verdict(
            Outcome.REJECTED, Reason.INVALID_ALERT, f"invalid alert: {alert.field}: {alert.message}"
        )
        ctx = Context(
            source=str(Source.ALERTMANAGER),
            action="RecordAlert",
            alert_name=alert.name,
            alert_status=alert.status,
        )
        self.decisions.report(verdict, None, ctx)
        return {
            "index": alert.index,
            "alertname": alert.name,
            "status": alert.status,
            "fingerprint": "",
            "node": None,
            **_outcome(verdict, None),
            "field": alert.field,
        }


def _outcome(verdict: Verdict, obj: JSON | None) -> JSON:
    out: JSON = {
        "outcome": str(verdict.outcome),
        "reason": str(verdict.reason),
        "message": verdict.message,
    }
    if obj:
        meta = obj.get("metadata") or {}
        out["remediation"] = {
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "phase": (obj.get("status") or {}).get("phase"),
        }
    return out
