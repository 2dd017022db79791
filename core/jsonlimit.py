"""JSON from untrusted senders: bounded size and nesting, one exception type.

`json.loads` recurses once per nesting level: 16 KB of `[` raises RecursionError, which
is not a ValueError, so a caller that catches ValueError lets it escape (and a server
drops the connection without an answer). `loads_bounded` refuses a document nested
deeper than `max_depth` before parsing it, with a linear scan that skips strings, and
turns every parse failure into `JsonLimitError` (a ValueError).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class JsonLimitError(ValueError):
    """Not JSON, too large, or nested too deep."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in `text`, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_bounded(raw: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw` as JSON, or raise JsonLimitError saying why not."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise JsonLimitError(f"over {max_bytes} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise JsonLimitError("not UTF-8") from None
    if nesting_depth(text) > max_depth:
        raise JsonLimitError(f"nested deeper than {max_depth}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise JsonLimitError(f"not JSON: {exc}") from None
