"""Structured logging: one JSON object per line on stderr.

Fields passed as `extra={"fields": {...}}` are merged into the line, so a decision is
logged as `{"msg": "decision", "node": ..., "verdict": ..., "reason": ...}` and can be
searched by any field.

Lines are rate-limited (`FoldingFilter`): at most `burst` records per logger, level and
message template in each window; the rest are folded, and the first record let through
after a folded stretch says how many (`"folded": N`). So a flood of bad requests costs a
few lines, not one per request. Decision lines carry their own fields and are folded
upstream (`webhook.decisions`), so they pass untouched.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# One encoder for every line: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        """ISO 8601 with milliseconds in UTC, like `datetime.isoformat(timespec="milliseconds")`;
        the part up to the second is formatted once per second."""
        second = int(created)
        micros = round((created - second) * 1_000_000)  # datetime rounds to microseconds too
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            text = datetime.fromtimestamp(second, UTC).isoformat()
            self._second, self._second_text = second, text[:-6]  # without "+00:00"
        return f"{self._second_text}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        folded = getattr(record, "folded", None)
        if folded:
            line["folded"] = folded
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line)


class FoldingFilter(logging.Filter):
    """At most `burst` records per (logger, level, template) per `window_s`; bounded to
    `limit` templates, O(1) per record. See the module docstring."""

    def __init__(
        self,
        window_s: float = 10.0,
        burst: int = 10,
        limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window_s, self.burst, self.limit, self._clock = window_s, burst, limit, clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "fields", None) is not None:
            return True
        key = (record.name, record.levelno, str(record.msg)[:200])
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)  # [window start, let through, folded]
            if entry is None or now - entry[0] >= self.window_s:
                folded = int(entry[2]) if entry is not None else 0
                if entry is not None:
                    self._seen.move_to_end(key)
                self._seen[key] = [now, 1, 0]
                while len(self._seen) > self.limit:
                    self._seen.popitem(last=False)
                if folded:
                    record.folded = folded
                return True
            if entry[1] < self.burst:
                entry[1] += 1
                return True
            entry[2] += 1
            return False


def configure_logging(level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON lines (idempotent)."""
    # The lines carry neither the caller's file and line nor thread names, so the records
    # need not collect them (the logging HOWTO's "Optimization" section); finding the
    # caller is a measurable part of the cost of a decision's line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            root.setLevel(level.upper())
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(FoldingFilter())
    root.handlers = [handler]
    root.setLevel(level.upper())
