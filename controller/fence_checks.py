"""Checking the fence inventory's BMCs before they are needed: each node's device is asked
for the node's power `status` when the controller starts leading and then every
`statusInterval`, so a BMC that cannot be reached, or that refuses the credentials, is
known (metric, alert, Event, log) before a node has to be fenced with it.

- `nodewarden_controller_fence_agent_checks_total{result}`: every check, by outcome;
- `nodewarden_controller_fence_agent_unusable_nodes{result}`: nodes whose last check
  failed, by outcome (CredentialsRefused, Unreachable, TimedOut, Failed,
  CredentialsMissing, AgentMissing); the alert NodewardenFenceAgentUnusable fires on it;
- a Warning Event on the Node when its check starts failing (or its cause changes), a
  Normal one when it passes again; never a credential in any of them.

Only the leader checks (one set of logins per interval, not one per replica). Checks run
one at a time on their own thread: a slow BMC delays the next check, never a fence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from controller.fence_agent import USABLE, AgentResult, FenceAgents, Outcome
from controller.metrics import ControllerMetrics

log = logging.getLogger("nodewarden.controller.fence_checks")

UNUSABLE = tuple(o for o in Outcome if o not in USABLE and o not in (Outcome.POWERED_OFF, Outcome.REBOOTED,
                                                                     Outcome.POWERED_ON_AGAIN))
NodesFn = Callable[[], list[tuple[str, dict[str, str]]]]  # (name, labels) of every node
ReportFn = Callable[[str, AgentResult, bool], None]  # (node, result, usable)


class FenceDeviceChecks:
    def __init__(self, agents: FenceAgents, nodes: NodesFn, leading: Callable[[], bool],
                 metrics: ControllerMetrics, report: ReportFn,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.agents = agents
        self.nodes = nodes
        self.leading = leading
        self.metrics = metrics
        self.report = report
        self.monotonic = monotonic
        self.last: dict[str, Outcome] = {}
        self._due: dict[str, float] = {}
        self._was_leading = False

    def run(self, stop: threading.Event, tick_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.check_due(stop)
            except Exception:  # a bug here must not end the checks for good
                log.exception("fence device checks failed")
            stop.wait(tick_s)

    def check_due(self, stop: threading.Event | None = None) -> None:
        leading = self.leading()
        if leading and not self._was_leading:
            self._due.clear()  # newly leading: check everything now
        if not leading and self._was_leading:
            self.last.clear()  # a standby reports nothing: the alert takes the max over replicas
            self._publish()
        self._was_leading = leading
        if not leading:
            return
        seen = set()
        for node, labels in self.nodes():
            if stop is not None and stop.is_set():
                return
            device = self.agents.device_for(node, labels)
            if device is None:
                continue
            seen.add(node)
            if self.monotonic() < self._due.get(node, 0.0):
                continue
            result = self.agents.check(device, node)
            self._due[node] = self.monotonic() + device.status_interval_s
            self._record(node, result)
        for gone in set(self.last) - seen:
            del self.last[gone]
            self._due.pop(gone, None)
        self._publish()

    def _record(self, node: str, result: AgentResult) -> None:
        self.metrics.fence_agent_checks.labels(str(result.outcome)).inc()
        before = self.last.get(node)
        self.last[node] = result.outcome
        usable = result.outcome in USABLE
        if usable and (before is None or before in USABLE):
            return
        if not usable and before == result.outcome:
            return
        (log.info if usable else log.warning)("fence device check for %s: %s", node, result.describe())
        self.report(node, result, usable)
        self._publish()

    def _publish(self) -> None:
        counts = dict.fromkeys((str(o) for o in UNUSABLE), 0)
        for outcome in self.last.values():
            if str(outcome) in counts:
                counts[str(outcome)] += 1
        for name, count in counts.items():
            self.metrics.fence_agent_unusable.labels(name).set(count)
