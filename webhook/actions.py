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
import threading
from collections import OrderedDict
from collections.abc import Callable

from core.kube import JSON, AlreadyExists, Conflict, KubeError, NotFound, Unavailable
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
READ_AGAIN_S = 10.0  # a node the cache shows Ready is read live at most this often
READS_PER_S = 20  # and all such reads together at most this often
MAX_READ_NODES = 10_000  # nodes whose last live read is remembered


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
        read_node: Callable[[str], JSON] | None = None,
    ) -> None:
        self.read_node = read_node
        self._last_read: OrderedDict[str, float] = OrderedDict()  # node -> last live read
        self._reads_this_second = (0, 0)
        self._reads_lock = threading.Lock()
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
        if verdict.reason is Reason.NODE_READY and self.read_node is not None:
            verdict, decided_on = self._confirm_ready(request, verdict, decided_on)
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

    def _confirm_ready(
        self, request: Request, verdict: Verdict, decided_on: JSON | None
    ) -> tuple[Verdict, JSON | None]:
        """A NodeReady rejection is final for Alertmanager (it sends again only after its
        repeat_interval), and the watch may not have brought the node's NotReady yet: read
        the Node from the API server and decide again. An unreachable API server raises
        Unavailable (503), so Alertmanager retries rather than the alert being lost."""
        assert self.read_node is not None
        if not self._may_read(request.node):
            return verdict, decided_on
        try:
            obj = self.read_node(request.node)
        except NotFound:
            self._read_done(request.node)
            return verdict, decided_on
        except Unavailable:
            raise
        except KubeError as exc:  # e.g. a role without `get nodes`: the cache's word stands
            log.warning("could not read node %s to confirm it is Ready: %s", request.node, exc)
            return verdict, decided_on
        self._read_done(request.node)
        self.cache.upsert_node(obj)
        again, obj_decided_on = self.decisions.firing(request)
        if again.reason is not Reason.NODE_READY:
            log.info("the cache had not seen %s leave Ready yet; the API server's copy did: %s",
                     request.node, again.reason)
        return again, obj_decided_on

    def _may_read(self, node: str) -> bool:
        """A live read per node per READ_AGAIN_S once one succeeded, and at most
        READS_PER_S in all: alerts for Ready nodes (a mistaken rule, a flood with the
        Alertmanager token) cannot turn into as many reads of the API server."""
        now = self.decisions.clock.now()
        with self._reads_lock:
            second, reads = self._reads_this_second
            if int(now) != second:
                second, reads = int(now), 0
            last = self._last_read.get(node)
            if reads >= READS_PER_S or (last is not None and now - last < READ_AGAIN_S):
                return False
            self._reads_this_second = (second, reads + 1)
            return True

    def _read_done(self, node: str) -> None:
        with self._reads_lock:
            self._last_read.pop(node, None)
            self._last_read[node] = self.decisions.clock.now()
            while len(self._last_read) > MAX_READ_NODES:
                self._last_read.popitem(last=False)

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
