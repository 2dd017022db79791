"""The agent's clock offset against the API server, measured from its `Date` header.

Every answer of the API server carries `Date` (RFC 9110: the server's time, in whole
seconds). A request sent at `sent` and answered at `received` (agent's clock) with Date
D tells that the server's clock read some time in [D, D + 1) at a moment in
[sent, received], so server - agent lies in (D - received, D + 1 - sent). Intersecting
the intervals of recent answers narrows the 1 s resolution down to about a round trip
(answers land at different fractions of a second); an empty intersection means a clock
stepped, and the measurement starts again from the newest answer.

The agent publishes the interval's middle and half-width on its heartbeat Lease; the
controller refuses evidence from an agent whose offset is unmeasured or beyond its bound.
"""

from __future__ import annotations

import threading
from collections import deque
from email.utils import parsedate_to_datetime

WINDOW = 64  # answers whose intervals are intersected


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class OffsetEstimator:
    def __init__(self, window: int = WINDOW) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def sample(self, sent: float, received: float, server_date: float) -> None:
        low, high = server_date - received, server_date + 1.0 - sent
        with self._lock:
            lo, hi = self._bounds()
            if lo is not None and hi is not None and (low > hi or high < lo):
                self._samples.clear()  # a clock stepped: the old answers say nothing now
            self._samples.append((low, high))

    def _bounds(self) -> tuple[float | None, float | None]:
        if not self._samples:
            return None, None
        return max(s[0] for s in self._samples), min(s[1] for s in self._samples)

    def estimate(self) -> tuple[float, float] | None:
        """(server - agent offset, half-width of its uncertainty), or None if unmeasured."""
        with self._lock:
            lo, hi = self._bounds()
        if lo is None or hi is None or lo > hi:
            return None
        return (lo + hi) / 2, (hi - lo) / 2
