"""Structured logging: one JSON object per line on stderr.

Fields passed as `extra={"fields": {...}}` are merged into the line, so a decision is
logged as `{"msg": "decision", "node": ..., "verdict": ..., "reason": ...}` and can be
searched by any field.
"""

from __future__ import annotations

import json
import logging
import sys
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
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line)


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
    root.handlers = [handler]
    root.setLevel(level.upper())
