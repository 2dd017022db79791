"""List-then-watch loops that keep the `ClusterCache` current, one thread per resource.

The informer pattern, small: LIST, then WATCH from the list's resourceVersion; a watch
that ends (server timeout) is reopened from the last version seen; a 410 Gone relists at
once; any other failure marks that resource unsynced (requests then wait briefly or
answer 503, rather than decide on a stale view) and retries with capped exponential
backoff. Threads are daemons and also stop when `stop()` is called.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.kube import KubeError, WatchExpired
from webhook.cache import ClusterCache
from webhook.kube import Resource, WebhookKube

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0
QUICK_CLOSE_S = 0.05


class Watcher:
    def __init__(
        self,
        kube: WebhookKube,
        cache: ClusterCache,
        timeout_s: float = 300.0,
        on_error: Callable[[Resource, KubeError], None] | None = None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.timeout_s = timeout_s
        self.on_error = on_error
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for resource in Resource:
            thread = threading.Thread(
                target=self._run, args=(resource,), name=f"watch-{resource}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, join_s: float = 0.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(join_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self, resource: Resource) -> None:
        backoff = INITIAL_BACKOFF_S
        while not self._stop.is_set():
            try:
                listing = self.kube.list(resource)
                self.cache.replace(resource, listing.items, listing.resource_version)
                version = listing.resource_version
                backoff = INITIAL_BACKOFF_S
                while not self._stop.is_set():
                    opened = time.monotonic()
                    for event in self.kube.watch(resource, version, self.timeout_s):
                        if self._stop.is_set():
                            return
                        if event.type == "ERROR":
                            raise KubeError(500, "WatchError", str(event.object)[:200])
                        self.cache.apply(resource, event)
                        version = str(
                            (event.object.get("metadata") or {}).get("resourceVersion") or version
                        )
                    if time.monotonic() - opened < QUICK_CLOSE_S:  # do not spin on a server
                        self._stop.wait(QUICK_CLOSE_S)  # that closes watches at once
            except WatchExpired:
                log.info("watch of %s expired; listing again", resource)
                continue
            except KubeError as exc:
                self.cache.unsynced(resource)
                if self.on_error:
                    self.on_error(resource, exc)
                log.warning("watch of %s failed (%s); retrying in %.1fs", resource, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except Exception:  # a bug must not silently end the cache's updates
                self.cache.unsynced(resource)
                log.exception("watch of %s crashed; retrying in %.1fs", resource, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
