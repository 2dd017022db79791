"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics (the
Python client has none).

- A candidate reads the Lease every `retry_period_s`. It never trusts the holder's
  timestamps: a Lease counts as expired when `lease_duration_s` has passed on the
  candidate's own monotonic clock since it last saw the record change.
- Taking over and renewing are updates carrying the resourceVersion that was read, so
  two candidates can never both win the same round (the loser gets a 409).
- A leader that cannot renew for `renew_deadline_s` stops acting. Since
  renew_deadline_s < lease_duration_s (checked at start-up), it has stopped before any
  standby can take over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controller.model import format_time
from core.clock import Clock
from core.kube import AlreadyExists, Conflict, KubeError, NotFound

log = logging.getLogger("nodewarden.controller.leader")


class LeaseStore(Protocol):
    def get(self) -> dict[str, Any]:
        """The Lease as a dict (NotFound)."""

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create it (AlreadyExists)."""

    def update(self, spec: dict[str, Any], resource_version: str) -> dict[str, Any]:
        """Replace its spec if unchanged since `resource_version` (Conflict)."""


@dataclass(frozen=True)
class LeaderTiming:
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


class LeaderElector:
    def __init__(self, store: LeaseStore, identity: str, timing: LeaderTiming, clock: Clock,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.store = store
        self.identity = identity
        self.timing = timing
        self.clock = clock
        self.on_change = on_change or (lambda leading: None)
        self._leading = False
        self._last_renew_mono: float | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at: float = 0.0
        self._lock = threading.Lock()
        self.holder: str = ""

    # -- queried by the loop before every action ----------------------------------------

    def is_leader(self) -> bool:
        with self._lock:
            return (self._leading and self._last_renew_mono is not None
                    and self.clock.monotonic() - self._last_renew_mono < self.timing.renew_deadline_s)

    # -- one round ----------------------------------------------------------------------

    def step(self) -> bool:
        """Try to acquire or renew once; returns whether we lead afterwards."""
        renewed = False
        try:
            renewed = self._try_acquire_or_renew()
        except KubeError as exc:
            log.warning("leader election: %s", exc)
        with self._lock:
            now = self.clock.monotonic()
            if renewed:
                self._last_renew_mono = now
                became = not self._leading
                self._leading = True
            else:
                became = False
                lost = self._leading and (self._last_renew_mono is None
                                          or now - self._last_renew_mono >= self.timing.renew_deadline_s)
                if lost or (self._leading and self.holder and self.holder != self.identity):
                    self._leading = False
                    self._last_renew_mono = None
                    log.warning("lost leadership (holder now %r)", self.holder or "unknown")
                    self.on_change(False)
                    return False
            leading = self._leading
        if became:
            log.info("became leader as %s", self.identity)
            self.on_change(True)
        return leading

    def _record(self, lease: dict[str, Any]) -> tuple[Any, ...]:
        spec = lease.get("spec") or {}
        return (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"),
                spec.get("leaseTransitions"), spec.get("leaseDurationSeconds"))

    def _spec(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.timing.lease_duration_s)),
                "acquireTime": acquire_time, "renewTime": format_time(self.clock.now()),
                "leaseTransitions": transitions}

    def _try_acquire_or_renew(self) -> bool:
        now_wall = format_time(self.clock.now())
        try:
            lease = self.store.get()
        except NotFound:
            try:
                self.store.create(self._spec(now_wall, 0))
            except (AlreadyExists, Conflict):
                return False
            self.holder = self.identity
            return True
        spec = lease.get("spec") or {}
        record = self._record(lease)
        mono = self.clock.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, mono
        holder = str(spec.get("holderIdentity") or "")
        self.holder = holder
        if holder and holder != self.identity and mono < self._observed_at + self.timing.lease_duration_s:
            return False  # held by someone else, not expired by our clock
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new = self._spec(str(spec.get("acquireTime") or now_wall), transitions)
        else:
            new = self._spec(now_wall, transitions + 1)
            log.info("taking over the expired lease of %r", holder or "nobody")
        try:
            updated = self.store.update(new, str((lease.get("metadata") or {}).get("resourceVersion", "")))
        except (Conflict, NotFound):
            return False
        self._observed, self._observed_at = self._record(updated), self.clock.monotonic()
        self.holder = self.identity
        return True

    def run(self, stop: threading.Event) -> None:
        """Campaign until `stop`; then release nothing (the lease simply expires)."""
        while not stop.is_set():
            self.step()
            stop.wait(self.timing.retry_period_s)
        with self._lock:
            was = self._leading
            self._leading = False
        if was:
            self.on_change(False)
