"""Decisions about one node: facts from the cache in, a `Verdict` out, and every verdict
reported three ways — one structured log line with its reason, a metric
(`nodewarden_webhook_decisions_total{verdict,reason}`) and a Kubernetes Event on the
Node (for verdicts about a named node).

The metric counts every decision. Identical decisions (every field of the line the same:
Alertmanager redelivering one alert, an HA pair's second copy, a repeat) are logged once
per `log_window_s`: the first line goes out at once, the rest of the window is folded, and
the next identical line after the window says how many were folded (`"folded": N`). Events
are deduplicated the same way by the recorder. Without it, a redelivery storm writes a line
per alert for nothing new, and the line is a large part of answering a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from core import names
from core.clock import Clock
from core.events import EventRecorder, NodeEvent
from core.kube import JSON
from core.recent import RecentKeys
from webhook.cache import ClusterCache
from webhook.metrics import WebhookMetrics
from webhook.policy import Outcome, Policy, Request, Verdict, decide_firing

log = logging.getLogger("webhook.decision")

_WARNING = {Outcome.REJECTED}


@dataclass(frozen=True)
class Context:
    """Where a decision came from, for its log line and Event."""

    source: str  # alertmanager | operator
    action: str  # Remediate | Cancel | Approve | RecordAlert
    actor: str = ""
    alert_name: str = ""
    fingerprint: str = ""
    alert_status: str = ""


def object_ref(obj: JSON | None) -> JSON | None:
    if not obj:
        return None
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }


class Decisions:
    def __init__(
        self,
        cache: ClusterCache,
        policy: Policy,
        clock: Clock,
        recorder: EventRecorder,
        metrics: WebhookMetrics,
        log_window_s: float = 60.0,
    ) -> None:
        self.cache = cache
        self.policy = policy
        self.clock = clock
        self.recorder = recorder
        self.metrics = metrics
        self.lines = LineFolder(log_window_s)

    def firing(self, request: Request) -> tuple[Verdict, JSON | None]:
        """The verdict on a firing alert, and the cached remediation it was decided on."""
        (node, existing, cluster), obj = self.cache.facts_and_remediation(request.node)
        verdict = decide_firing(request, node, existing, cluster, self.policy, self.clock.now())
        return verdict, obj

    def report(
        self, verdict: Verdict, node: str | None, ctx: Context, obj: JSON | None = None,
        once: str = "",
    ) -> None:
        """Log, count and (when about a node) publish an Event for `verdict`. `once`: a
        key that every webhook process seeing the same thing derives alike (a refused
        annotation value): only the process whose Event named after it is created first
        reports; the others say nothing (`EventRecorder.claim`)."""
        event = None
        if node:
            event = NodeEvent(
                node=node,
                node_uid=self.cache.node_uid(node),
                type="Warning" if verdict.outcome in _WARNING else "Normal",
                reason=str(verdict.reason),
                action=ctx.action,
                note=_note(verdict, ctx),
                related=object_ref(obj),
                name=once_name(node, once) if once else "",
            )
            if once and not self.recorder.claim(event):
                return
        self.metrics.child(self.metrics.decisions, verdict.outcome, verdict.reason).inc()
        self.metrics.last_decision.set(self.clock.now())
        fields: dict[str, Any] = {
            "node": node,
            "verdict": str(verdict.outcome),
            "reason": str(verdict.reason),
            "message": verdict.message,
            "source": ctx.source,
            "action": ctx.action,
        }
        if ctx.actor:
            fields["actor"] = ctx.actor
        if ctx.alert_name:
            fields.update(
                alert=ctx.alert_name, fingerprint=ctx.fingerprint, alertStatus=ctx.alert_status
            )
        if verdict.plan:
            fields.update(
                group=verdict.plan.group,
                strategy=str(verdict.plan.strategy),
                dryRun=verdict.plan.dry_run,
                approvalRequired=verdict.plan.approval_required,
            )
        folded = self.lines.admit(fields, self.clock.monotonic())
        if folded is not None:
            if folded:
                fields["folded"] = folded
            log.info("decision", extra={"fields": fields})
        if event is not None and not once:
            self.recorder.record(event)
        self.metrics.set_event_queue(self.recorder.pending())


def once_name(node: str, key: str) -> str:
    """The fixed Event name for what `key` names about `node` (a valid object name)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{node[:200]}.nw-{digest}"


class LineFolder:
    """Lets one of identical lines through per window. `admit` returns None for a line to
    fold, else how many identical lines were folded since the last one went out. At most
    `LIMIT` distinct lines are remembered, at O(1) per line (`core.recent.RecentKeys`)."""

    LIMIT = 10_000

    def __init__(self, window_s: float, limit: int = LIMIT) -> None:
        self.window_s = window_s
        self._recent: RecentKeys[tuple[tuple[str, Any], ...]] = RecentKeys(window_s, limit)

    def __len__(self) -> int:
        return len(self._recent)

    def admit(self, fields: dict[str, Any], now: float) -> int | None:
        if self.window_s <= 0:
            return 0
        return self._recent.admit(tuple(sorted(fields.items())), now)


def _note(verdict: Verdict, ctx: Context) -> str:
    who = f"{ctx.alert_name} ({ctx.alert_status})" if ctx.alert_name else ctx.source
    if ctx.actor and not ctx.alert_name:
        who = f"{who} {ctx.actor}"  # the authenticated operator: "[operator alice]"
    return f"{verdict.outcome}: {verdict.message} [{who}]"
