"""`FakeStore`: the in-memory API server store under the test fakes of each side
(`tests.controller.fakes.FakeControllerKube`, `tests.webhook.fake_kube.FakeWebhookKube`).

It keeps, per watched kind (each side's `core.resources.Watched` enum), the objects by
name and the log of their watch events, with the API server's rules for them:

- one resourceVersion counter for the whole store, moved by every write (`put`,
  `delete`, and `next_rv` for objects that are not watched); a list carries the last
  resourceVersion written to a watched kind;
- `get` raises 404 NotFound, `check_version` 409 Conflict for a stale resourceVersion;
- `watch` replays the events after a resourceVersion, then waits on the condition
  variable for more until its timeout; it ends early when the store is `unavailable`;
- with `max_events`, a kind's log keeps only that many events, and `compact` forgets
  them all, as etcd compaction does: a watch from before then raises 410 WatchExpired.

`enter(method)` counts the call in `calls` and, when `unavailable` is set, raises
Unavailable as if the API server were down. `lock` is the store's condition variable
(reentrant): hold it across a read and the write that depends on it.
Objects go in and come out as deep copies: no caller shares a dict with the store.

`OnFakeStore` is the base of a fake over one: its `unavailable` and `calls` are the store's.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from core.kube import JSON, Conflict, Listing, NotFound, Unavailable, WatchEvent, WatchExpired
from core.resources import Watched

K = TypeVar("K", bound=Watched)

STALE_WRITE = ("the object has been modified; please apply your changes to the latest version "
               "and try again")


class FakeStore(Generic[K]):
    def __init__(self, kinds: Iterable[K], max_events: int | None = None) -> None:
        kinds = list(kinds)
        self.unavailable = False
        self.calls: Counter[str] = Counter()
        self.lock = threading.Condition()
        self.max_events = max_events
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._objects: dict[K, dict[str, JSON]] = {k: {} for k in kinds}
        self._log: dict[K, list[tuple[int, WatchEvent]]] = {k: [] for k in kinds}
        self._compacted: dict[K, int] = dict.fromkeys(kinds, 0)
        self._latest: dict[K, int] = dict.fromkeys(kinds, 0)

    def enter(self, method: str) -> None:
        """Count a call to `method`; fail it if the API server is down."""
        self.calls[method] += 1
        if self.unavailable:
            raise Unavailable(0, "ConnectionRefused", "the fake API server is down")

    # Reads -------------------------------------------------------------------------------

    def find(self, kind: K, name: str) -> JSON | None:
        with self.lock:
            obj = self._objects[kind].get(name)
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, kind: K, name: str, not_found: str) -> JSON:
        """The object, or 404 NotFound with the message `not_found`."""
        obj = self.find(kind, name)
        if obj is None:
            raise NotFound(404, "NotFound", not_found)
        return obj

    def list(self, kind: K) -> Listing:
        with self.lock:
            return Listing([copy.deepcopy(o) for o in self._objects[kind].values()], str(self._last_rv))

    @property
    def last_rv(self) -> int:
        """The resourceVersion of the last write to any watched kind (0 if none)."""
        with self.lock:
            return self._last_rv

    def latest_for(self, kind: K) -> int:
        """The resourceVersion of the last write to `kind` (0 if none)."""
        with self.lock:
            return self._latest[kind]

    # Writes ------------------------------------------------------------------------------

    def next_rv(self) -> int:
        """A fresh resourceVersion for an object kept outside the watched kinds."""
        with self.lock:
            return next(self._rv)

    @staticmethod
    def check_version(obj: JSON, resource_version: str | None, message: str = STALE_WRITE) -> None:
        """409 Conflict if a writer's resourceVersion precondition is not `obj`'s."""
        if resource_version and resource_version != obj["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", message)

    def put(self, kind: K, obj: JSON, event: str = "") -> JSON:
        """Store `obj` under a new resourceVersion and log its watch event: `event`, or
        ADDED / MODIFIED by whether the name is stored; DELETED removes it."""
        with self.lock:
            rv = next(self._rv)
            self._last_rv = rv
            self._latest[kind] = rv
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
            name = obj["metadata"]["name"]
            event = event or ("MODIFIED" if name in self._objects[kind] else "ADDED")
            if event == "DELETED":
                self._objects[kind].pop(name, None)
            else:
                self._objects[kind][name] = obj
            log = self._log[kind]
            log.append((rv, WatchEvent(event, copy.deepcopy(obj))))
            if self.max_events is not None and len(log) > self.max_events:
                self._compacted[kind] = log[0][0]
                del log[0]
            self.lock.notify_all()
            return copy.deepcopy(obj)

    def delete(self, kind: K, name: str) -> None:
        """Remove the object, if stored, with a DELETED event."""
        with self.lock:
            obj = self._objects[kind].get(name)
            if obj is not None:
                self.put(kind, obj, "DELETED")

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: older watches get 410."""
        with self.lock:
            for kind in self._log:
                self._compacted[kind] = self._last_rv
                self._log[kind].clear()

    # Watch -------------------------------------------------------------------------------

    def watch(self, kind: K, resource_version: str, timeout_s: float) -> Iterator[WatchEvent]:
        """The events on `kind` after `resource_version`, until `timeout_s` of the real
        clock passes with none (or the store goes `unavailable`)."""
        since = int(resource_version or 0)
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                if since < self._compacted[kind]:
                    raise WatchExpired(410, "Expired", f"too old resource version: {since}")
                pending = [(rv, e) for rv, e in self._log[kind] if rv > since]
                if not pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self.unavailable:
                        return
                    self.lock.wait(min(remaining, 0.5))
                    continue
            for rv, event in pending:
                since = rv
                yield WatchEvent(event.type, copy.deepcopy(event.object))


class OnFakeStore(Generic[K]):
    """A fake API over `self._api`: the test's switch and counts are the store's."""

    _api: FakeStore[K]

    @property
    def unavailable(self) -> bool:
        return self._api.unavailable

    @unavailable.setter
    def unavailable(self, down: bool) -> None:
        self._api.unavailable = down

    @property
    def calls(self) -> Counter[str]:
        return self._api.calls
