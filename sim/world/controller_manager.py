"""kube-controller-manager as a process: it runs the node lifecycle, taint eviction, pod GC,
attach/detach, StatefulSet and workload controllers only while it holds its leader Lease
(`kube-system/kube-controller-manager`, client-go leader election), and all their timers
live in its memory.

Leader election (k8s.io/client-go/tools/leaderelection, the controller manager's
defaults): the leader renews every retry period (2 s); when it cannot renew for the renew
deadline (10 s) — an API outage does that — it loses leadership and the process exits
("leaderelection lost"). The kubelet restarts the static pod after a back-off
(controller_manager_restart_s); the new process has a new identity, so it takes the Lease
only once it has watched the old record stay unchanged for the lease duration (15 s).
Then every controller starts from scratch: node health probes trust every node for one
grace period, taint-eviction timers count from zero, the attach/detach controller
rebuilds its actual state from the VolumeAttachments (every volume assumed mounted, the
6-minute wait counted again). `restart()` is the `controller-manager-restart` fault.
"""

from __future__ import annotations

import enum
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from ..apiserver.errors import ApiError
from ..timefmt import rfc3339_micro
from .controller_config import ControllerConfig
from .ticker import Ticker

log = logging.getLogger("sim.controller_manager")
LEASE_NAMESPACE, LEASE_NAME = "kube-system", "kube-controller-manager"

Loop = tuple[float, Callable[[], None]]


class State(enum.StrEnum):
    CANDIDATE = "candidate"
    LEADING = "leading"
    DOWN = "down"  # the process exited; the kubelet restarts it


class ControllerManager:
    def __init__(self, cfg: ControllerConfig, ticker: Ticker, api_up: Callable[[], bool],
                 build: Callable[[ControllerConfig], tuple[list[Loop], dict[str, Any]]]) -> None:
        """build(cfg) returns the new process's periodic loops and its controllers by name."""
        self.cfg = cfg
        self.ticker = ticker
        self.api_up = api_up
        self.build = build
        self.state = State.CANDIDATE
        self.identity = self._new_identity()
        self.generation = 0
        self.controllers: dict[str, Any] = {}
        self.restarts = 0
        self._last_renew = 0.0
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._lock = threading.RLock()

    @staticmethod
    def _new_identity() -> str:
        return f"cp-1_{uuid.uuid4()}"

    def start(self) -> None:
        self.ticker.every(self.cfg.timings.leader_retry_period_s, self.elect, first_delay=0.0)

    # -- leader election --------------------------------------------------------------

    def elect(self) -> None:
        with self._lock:
            now = self.cfg.clock()
            if self.state is State.DOWN:
                return
            up = self.api_up()
            if self.state is State.LEADING:
                if up and self._write_lease(now):
                    self._last_renew = now
                elif now - self._last_renew >= self.cfg.timings.leader_renew_deadline_s:
                    self._exit("leader election lost: could not renew the lease within the renew deadline")
                return
            if up and self._may_acquire(now) and self._write_lease(now, acquire=True):
                self._last_renew = now
                self.state = State.LEADING
                self.generation += 1
                self._run_controllers()
                self.cfg.timeline.add("controller-manager", detail=f"{self.identity} acquired the leader lease: "
                                      "controllers started")

    def _may_acquire(self, now: float) -> bool:
        lease = self.cfg.obj("leases", LEASE_NAMESPACE, LEASE_NAME, "coordination.k8s.io")
        if lease is None:
            return True
        spec = lease.get("spec") or {}
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if record[0] in ("", self.identity):
            return True
        if record != self._observed:
            self._observed, self._observed_at = record, now
            return False
        return now - self._observed_at >= self.cfg.timings.leader_lease_duration_s

    def _write_lease(self, now: float, acquire: bool = False) -> bool:
        cfg = self.cfg
        rt = cfg.rt("leases", "coordination.k8s.io")
        duration = round(cfg.timings.leader_lease_duration_s / cfg.timings.scale)
        stamp = rfc3339_micro(now)

        def renew(obj: dict[str, Any]) -> bool | None:
            spec = obj.setdefault("spec", {})
            if not acquire and spec.get("holderIdentity") != self.identity:
                return False
            if acquire and spec.get("holderIdentity") != self.identity:
                spec["acquireTime"] = stamp
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec.update({"holderIdentity": self.identity, "leaseDurationSeconds": duration, "renewTime": stamp})
            return None

        try:
            result = cfg.registry.mutate(rt, LEASE_NAMESPACE, LEASE_NAME, renew)
            if result is None:
                cfg.registry.create(rt, LEASE_NAMESPACE, {
                    "metadata": {"name": LEASE_NAME},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": duration,
                             "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}})
                return True
        except ApiError as err:
            log.debug("controller-manager lease: %s", err.message)
            return False
        return bool((result.obj.get("spec") or {}).get("holderIdentity") == self.identity)

    # -- the process ------------------------------------------------------------------

    def _run_controllers(self) -> None:
        loops, self.controllers = self.build(self.cfg)
        generation = self.generation

        def alive() -> bool:
            return self.generation == generation and self.state is State.LEADING

        for period, fn in loops:
            self.ticker.every(period, self._guarded(fn), first_delay=period / 2, alive=alive)

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.api_up():  # the controllers' requests fail while the API is down
                fn()

        return run

    def _exit(self, why: str) -> None:
        self.state = State.DOWN
        self.generation += 1  # stops this process's loops: their memory is gone
        self.controllers = {}
        self.restarts += 1
        self.cfg.timeline.add("controller-manager", detail=f"{self.identity} exited: {why}")
        self.ticker.call_later(self.cfg.timings.controller_manager_restart_s, self._restarted)

    def _restarted(self) -> None:
        with self._lock:
            self.state = State.CANDIDATE
            self.identity = self._new_identity()
            self._observed = None
            self.cfg.timeline.add("controller-manager", detail=f"restarted by the kubelet as {self.identity}")

    def restart(self) -> None:
        """The controller-manager-restart fault: the process dies now."""
        with self._lock:
            if self.state is not State.DOWN:
                self._exit("killed (fault)")
