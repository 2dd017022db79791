"""What was seen recently: a bounded, amortized O(1) memory of keys within a time window.

`RecentKeys.admit(key, now)` lets the first occurrence of a key through per window and
counts the rest: it answers None for a repeat inside the window, else how many repeats
were folded since the key last went through (0 for a key not seen before). The log
folders and the Event recorder's deduplication are built on it.

Bounded and O(1) per call whatever the input: the keys live in insertion order of their
window's start (a key whose window restarts moves to the end), and once more than `limit`
keys are held the oldest are dropped from the front, each key at most once. A dropped key
only means its next occurrence goes through again (one more line or Event, never fewer),
and its folded count is added to `dropped_folds`. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RecentKeys(Generic[K]):
    def __init__(self, window_s: float, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.window_s = window_s
        self.limit = limit
        self.dropped_folds = 0  # repeats folded under keys that were pushed out by `limit`
        self._lock = threading.Lock()
        self._seen: OrderedDict[K, list[float]] = OrderedDict()  # key -> [start, folded]

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, key: K, now: float) -> int | None:
        """None: `key` went through less than `window_s` ago (this repeat is counted).
        Else the number of repeats folded since it last went through."""
        if self.window_s <= 0:
            return 0
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return None
            folded = 0
            if entry is not None:
                folded = int(entry[1])
                entry[0], entry[1] = now, 0
                self._seen.move_to_end(key)
                return folded
            self._seen[key] = [now, 0]
            while len(self._seen) > self.limit:
                _, (_, dropped) = self._seen.popitem(last=False)
                self.dropped_folds += int(dropped)
            return folded
