"""The order desk: every order, from the API, a peer or a direct delivery, comes here.

It verifies the order (`core.fence_order.verify_order`: signature, node, validity window,
boot), then carries it out exactly once:

- `fence`: begin the fence and answer with the acknowledgement (last feed time and
  watchdog timeout). Delivering the same or another fence order again answers the same
  acknowledgement.
- `restart-kubelet`: run the configured command in the background; the first delivery
  answers `KubeletRestartRunning`, later deliveries of the same order answer its result.
  Refused while a fence is under way.
- an order for an earlier boot: `AlreadyRebooted`, and nothing else happens.

Each distinct (order, outcome) is logged once, so an order left in the API does not
flood the log at every check.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from core.clock import Clock
from core.fence_order import (
    Action,
    FenceOrder,
    OrderKey,
    Rejection,
    RejectReason,
    decode_order,
    verify_order,
)
from core.peer_client import OrderAnswer, OrderOutcome
from node_agent.boot import BootIdentity
from node_agent.commands import CommandResult, CommandRunner
from node_agent.fencing import FenceMethod, Fencer
from node_agent.isolation import OrderSource, order_reason
from node_agent.metrics import AgentMetrics

log = logging.getLogger(__name__)
_SEEN_LIMIT = 256


class OrderDesk:
    def __init__(
        self,
        *,
        node: str,
        public_keys: list[OrderKey],
        boot: BootIdentity,
        clock: Clock,
        fencer: Fencer,
        metrics: AgentMetrics,
        max_clock_skew_s: float,
        runner: CommandRunner,
        kubelet_restart_command: str,
        kubelet_restart_timeout_s: float,
    ) -> None:
        self._node = node
        self._keys = public_keys
        self._boot = boot
        self._clock = clock
        self._fencer = fencer
        self._metrics = metrics
        self._skew = max_clock_skew_s
        self._runner = runner
        self._restart_command = kubelet_restart_command
        self._restart_timeout_s = kubelet_restart_timeout_s
        self._lock = threading.Lock()
        self._fence_source: OrderSource | None = None
        self._restarts: dict[tuple[str, str], CommandResult | None] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.restart_threads: list[threading.Thread] = []

    @property
    def fence_source(self) -> OrderSource | None:
        """Where the fence order that was accepted came from (None: none accepted)."""
        return self._fence_source

    def verify(self, token: str) -> FenceOrder | Rejection:
        boot_id = self._boot.boot_id
        return verify_order(
            token,
            public_keys=self._keys,
            node=self._node,
            now=self._clock.now(),
            boot_id=boot_id or "",
            boot_time=self._boot.boot_time,
            max_clock_skew_s=self._skew,
        )

    def submit(self, token: str, source: OrderSource) -> OrderAnswer:
        if self._boot.boot_id is None:
            answer = self._answer(
                OrderOutcome.NOT_READY, "BootUnknown", "this agent does not know its boot yet"
            )
            return self._done(token, source, _action_of(token), answer)
        verdict = self.verify(token)
        if isinstance(verdict, Rejection):
            action = _action_of(token)
            if verdict.reason is RejectReason.STALE_BOOT:
                answer = self._answer(OrderOutcome.ALREADY_REBOOTED, str(verdict.reason), verdict.detail)
            else:
                answer = self._answer(OrderOutcome.REJECTED, str(verdict.reason), verdict.detail)
            return self._done(token, source, action, answer)
        order = verdict
        if order.action is Action.FENCE:
            answer = self._fence(order, source)
        else:
            answer = self._restart_kubelet(order)
        return self._done(token, source, str(order.action), answer)

    def _fence(self, order: FenceOrder, source: OrderSource) -> OrderAnswer:
        if not self._fencer.can_fence() and self._fencer.record is None:
            return self._answer(
                OrderOutcome.CANNOT_FENCE, "NoWatchdog", "no watchdog and no reboot fallback"
            )
        with self._lock:
            if self._fence_source is None:
                self._fence_source = source
        record = self._fencer.begin(str(order_reason(source)), order)
        if record.method is FenceMethod.NONE:
            return self._answer(
                OrderOutcome.CANNOT_FENCE, "NoWatchdog", "the watchdog could not be armed"
            )
        return OrderAnswer(
            node=self._node,
            answered_by=self._node,
            outcome=OrderOutcome.FENCING,
            detail=f"fence began ({record.trigger}); the watchdog is never fed again",
            acknowledgement=self._fencer.acknowledgement(order),
        )

    def _restart_kubelet(self, order: FenceOrder) -> OrderAnswer:
        if self._fencer.record is not None:
            return self._answer(OrderOutcome.REJECTED, FENCE_UNDER_WAY, "a fence is under way")
        key = (order.remediation_uid, order.nonce)
        with self._lock:
            known = key in self._restarts
            result = self._restarts.get(key)
            if not known:
                self._restarts[key] = None
                thread = threading.Thread(
                    target=self._run_restart, args=(key,), name="kubelet-restart", daemon=True
                )
                self.restart_threads.append(thread)
                thread.start()
        if result is None:
            return self._answer(OrderOutcome.KUBELET_RESTART_RUNNING, None, self._restart_command)
        outcome = (
            OrderOutcome.KUBELET_RESTART_SUCCEEDED if result.ok else OrderOutcome.KUBELET_RESTART_FAILED
        )
        return self._answer(outcome, None, result.describe())

    def _run_restart(self, key: tuple[str, str]) -> None:
        log.warning("restarting the kubelet for remediation %s: %s", key[0], self._restart_command)
        result = self._runner(self._restart_command, self._restart_timeout_s)
        with self._lock:
            self._restarts[key] = result
        self._metrics.kubelet_restarts.labels(result="ok" if result.ok else "failed").inc()
        log.warning("kubelet restart for remediation %s: %s", key[0], result.describe())

    def _answer(self, outcome: OrderOutcome, reason: str | None, detail: str) -> OrderAnswer:
        return OrderAnswer(
            node=self._node, answered_by=self._node, outcome=outcome, reason=reason, detail=detail
        )

    def _done(self, token: str, source: OrderSource, action: str, answer: OrderAnswer) -> OrderAnswer:
        self._metrics.orders.labels(action=action, source=str(source), outcome=str(answer.outcome)).inc()
        key = (token[-24:], str(answer.outcome))
        with self._lock:
            first = key not in self._seen
            self._seen[key] = None
            while len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
        if first:
            log.info(
                "order via %s: action=%s outcome=%s reason=%s %s",
                source,
                action,
                answer.outcome,
                answer.reason,
                answer.detail,
            )
        return answer


# Rejections that say nothing against this node's running: the order is void (expired) or
# was for an earlier boot. Any other rejection of a relayed fence order, and "cannot fence",
# is a refusal (isolation row 13).
# A restart-kubelet order refused because a fence is under way: the reason names the
# outcome of the order this agent is carrying out.
FENCE_UNDER_WAY = str(OrderOutcome.FENCING)
_NOT_REFUSALS = frozenset({str(RejectReason.EXPIRED), str(RejectReason.STALE_BOOT)})


def refused(answer: OrderAnswer | None) -> bool:
    """Did this agent refuse a fence order (not take it, though it is current)?"""
    if answer is None:
        return False
    if answer.outcome is OrderOutcome.CANNOT_FENCE:
        return True
    return answer.outcome is OrderOutcome.REJECTED and answer.reason not in _NOT_REFUSALS and answer.reason != FENCE_UNDER_WAY


def _action_of(token: str) -> str:
    decoded = decode_order(token)
    return str(decoded.action) if isinstance(decoded, FenceOrder) else "unknown"
