"""What a simulated controller is given, kwok-style: a clock, the timings, read access to
stored objects, write access through the registry (so every write goes through admission,
validation, watches and the audit log like any client's), an event recorder and the
timeline. Never the whole cluster: a controller sees the API as the real one does, plus
the few facts a test needs on the timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..apiserver.registry import Registry
from ..apiserver.resources import ResourceType
from ..apiserver.store import Entry, Store
from .recorder import EventRecorder
from .timeline import Timeline
from .timings import Timings


@dataclass(frozen=True)
class ControllerConfig:
    clock: Callable[[], float]
    timings: Timings
    registry: Registry
    store: Store
    resource: Callable[[str, str], ResourceType]  # (plural, group) -> served type
    events: EventRecorder
    timeline: Timeline

    def rt(self, plural: str, group: str = "") -> ResourceType:
        return self.resource(plural, group)

    def table(self, plural: str, group: str = "") -> str:
        return self.registry.table(self.rt(plural, group))

    def items(self, plural: str, group: str = "", namespace: str | None = None
              ) -> Iterator[tuple[tuple[str, str], Entry]]:
        return iter(self.store.items(self.table(plural, group), namespace))

    def entry(self, plural: str, namespace: str, name: str, group: str = "") -> Entry | None:
        return self.store.get(self.table(plural, group), namespace, name)

    def obj(self, plural: str, namespace: str, name: str, group: str = "") -> dict[str, Any] | None:
        entry = self.entry(plural, namespace, name, group)
        return entry.obj() if entry is not None else None

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        table = self.table("pods")
        out = []
        for ns, name in self.store.keys_by(table, "spec.nodeName", node):
            entry = self.store.get(table, ns, name)
            if entry is not None:
                out.append(entry.obj())
        return out
