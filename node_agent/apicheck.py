"""The API reachability check, and what the agent last learned from it.

One check is two calls, each with the API timeout: read the node's NodeRemediation (the
order it may hold) and renew the agent's heartbeat Lease. Both must succeed for the API to
count as reachable: "reachable" means "the remediator can see that I am alive", which is
what the remediator's safety rule relies on. A 404 NodeRemediation is "no order".
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from core.clock import Clock
from core.kube_errors import KubeError
from node_agent.kube import AgentApi
from node_agent.metrics import AgentMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    order_token: str | None = None
    error: str | None = None


class ApiChecker:
    def __init__(
        self,
        *,
        api: AgentApi,
        node: str,
        namespace: str,
        clock: Clock,
        metrics: AgentMetrics,
        timeout_s: float,
        lease_duration_s: float,
    ) -> None:
        self._api = api
        self._node = node
        self._namespace = namespace
        self._clock = clock
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._lease_duration_s = lease_duration_s
        self._lock = threading.Lock()
        self.last_ok: bool | None = None  # None before the first check
        self.failures = 0
        self.last_check_mono: float | None = None
        self.last_contact_at: float | None = None  # wall clock of the last renewal
        self._last_error: str | None = None

    def check(self) -> CheckResult:
        try:
            token = self._api.read_order_token(self._node, self._timeout_s)
            now = self._clock.now()
            self._api.renew_lease(self._namespace, self._node, now, self._lease_duration_s, self._timeout_s)
        except KubeError as exc:
            return self._failed(str(exc))
        with self._lock:
            recovered = self.failures > 0
            self.failures = 0
            self.last_ok = True
            self.last_check_mono = self._clock.monotonic()
            self.last_contact_at = now
            self._last_error = None
        self._metrics.api_checks.labels(result="ok").inc()
        self._metrics.api_consecutive_failures.set(0)
        self._metrics.last_api_contact.set(now)
        if recovered:
            log.info("API reachable again")
        return CheckResult(True, token)

    def _failed(self, error: str) -> CheckResult:
        with self._lock:
            self.failures += 1
            self.last_ok = False
            self.last_check_mono = self._clock.monotonic()
            changed = error != self._last_error
            self._last_error = error
            failures = self.failures
        self._metrics.api_checks.labels(result="failed").inc()
        self._metrics.api_consecutive_failures.set(failures)
        if changed:
            log.warning("API check failed (%d in a row): %s", failures, error)
        return CheckResult(False, error=error)
