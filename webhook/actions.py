"""What the webhook does about one node: start, resolve, cancel, approve.

Each action decides on the cached view (`Decisions`), writes through the
`RemediationWriter`, and reports the final verdict once. When a write finds the stored
object different from the cache (409), the action refreshes and decides again, so two
replicas, two Alertmanagers or a redelivery never start a second remediation. A start
that is not a dry run first takes a slot in the shared rate-limit ledger
(`webhook.ledger`), so `maxRemediations` holds across threads, workers and replicas.

`core.kube.Unavailable` propagates (the HTTP layer answers 503 so Alertmanager retries);
any other API error becomes a rejected verdict with reason `ApiError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.kube import JSON, AlreadyExists, Conflict, KubeError, Unavailable
from webhook.cache import ClusterCache
from webhook.decisions import Context, Decisions
from webhook.ledger import RateLedger
from webhook.policy import (
    ExistingFacts,
    Outcome,
    Reason,
    Request,
    Verdict,
    decide_approve,
    decide_cancel,
    decide_resolved,
)
from webhook.records import AlertEntry, Trigger
from webhook.writer import RemediationWriter

log = logging.getLogger(__name__)
START_ATTEMPTS = 3


def _dry_run(verdict: Verdict) -> bool:
    return verdict.plan is not None and verdict.plan.dry_run


def api_error(exc: KubeError) -> Verdict:
    return Verdict(Outcome.REJECTED, Reason.API_ERROR, f"the API server refused: {exc}"[:300])


class Actions:
    def __init__(
        self,
        decisions: Decisions,
        writer: RemediationWriter,
        cache: ClusterCache,
        ledger: RateLedger | None = None,
    ) -> None:
        self.decisions = decisions
        self.writer = writer
        self.cache = cache
        self.ledger = ledger

    def start(
        self, request: Request, trigger: Trigger, alert: AlertEntry | None, ctx: Context
    ) -> tuple[Verdict, JSON | None]:
        """Start remediating `request.node` if policy allows; record repeats."""
        return self._reported(request.node, ctx, lambda: self._start(request, trigger, alert))

    def _start(
        self, request: Request, trigger: Trigger, alert: AlertEntry | None
    ) -> tuple[Verdict, JSON | None]:
        verdict, decided_on = self.decisions.firing(request)
        reserved = False
        for _ in range(START_ATTEMPTS):
            if verdict.outcome is Outcome.DUPLICATE:
                if alert is not None:
                    self.writer.record_alert(request.node, alert)
                return verdict, self.cache.remediation(request.node)
            if verdict.outcome is not Outcome.ACCEPTED:
                return verdict, None
            if self.ledger is not None and not reserved and not _dry_run(verdict):
                refused = self.ledger.reserve(request.node, self.decisions.policy)
                if refused is not None:
                    return refused, None
                reserved = True  # kept even if the create below loses: one start fewer
            try:
                # Only the object this verdict was taken on may be replaced: one a
                # concurrent delivery created meanwhile is active, and the writer's
                # preconditions would not notice (it is unchanged since it was cached).
                obj = self.writer.create(request.node, verdict, trigger, alert, decided_on)
                return verdict, obj
            except (AlreadyExists, Conflict):
                # Someone else wrote first: take the stored object and decide again.
                self.writer.refresh(request.node)
            verdict, decided_on = self.decisions.firing(request)
        raise Conflict(409, "Conflict", f"remediation of {request.node} kept changing")

    def resolve(self, node: str, alert: AlertEntry, ctx: Context) -> tuple[Verdict, JSON | None]:
        """A resolved alert: cancel before any fence order, else record."""

        def decide(facts: ExistingFacts | None) -> Verdict:
            return decide_resolved(node, alert.fingerprint, alert.starts_at, facts)

        def act() -> tuple[Verdict, JSON | None]:
            _, existing, _ = self.cache.facts(node)
            verdict, obj = decide(existing), self.cache.remediation(node)
            if verdict.outcome is Outcome.CANCELLED:
                verdict, obj = self.writer.cancel(
                    node, decide, "alertmanager", f"alert {alert.alert_name} resolved", alert
                )
            if verdict.outcome is Outcome.RECORDED:
                obj = self.writer.record_alert(node, alert) or self.cache.remediation(node)
            return verdict, obj

        return self._reported(node, ctx, act)

    def cancel(self, node: str, by: str, reason: str, ctx: Context) -> tuple[Verdict, JSON | None]:
        return self._reported(node, ctx, lambda: self.writer.cancel(
            node, lambda facts: decide_cancel(node, facts), by, reason or "cancelled by an operator"))

    def approve(self, node: str, by: str, ctx: Context) -> tuple[Verdict, JSON | None]:
        return self._reported(node, ctx, lambda: self.writer.approve(
            node, lambda facts: decide_approve(node, facts, by), by))

    def _reported(
        self, node: str, ctx: Context, act: Callable[[], tuple[Verdict, JSON | None]]
    ) -> tuple[Verdict, JSON | None]:
        """Run an action and report its verdict once. `Unavailable` propagates (503, so
        Alertmanager retries); any other API error is the verdict `ApiError`."""
        try:
            verdict, obj = act()
        except Unavailable:
            raise
        except KubeError as exc:
            log.warning("remediation of %s: the API server refused: %s", node, exc)
            verdict, obj = api_error(exc), None
        self.decisions.report(verdict, node, ctx, obj)
        return verdict, obj
