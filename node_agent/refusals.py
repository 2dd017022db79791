"""Refused peer requests: counted by reason, logged at a bounded rate.

Every request the peer endpoint refuses before acting (unauthenticated, malformed, too
slow, over a connection bound) is counted in `nodewarden_agent_peer_requests_refused_total`
by an enumerated `Refusal`. A flood must not become a flood of log lines: at most one
WARNING per `interval_s`; the refusals folded in between are counted, and the next line
(or `flush`, which the server calls once per interval) says how many there were, by reason.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import Counter

from core.clock import Clock
from node_agent.metrics import AgentMetrics

log = logging.getLogger("node_agent.server")


class Refusal(enum.StrEnum):
    MISSING_CREDENTIALS = "MissingCredentials"
    BAD_DATE = "BadDate"
    CLOCK_SKEW = "ClockSkew"
    BAD_SIGNATURE = "BadSignature"
    WRONG_RECEIVER = "WrongReceiver"
    BODY_MISMATCH = "BodyMismatch"
    REPLAY = "Replay"
    BAD_REQUEST = "BadRequest"  # a request line, header or body that is not the protocol's
    TOO_LARGE = "TooLarge"  # a body over the limit, or headers over theirs
    NOT_FOUND = "NotFound"
    TOO_SLOW = "TooSlow"  # the whole request did not arrive within the request deadline
    CONNECTION_LIMIT = "ConnectionLimit"  # closed to make room (oldest unauthenticated first)
    BUSY = "Busy"  # authenticated, but every request slot is taken


class RefusalLog:
    def __init__(self, metrics: AgentMetrics, clock: Clock, interval_s: float = 10.0) -> None:
        self._metrics = metrics
        self._clock = clock
        self._interval_s = interval_s
        self._last_line_at: float | None = None
        self._folded: Counter[str] = Counter()
        self._lock = threading.Lock()

    def refused(self, reason: Refusal, client: str, what: str) -> None:
        self._metrics.peer_requests_refused.labels(reason=str(reason)).inc()
        now = self._clock.monotonic()
        with self._lock:
            if self._last_line_at is not None and now - self._last_line_at < self._interval_s:
                self._folded[str(reason)] += 1
                return
            self._last_line_at = now
            folded = self._take_folded()
        log.warning("refused %s from %s: %s%s", what, client, reason, folded)

    def flush(self) -> None:
        """Report refusals folded since the last line, once the interval is over."""
        now = self._clock.monotonic()
        with self._lock:
            if not self._folded or (self._last_line_at is not None and now - self._last_line_at < self._interval_s):
                return
            self._last_line_at = now
            folded = self._take_folded()
        log.warning("refused peer requests%s", folded)

    def _take_folded(self) -> str:
        if not self._folded:
            return ""
        total = sum(self._folded.values())
        by_reason = ", ".join(f"{r}: {n}" for r, n in sorted(self._folded.items()))
        self._folded.clear()
        return f" (and {total} more refused since the last line: {by_reason})"
