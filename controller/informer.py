"""The controller's watch-fed views: one `core.informer.Store` per kind, kept current
by a `core.informer.Reflector` on its own thread (list, watch, relist on 410 Gone,
back off and mark the view unsynced on errors, so the controller never decides on a
view it cannot trust)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.kube import ControllerKube, Kind
from core.informer import Reflector, Store


class Informer(Store):
    def __init__(self, kube: ControllerKube, kind: Kind,
                 on_change: Callable[[str], None] | None = None, timeout_s: float = 300.0) -> None:
        super().__init__(on_change)
        self.kind = kind
        self._stop = threading.Event()
        reflector = Reflector(str(kind), lambda: kube.list(kind),
                              lambda version, timeout: kube.watch(kind, version, timeout),
                              self, self._stop, timeout_s)
        self._thread = threading.Thread(target=reflector.run, name=f"informer-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
