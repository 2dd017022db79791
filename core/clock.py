"""The clock seam: wall time for what is stored and compared across machines,
monotonic time for local intervals. Components take a `Clock`; tests pass `FakeClock`.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to. `sleep` advances it at once."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._wall += seconds
            self._mono += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def set_wall(self, wall: float) -> None:
        """Step the wall clock (NTP corrections); monotonic time is unaffected."""
        with self._lock:
            self._wall = wall


def rfc3339(ts: float) -> str:
    """Kubernetes' second-precision timestamp form: 2026-01-02T03:04:05Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float) -> str:
    """Kubernetes' MicroTime form (Leases, events.k8s.io eventTime)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(ts: float) -> str:
    """The form nodewarden's controller and agent stamp status with: RFC 3339, UTC, with
    microseconds (their times are compared to fractions of a second)."""
    return rfc3339_micro(ts)


def parse_time(value: object) -> float | None:
    """A stored timestamp as unix seconds, or None for anything that is not one (absent,
    empty, not a string, not RFC 3339, out of range). Never raises: status is read from
    objects others may have written. A zone-less time counts as UTC."""
    if not value or not isinstance(value, str | datetime):
        return None
    try:
        ts = parse_rfc3339(value)
    except (ValueError, OverflowError, OSError):
        return None
    return ts if ts is not None and math.isfinite(ts) else None


def parse_rfc3339(value: str | datetime | None) -> float | None:
    """Parse a Kubernetes timestamp (either form, or a datetime the client returned)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip().replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
