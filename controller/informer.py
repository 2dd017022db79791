"""Watch-fed caches of whole objects for the controller: list, then watch from the list's
resourceVersion; relist on 410 Gone; back off on errors and mark the view unsynced so
the controller does not decide on a view it cannot trust."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from controller.kube import ControllerKube, Kind
from core.kube import KubeError, WatchExpired

log = logging.getLogger("nodewarden.controller.informer")
MAX_BACKOFF_S = 10.0


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Informer:
    def __init__(self, kube: ControllerKube, kind: Kind,
                 on_change: Callable[[str], None] | None = None, timeout_s: float = 300.0) -> None:
        self.kube = kube
        self.kind = kind
        self.on_change = on_change or (lambda name: None)
        self.timeout_s = timeout_s
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(name)

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.values())

    def put(self, obj: dict[str, Any]) -> None:
        """Take an object we just wrote ourselves, unless the cache already has a newer one."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        with self._lock:
            current = self._objects.get(name)
            if current is None or _rv(obj) >= _rv(current):
                self._objects[name] = obj

    def _replace(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            before = set(self._objects)
            self._objects = {str(o["metadata"]["name"]): o for o in items if o.get("metadata", {}).get("name")}
            changed = before | set(self._objects)
        self.synced.set()
        for name in changed:
            self.on_change(name)

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        if not name or event_type == "BOOKMARK":
            return
        with self._lock:
            current = self._objects.get(name)
            if event_type == "DELETED":
                if current is not None and (current.get("metadata") or {}).get("uid") == \
                        (obj.get("metadata") or {}).get("uid"):
                    del self._objects[name]
            elif current is None or _rv(obj) >= _rv(current):
                self._objects[name] = obj
        self.on_change(name)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                listing = self.kube.list(self.kind)
                self._replace(listing.items)
                version = listing.resource_version
                backoff = 0.2
                while not self._stop.is_set():
                    opened = time.monotonic()
                    for event in self.kube.watch(self.kind, version, self.timeout_s):
                        if self._stop.is_set():
                            return
                        if event.type == "ERROR":
                            raise KubeError(500, "WatchError", str(event.object)[:200])
                        self._apply(event.type, event.object)
                        version = str((event.object.get("metadata") or {}).get("resourceVersion") or version)
                    if time.monotonic() - opened < 0.05:
                        self._stop.wait(0.05)
            except WatchExpired:
                continue
            except KubeError as exc:
                self.synced.clear()
                log.warning("watch of %s failed (%s); retrying in %.1fs", self.kind, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except Exception:
                self.synced.clear()
                log.exception("watch of %s crashed; retrying in %.1fs", self.kind, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
