"""Events from the simulated controllers, as client-go's event recorder writes them:
core/v1 Events named `<object>.<unique suffix>` in the object's namespace (`default` for
cluster-scoped objects such as Nodes), with `source.component`, `reportingComponent`,
first/last timestamps and a count. A repeat of the same (object, type, reason, message)
bumps `count` and `lastTimestamp` of the existing Event, as the recorder's correlator does.

Reasons are the real ones (NodeNotReady, TaintManagerEviction, Scheduled,
FailedAttachVolume with a Multi-Attach message, SuccessfulAttachVolume,
SuccessfulCreate, ...); docs/sim.md lists who emits which.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from ..apiserver.errors import ApiError
from ..apiserver.registry import Registry
from ..apiserver.resources import ResourceType
from ..timefmt import rfc3339

log = logging.getLogger("sim.events")


def object_ref(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    ref = {"kind": str(obj.get("kind", "")), "apiVersion": str(obj.get("apiVersion", "v1")),
           "name": str(meta.get("name", "")), "uid": str(meta.get("uid", ""))}
    if meta.get("namespace"):
        ref["namespace"] = str(meta["namespace"])
    return ref


class EventRecorder:
    def __init__(self, registry: Registry, events_rt: ResourceType, clock: Callable[[], float]) -> None:
        self.registry = registry
        self.rt = events_rt
        self.clock = clock
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}  # key -> (ns, name)

    def record(self, ref: dict[str, str], event_type: str, reason: str, message: str,
               component: str, host: str = "") -> None:
        """Write (or bump) the Event; a failure to write is logged, never raised: events are
        best effort in Kubernetes too."""
        namespace = ref.get("namespace") or "default"
        now = rfc3339(self.clock())
        key = (ref.get("uid", ""), ref.get("name", ""), event_type, reason, message)
        with self._lock:
            existing = self._seen.get(key)
            if existing is None:
                name = f"{ref.get('name', 'object')}.{int(self.clock() * 1e6) % 10**15:x}{next(self._seq):x}"
                self._seen[key] = (namespace, name)
        try:
            if existing is not None:
                def bump(obj: dict[str, Any]) -> None:
                    obj["count"] = int(obj.get("count") or 1) + 1
                    obj["lastTimestamp"] = now

                if self.registry.mutate(self.rt, existing[0], existing[1], bump) is not None:
                    return
                name = existing[1]
            source = {"component": component, **({"host": host} if host else {})}
            self.registry.create(self.rt, namespace, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref, "reason": reason, "message": message, "type": event_type,
                "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "reportingComponent": component, "reportingInstance": host or component})
        except ApiError as err:
            log.debug("event %s for %s not recorded: %s", reason, ref.get("name"), err.message)
