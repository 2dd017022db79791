"""What happened, when: every fault, node state change, condition and taint change,
eviction, deletion, attach/detach and invariant violation, timestamped. Tests measure
recovery times from it; people read it."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TimelineEvent:
    at: float
    kind: str
    node: str = ""
    object: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Timeline:
    def __init__(self, clock: Callable[[], float] = time.time, limit: int = 200_000) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._events: collections.deque[TimelineEvent] = collections.deque(maxlen=limit)
        self.listeners: list[Callable[[TimelineEvent], None]] = []

    def add(self, kind: str, node: str = "", obj: str = "", detail: str = "",
            **data: Any) -> TimelineEvent:
        event = TimelineEvent(self.clock(), kind, node, obj, detail, data)
        with self._lock:
            self._events.append(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a listener must never break the simulation
                pass
        return event

    def events(self, since: float | None = None, kind: str | None = None,
               node: str | None = None) -> list[TimelineEvent]:
        with self._lock:
            events = list(self._events)
        return [e for e in events
                if (since is None or e.at >= since)
                and (kind is None or e.kind == kind)
                and (node is None or e.node == node)]

    def first(self, kind: str, node: str | None = None, since: float | None = None,
              obj: str | None = None) -> TimelineEvent | None:
        for event in self.events(since=since, kind=kind, node=node):
            if obj is None or event.object == obj:
                return event
        return None
