"""Keeps the `ClusterCache` current: one `core.informer.Reflector` thread per resource
(list, watch, relist on 410 Gone; on any other failure the resource is marked unsynced,
so requests wait briefly or answer 503 rather than decide on a stale view, and the
reflector retries with capped exponential backoff). Threads are daemons and also stop
when `stop()` is called. `on_remediation(name)` is told of every NodeRemediation a LIST
or an event brings, after the cache has it (`webhook.kubectl_requests` queues it), and
`on_remediation_deleted(obj)` of every one a DELETED event removes (to archive it).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from core.informer import Reflector
from core.kube import JSON, KubeError, WatchEvent
from webhook.cache import ClusterCache
from webhook.kube import Resource, WebhookKube


class _CacheSink:
    """One resource's side of the `ClusterCache`, as a reflector's sink."""

    def __init__(self, cache: ClusterCache, resource: Resource,
                 on_error: Callable[[Resource, KubeError], None] | None,
                 on_change: Callable[[str], None] | None = None,
                 on_deleted: Callable[[JSON], None] | None = None) -> None:
        self.cache = cache
        self.resource = resource
        self.on_error = on_error
        self.on_change = on_change
        self.on_deleted = on_deleted

    def replace(self, items: list[JSON], resource_version: str) -> None:
        self.cache.replace(self.resource, items, resource_version)
        if self.on_change:
            for item in items:
                self.on_change(str((item.get("metadata") or {}).get("name") or ""))

    def apply(self, event: WatchEvent) -> None:
        self.cache.apply(self.resource, event)
        if self.on_change and event.type in ("ADDED", "MODIFIED"):
            self.on_change(str((event.object.get("metadata") or {}).get("name") or ""))
        if self.on_deleted and event.type == "DELETED":
            self.on_deleted(event.object)

    def unsynced(self, error: BaseException) -> None:
        self.cache.unsynced(self.resource)
        if self.on_error and isinstance(error, KubeError):
            self.on_error(self.resource, error)


class Watcher:
    def __init__(
        self,
        kube: WebhookKube,
        cache: ClusterCache,
        timeout_s: float = 300.0,
        on_error: Callable[[Resource, KubeError], None] | None = None,
        on_remediation: Callable[[str], None] | None = None,
        on_remediation_deleted: Callable[[JSON], None] | None = None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.timeout_s = timeout_s
        self.on_error = on_error
        self.on_remediation = on_remediation
        self.on_remediation_deleted = on_remediation_deleted
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for resource in Resource:
            ours = resource is Resource.REMEDIATIONS
            sink = _CacheSink(self.cache, resource, self.on_error,
                              self.on_remediation if ours else None,
                              self.on_remediation_deleted if ours else None)
            reflector = Reflector(
                str(resource),
                functools.partial(self.kube.list, resource),
                functools.partial(self.kube.watch, resource),
                sink,
                self._stop,
                self.timeout_s,
            )
            thread = threading.Thread(target=reflector.run, name=f"watch-{resource}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, join_s: float = 0.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(join_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()
