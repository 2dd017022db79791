"""The informer pattern, once for every side: a reflector that keeps a view current by
LIST, then WATCH from the list's resourceVersion (client-go's Reflector), and a store of
whole objects fed by it (client-go's Indexer, without indexes).

Edge cases, once:
- a watch that ends (the server's timeout) is reopened from the last version seen; a
  server that closes watches at once is not spun on (`QUICK_CLOSE_S`);
- a 410 Gone (`WatchExpired`) lists again at once;
- any other failure tells the sink the view is no longer synced (callers then wait or
  answer 503 rather than decide on a stale view) and retries with capped exponential
  backoff; a bug in a sink is logged and retried the same way, never silently ends the
  updates;
- an `ERROR` watch event is a failure of the watch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from core.kube import JSON, KubeError, Listing, WatchEvent, WatchExpired

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0
QUICK_CLOSE_S = 0.05


class Sink(Protocol):
    """Where a reflector puts what it learns."""

    def replace(self, items: list[JSON], resource_version: str) -> None:
        """A complete listing: the view is now exactly `items`, and synced."""

    def apply(self, event: WatchEvent) -> None:
        """One change after the listing (ADDED, MODIFIED, DELETED or BOOKMARK)."""

    def unsynced(self, error: BaseException) -> None:
        """The view can no longer be trusted to be current."""


class Reflector:
    """Keeps one resource's view current in `sink`; `run()` blocks until `stop` is set."""

    def __init__(self, name: str, list_fn: Callable[[], Listing],
                 watch_fn: Callable[[str, float], Iterator[WatchEvent]], sink: Sink,
                 stop: threading.Event, timeout_s: float = 300.0) -> None:
        self.name = name
        self.list_fn = list_fn
        self.watch_fn = watch_fn
        self.sink = sink
        self.stop = stop
        self.timeout_s = timeout_s

    def run(self) -> None:
        backoff = INITIAL_BACKOFF_S
        while not self.stop.is_set():
            try:
                listing = self.list_fn()
                self.sink.replace(listing.items, listing.resource_version)
                backoff = INITIAL_BACKOFF_S
                self._watch(listing.resource_version)
            except WatchExpired:
                log.info("watch of %s expired; listing again", self.name)
            except Exception as exc:  # a KubeError, or a bug that must not end the updates
                self.sink.unsynced(exc)
                if isinstance(exc, KubeError):
                    log.warning("watch of %s failed (%s); retrying in %.1fs", self.name, exc, backoff)
                else:
                    log.exception("watch of %s crashed; retrying in %.1fs", self.name, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _watch(self, version: str) -> None:
        while not self.stop.is_set():
            opened = time.monotonic()
            for event in self.watch_fn(version, self.timeout_s):
                if self.stop.is_set():
                    return
                if event.type == "ERROR":
                    raise KubeError(500, "WatchError", str(event.object)[:200])
                self.sink.apply(event)
                version = str((event.object.get("metadata") or {}).get("resourceVersion") or version)
            if time.monotonic() - opened < QUICK_CLOSE_S:
                self.stop.wait(QUICK_CLOSE_S)


def resource_version(obj: JSON) -> int:
    """An object's resourceVersion as an integer (0 when absent or not a number)."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class Store:
    """Whole objects by name, fed by a reflector; never goes back to an older version.

    `on_change(name)` is called after every change a listing or an event brought."""

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        self.on_change = on_change or (lambda name: None)
        self._objects: dict[str, JSON] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()

    def get(self, name: str) -> JSON | None:
        with self._lock:
            return self._objects.get(name)

    def items(self) -> list[JSON]:
        with self._lock:
            return list(self._objects.values())

    def put(self, obj: JSON) -> None:
        """Take an object we just wrote ourselves, unless the store already has a newer one."""
        with self._lock:
            current = self._objects.get(_name(obj))
            if current is None or resource_version(obj) >= resource_version(current):
                self._objects[_name(obj)] = obj

    # -- Sink -----------------------------------------------------------------------------

    def replace(self, items: list[JSON], resource_version: str) -> None:
        with self._lock:
            before = set(self._objects)
            self._objects = {_name(o): o for o in items if _name(o)}
            changed = before | set(self._objects)
        self.synced.set()
        for name in changed:
            self.on_change(name)

    def apply(self, event: WatchEvent) -> None:
        obj: dict[str, Any] = event.object
        name = _name(obj)
        if not name or event.type == "BOOKMARK":
            return
        with self._lock:
            current = self._objects.get(name)
            if event.type == "DELETED":
                if current is not None and (current.get("metadata") or {}).get("uid") == \
                        (obj.get("metadata") or {}).get("uid"):
                    del self._objects[name]
            elif current is None or resource_version(obj) >= resource_version(current):
                self._objects[name] = obj
        self.on_change(name)

    def unsynced(self, error: BaseException) -> None:
        self.synced.clear()
