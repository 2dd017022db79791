"""Carrying out a fence: stop feeding, say so, and check that the machine really went.

A fence begins at most once per agent process and is never undone. `begin` takes the
watchdog latch (so the reported last feed is exact), records the intent (log line,
metrics, and a report for the NodeRemediation status that the agent writes when it can
reach the API), and returns the record every later caller gets too.

If the node is still alive `watchdog_timeout + failure_grace` after the fence began, the
watchdog failed: that is logged and counted, and the software reboot fallback runs if
it is enabled. Without a usable watchdog the fallback (when enabled) runs at once; with
neither the agent cannot fence, says so loudly, and orders are answered `CannotFence`.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.fence_order import FenceOrder
from core.peer_client import Acknowledgement
from core.remediation_status import AgentReport, Stamp
from node_agent.commands import CommandResult, CommandRunner
from node_agent.feeder import FeedStop, WatchdogKeeper
from node_agent.metrics import AgentMetrics

log = logging.getLogger(__name__)


class FenceMethod(enum.StrEnum):
    WATCHDOG = "watchdog"
    SOFTWARE_REBOOT = "software-reboot"
    NONE = "none"  # nothing can reset this node


@dataclass(frozen=True)
class FenceRecord:
    trigger: str  # the decision reason that began it
    started_at: float  # wall clock
    started_mono: float
    order: FenceOrder | None
    stop: FeedStop
    method: FenceMethod


@dataclass(frozen=True)
class FallbackSettings:
    enabled: bool
    command: str
    timeout_s: float
    failure_grace_s: Callable[[float], float]  # effective watchdog timeout -> grace


class Fencer:
    def __init__(
        self,
        *,
        node: str,
        keeper: WatchdogKeeper,
        clock: Clock,
        metrics: AgentMetrics,
        fallback: FallbackSettings,
        runner: CommandRunner,
        boot_id: Callable[[], str | None],
    ) -> None:
        self._node = node
        self._keeper = keeper
        self._clock = clock
        self._metrics = metrics
        self._fallback = fallback
        self._runner = runner
        self._boot_id = boot_id
        self._lock = threading.Lock()
        self._record: FenceRecord | None = None
        self._reported = False
        self._watchdog_failed = False
        self._fallback_started = False
        self.fallback_result: CommandResult | None = None
        self.fallback_thread: threading.Thread | None = None

    @property
    def record(self) -> FenceRecord | None:
        return self._record

    def can_fence(self) -> bool:
        """Whether a fence would reset the node by some means."""
        return self._keeper.device_present or self._fallback.enabled

    def begin(self, trigger: str, order: FenceOrder | None = None) -> FenceRecord:
        with self._lock:
            if self._record is not None:
                return self._record
            stop = self._keeper.stop_feeding_forever()
            if stop.armed:
                method = FenceMethod.WATCHDOG
            elif self._fallback.enabled:
                method = FenceMethod.SOFTWARE_REBOOT
            else:
                method = FenceMethod.NONE
            record = FenceRecord(
                trigger=trigger,
                started_at=self._clock.now(),
                started_mono=self._clock.monotonic(),
                order=order,
                stop=stop,
                method=method,
            )
            self._record = record
        self._metrics.fence_actions.labels(trigger=trigger).inc()
        self._metrics.fence_started.set(record.started_at)
        uid = order.remediation_uid if order else "-"
        if method is FenceMethod.NONE:
            log.critical(
                "FENCE %s (remediation %s): NO WATCHDOG AND NO FALLBACK - this node cannot "
                "reset itself; it must be powered off by other means",
                trigger,
                uid,
            )
        else:
            log.warning(
                "FENCE begun: trigger=%s remediation=%s method=%s last_feed_at=%s "
                "watchdog_timeout_s=%s - the watchdog is never fed again",
                trigger,
                uid,
                method,
                stop.last_feed_at,
                stop.watchdog_timeout_s,
            )
        if method is FenceMethod.SOFTWARE_REBOOT:
            self._start_fallback("no usable watchdog")
        return record

    def acknowledgement(self, order: FenceOrder) -> Acknowledgement | None:
        record = self._record
        if record is None or record.method is FenceMethod.NONE:
            return None
        return Acknowledgement(
            node=self._node,
            remediation_uid=order.remediation_uid,
            action=str(order.action),
            fence_started_at=record.started_at,
            last_feed_at=record.stop.last_feed_at,
            watchdog_timeout_s=record.stop.watchdog_timeout_s,
            boot_id=self._boot_id(),
            method=str(record.method),
        )

    # Reporting to the API --------------------------------------------------------------

    def pending_report(self) -> dict[str, Any] | None:
        """The `status.agentReport` to write, until `report_written()` is called."""
        record = self._record
        if record is None or self._reported:
            return None
        last_feed_at = record.stop.last_feed_at  # None: no watchdog was armed
        return AgentReport(
            fence_started_at=Stamp.at(record.started_at),
            last_feed_at=None if last_feed_at is None else Stamp.at(last_feed_at),
            watchdog_timeout_s=record.stop.watchdog_timeout_s,
            boot_id=self._boot_id() or None,
        ).to_json()

    def report_written(self) -> None:
        self._reported = True

    # After the fence -------------------------------------------------------------------

    def check_watchdog(self) -> None:
        """Called by the loop: notices a watchdog that should have reset the node."""
        record = self._record
        if record is None or record.method is not FenceMethod.WATCHDOG or self._watchdog_failed:
            return
        timeout = record.stop.watchdog_timeout_s or 0.0
        overdue = timeout + self._fallback.failure_grace_s(timeout)
        alive_for = self._clock.monotonic() - record.started_mono
        if alive_for < overdue:
            return
        self._watchdog_failed = True
        self._metrics.watchdog_failures.inc()
        log.critical(
            "WATCHDOG FAILED: still alive %.1fs after the fence began (timeout %.3gs); %s",
            alive_for,
            timeout,
            "running the reboot fallback" if self._fallback.enabled else "no fallback enabled",
        )
        if self._fallback.enabled:
            self._start_fallback("watchdog did not reset the node")

    def _start_fallback(self, why: str) -> None:
        with self._lock:
            if self._fallback_started:
                return
            self._fallback_started = True
        log.critical("software reboot fallback (%s): %s", why, self._fallback.command)
        thread = threading.Thread(target=self._run_fallback, name="reboot-fallback", daemon=True)
        self.fallback_thread = thread
        thread.start()

    def _run_fallback(self) -> None:
        result = self._runner(self._fallback.command, self._fallback.timeout_s)
        self.fallback_result = result
        self._metrics.fallback_reboots.labels(result="ok" if result.ok else "failed").inc()
        log.critical("software reboot fallback: %s", result.describe())
