"""Feeding the watchdog, and the one-way switch that stops it.

`WatchdogKeeper` owns the device for the agent's whole life:

- It opens (arms) the device lazily: at the first decision that lets the node run, or
  when a fence begins. A watchdog left armed by a previous agent process therefore keeps
  counting down until this process has itself seen that the node may run, so restarting
  the agent can never undo a fence its predecessor began.
- It feeds only while the decision loop's grant is valid (`grant(until)`): a loop that
  hangs stops the feeding by itself, within `feed_grant_s`.
- `stop_feeding_forever()` is a latch taken under the same lock as every feed, so the
  last feed time it returns is exact: no feed can happen after it.

Times: `last_feed_at` is wall-clock (it is reported to the remediator); the grant is on
the monotonic clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.clock import Clock
from node_agent.metrics import AgentMetrics
from node_agent.watchdog import Watchdog, WatchdogError

log = logging.getLogger(__name__)

WatchdogOpener = Callable[[], Watchdog]


@dataclass(frozen=True)
class FeedStop:
    """What the latch reports: the exact last feed (None if never armed) and the timeout."""

    last_feed_at: float | None
    watchdog_timeout_s: float | None
    armed: bool


class WatchdogKeeper:
    def __init__(
        self,
        opener: WatchdogOpener | None,
        clock: Clock,
        metrics: AgentMetrics,
        configured_timeout_s: float,
    ) -> None:
        self._opener = opener
        self._clock = clock
        self._metrics = metrics
        self._configured_timeout_s = configured_timeout_s
        self._lock = threading.Lock()
        self._watchdog: Watchdog | None = None
        self._open_error: str | None = None if opener else "no watchdog device"
        self._grant_until = float("-inf")
        self._last_feed_at: float | None = None
        self._stopped = False

    # State ---------------------------------------------------------------------------

    @property
    def device_present(self) -> bool:
        return self._opener is not None

    @property
    def is_open(self) -> bool:
        return self._watchdog is not None

    @property
    def open_error(self) -> str | None:
        return self._open_error

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def timeout_s(self) -> float | None:
        """The effective timeout once open; None before."""
        wd = self._watchdog
        return wd.timeout_s if wd is not None else None

    @property
    def last_feed_at(self) -> float | None:
        return self._last_feed_at

    # Actions -------------------------------------------------------------------------

    def ensure_open(self) -> bool:
        """Open (arm) the device if it is not yet open. True if it is open now."""
        with self._lock:
            return self._open_locked()

    def _open_locked(self) -> bool:
        if self._watchdog is not None:
            return True
        if self._opener is None:
            return False
        try:
            wd = self._opener()
        except WatchdogError as exc:
            if self._open_error != str(exc):
                log.error("%s: the node cannot fence itself until it opens", exc)
            self._open_error = str(exc)
            self._metrics.watchdog_open_errors.inc()
            return False
        self._watchdog = wd
        self._open_error = None
        self._last_feed_at = self._clock.now()  # opening starts the countdown
        self._metrics.watchdog_timeout.set(wd.timeout_s)
        self._metrics.watchdog_last_feed.set(self._last_feed_at)
        if self._stopped:
            wd.stop_feeding_forever()
        return True

    def grant(self, until_monotonic: float) -> None:
        """Let the feeder feed until `until_monotonic` (never extends past a fence)."""
        with self._lock:
            if not self._stopped:
                self._grant_until = max(self._grant_until, until_monotonic)

    def feed_once(self) -> bool:
        """Feed if the device is open, no fence began and the grant holds. True if fed."""
        with self._lock:
            wd = self._watchdog
            if wd is None or self._stopped:
                return False
            if self._clock.monotonic() >= self._grant_until:
                self._metrics.watchdog_feeds_withheld.inc()
                return False
            try:
                wd.feed()
            except WatchdogError as exc:
                log.error("%s", exc)
                self._metrics.watchdog_feed_errors.inc()
                return False
            self._last_feed_at = self._clock.now()
        self._metrics.watchdog_feeds.inc()
        self._metrics.watchdog_last_feed.set(self._last_feed_at)
        return True

    def stop_feeding_forever(self) -> FeedStop:
        """The fence latch. Arms the device first if it was never opened (that counts as
        the last feed). Idempotent: later calls report the same numbers."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._grant_until = float("-inf")
                self._open_locked()
                if self._watchdog is not None:
                    self._watchdog.stop_feeding_forever()
            wd = self._watchdog
            return FeedStop(
                last_feed_at=self._last_feed_at if wd is not None else None,
                watchdog_timeout_s=wd.timeout_s if wd is not None else None,
                armed=wd is not None,
            )

    def shutdown(self, disarm: bool) -> None:
        """Close the device at process exit; `V` only if `disarm` and no fence began."""
        with self._lock:
            if self._watchdog is not None:
                self._watchdog.close(disarm=disarm and not self._stopped)
                self._watchdog = None


class FeederThread(threading.Thread):
    """Calls `keeper.feed_once()` every `interval_s` until stopped."""

    def __init__(self, keeper: WatchdogKeeper, interval_s: Callable[[], float]) -> None:
        super().__init__(name="watchdog-feeder", daemon=True)
        self._keeper = keeper
        self._interval_s = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._keeper.feed_once()
            self._stop_event.wait(self._interval_s())

    def stop(self) -> None:
        self._stop_event.set()
