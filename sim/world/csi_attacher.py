"""The CSI external-attacher sidecar (kubernetes-csi/external-attacher, pkg/controller
csi_handler.go) for the simulator's driver `sim.csi.k8s.io`.

A VolumeAttachment gets the finalizer `external-attacher/sim-csi-k8s-io` before the
driver is asked to publish it; attach_delay_s later (ControllerPublishVolume) its
`status.attached` turns true. A deleted VolumeAttachment stays (deletionTimestamp set)
while the driver unpublishes it: csi_detach_delay_s later the finalizer is removed and the
object goes. Deleting a VolumeAttachment by hand therefore detaches nothing at once.

`stall(until)` is the fault `csi-stall`: the driver's ControllerUnpublishVolume hangs
(a storage backend that is slow or stuck): no detach completes before `until`, those
already under way included; they complete at its end once their own delay has passed.
"""

from __future__ import annotations

from typing import Any

from ..apiserver.errors import ApiError
from .controller_config import ControllerConfig
from .facts import CSI_DRIVER

FINALIZER = "external-attacher/" + "".join(c if c.isalnum() or c == "-" else "-" for c in CSI_DRIVER)


class ExternalAttacher:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self._publish_started: dict[str, float] = {}  # by VolumeAttachment uid
        self._unpublish_started: dict[str, float] = {}
        self.stalled_until = 0.0  # no ControllerUnpublishVolume completes before this (clock)

    def stall(self, until: float) -> None:
        self.stalled_until = max(self.stalled_until, until)

    def run(self) -> None:
        cfg = self.cfg
        now = cfg.clock()
        rt = cfg.rt("volumeattachments", "storage.k8s.io")
        live = set()
        for (_, name), entry in cfg.items("volumeattachments", "storage.k8s.io"):
            va = entry.obj()
            if (va.get("spec") or {}).get("attacher") != CSI_DRIVER:
                continue
            meta = va["metadata"]
            uid = meta["uid"]
            live.add(uid)
            finalizers = meta.get("finalizers") or []
            if meta.get("deletionTimestamp"):
                if FINALIZER in finalizers:
                    started = self._unpublish_started.setdefault(uid, now)
                    if now - started >= cfg.timings.csi_detach_delay_s and now >= self.stalled_until:
                        self._release(rt, name, uid, (va.get("spec") or {}).get("nodeName", ""))
                continue
            if (va.get("status") or {}).get("attached"):
                continue
            if FINALIZER not in finalizers:
                def add(obj: dict[str, Any], uid: str = uid) -> bool | None:
                    if obj["metadata"]["uid"] != uid or obj["metadata"].get("deletionTimestamp"):
                        return False
                    obj["metadata"].setdefault("finalizers", []).append(FINALIZER)
                    return None

                cfg.registry.mutate(rt, "", name, add)
                self._publish_started.setdefault(uid, now)
                continue
            started = self._publish_started.setdefault(uid, now)
            if now - started >= cfg.timings.attach_delay_s:
                def attached(obj: dict[str, Any], uid: str = uid) -> bool | None:
                    if obj["metadata"]["uid"] != uid:
                        return False
                    obj.setdefault("status", {})["attached"] = True
                    return None

                cfg.registry.mutate(rt, "", name, attached, subresource="status")
        for table in (self._publish_started, self._unpublish_started):
            for uid in [u for u in table if u not in live]:
                del table[uid]

    def _release(self, rt: Any, name: str, uid: str, node: str) -> None:
        cfg = self.cfg

        def detached(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != uid:
                return False
            obj.setdefault("status", {})["attached"] = False
            return None

        def drop(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != uid:
                return False
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != FINALIZER]
            return None

        try:
            cfg.registry.mutate(rt, "", name, detached, subresource="status")
            cfg.registry.mutate(rt, "", name, drop)
        except ApiError:
            return
        pv = name
        cfg.timeline.add("csi-unpublished", node, f"volumeattachment/{pv}",
                         "ControllerUnpublishVolume done: finalizer removed")
