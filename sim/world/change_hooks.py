"""What the world does when the API server commits a change: nudge the kubelet of the
node a Pod or an attached VolumeAttachment concerns (debounced, so a burst of writes
makes one sync), and put Node taint and Ready changes on the timeline (an out-of-service
taint also goes to the invariant monitor, which checks no pod of that node still runs).
Given the kubelets' sync functions, a ticker, the timeline and that one monitor hook —
never the cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..apiserver.resources import ResourceType
from ..apiserver.store import Entry
from .facts import ready_status
from .invariants import OUT_OF_SERVICE
from .ticker import Ticker
from .timeline import Timeline

NUDGE_DELAY_S = 0.02


class ChangeHooks:
    def __init__(self, syncs: dict[str, Callable[[], None]], ticker: Ticker, timeline: Timeline,
                 on_out_of_service: Callable[[str], None]) -> None:
        """syncs: node name -> its kubelet's sync(); on_out_of_service(node) when that taint lands."""
        self.syncs = syncs
        self.ticker = ticker
        self.timeline = timeline
        self.on_out_of_service = on_out_of_service
        self._pending: set[str] = set()
        self._lock = threading.RLock()

    def nudge(self, node: str) -> None:
        """Ask a kubelet to sync soon (debounced)."""
        with self._lock:
            if node in self._pending or node not in self.syncs:
                return
            self._pending.add(node)

        def sync() -> None:
            with self._lock:
                self._pending.discard(node)
            self.syncs[node]()

        self.ticker.call_later(NUDGE_DELAY_S, sync)

    def on_commit(self, rt: ResourceType, obj: dict[str, Any] | None, prev: Entry | None) -> None:
        if rt.kind == "Pod":
            node = ((obj or {}).get("spec") or {}).get("nodeName") or (
                prev.fields.get("spec.nodeName") if prev is not None else "")
            if node:
                self.nudge(node)
        elif rt.kind == "VolumeAttachment" and obj is not None:
            node = (obj.get("spec") or {}).get("nodeName")
            if node and (obj.get("status") or {}).get("attached"):
                self.nudge(node)
        elif rt.kind == "Node" and obj is not None:
            self._node_changed(obj, prev.obj() if prev is not None else {})

    def _node_changed(self, obj: dict[str, Any], old: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        old_taints = {(t.get("key"), t.get("effect")) for t in (old.get("spec") or {}).get("taints") or []}
        new_taints = {(t.get("key"), t.get("effect")) for t in (obj.get("spec") or {}).get("taints") or []}
        for key, effect in sorted(new_taints - old_taints, key=str):
            if key == OUT_OF_SERVICE:
                self.on_out_of_service(name)
            self.timeline.add("taint-added", name, f"node/{name}", f"{key}:{effect}", key=key, effect=effect)
        for key, effect in sorted(old_taints - new_taints, key=str):
            self.timeline.add("taint-removed", name, f"node/{name}", f"{key}:{effect}", key=key, effect=effect)
        before, after = ready_status(old) if old else "", ready_status(obj)
        if before and before != after:
            reason = next((c.get("reason", "") for c in (obj.get("status") or {}).get("conditions") or []
                           if c.get("type") == "Ready"), "")
            self.timeline.add("node-condition", name, f"node/{name}", f"Ready={after} ({reason})",
                              ready=after)
