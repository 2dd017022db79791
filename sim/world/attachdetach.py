"""The attach/detach controller (pkg/controller/volume/attachdetach), CSI volumes only.

It keeps its actual state of the world in memory: (PV, node) pairs it attached, each
mounted by the node exactly while the node's `status.volumesInUse` lists the volume
(attach_detach_controller.go `processVolumesInUse`, run on every Node update, and
actual_state_of_world.go `SetVolumeMountedByNode`, which sets the flag either way; the
Kubernetes releases before the attach state was tracked refused to clear a flag the node
had never set, and this simulator once copied that). A pair it has just attached is
assumed mounted until the node's status is read again. Every controller period (real:
100 ms) the reconciler:

- detaches a volume no scheduled, non-terminal pod needs any more once the node no longer
  mounts it, or at once when the node carries `node.kubernetes.io/out-of-service`, or
  after max_wait_for_unmount (6 min, counted from ITS first detach request: a restart
  counts again) when the node is not healthy. Detaching deletes the VolumeAttachment; the
  pair stays in the actual state until the object is gone, i.e. until the CSI
  external-attacher has unpublished the volume and removed its finalizer;
- attaches what pods need by creating the VolumeAttachment and waiting for the attacher
  to report `status.attached`, then records `SuccessfulAttachVolume` on the pods;
- refuses to attach a ReadWriteOnce volume that its actual state has on another node,
  recording `FailedAttachVolume` "Multi-Attach error for volume ..." on the waiting pods.

Only every adc_sync_period (reconcilerSyncDuration, 60 s) does it re-check its actual
state against the VolumeAttachments (VolumesAreAttached): an attachment deleted by someone
else is noticed then, and not before. A started controller populates its actual state from
the attached VolumeAttachments, each mounted as its node's `volumesInUse` says
(`populateActualStateOfWorld`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ..apiserver.errors import ApiError
from .controller_config import ControllerConfig
from .facts import CSI_DRIVER, OUT_OF_SERVICE, attachment_name, has_taint_key, ready_status
from .recorder import object_ref

COMPONENT = "attachdetach-controller"
Key = tuple[str, str]  # (pv, node)


class DetachReason(enum.StrEnum):
    UNMOUNTED = "node confirmed unmount"
    OUT_OF_SERVICE = "node has the out-of-service taint: detaching without waiting for unmount"
    MAX_WAIT = "max wait for unmount elapsed on an unhealthy node: force detach"


def detach_decision(mounted: bool, healthy: bool, out_of_service: bool, waited_s: float,
                    max_wait_s: float) -> DetachReason | None:
    """The reconciler's rule for a volume no pod needs: None means keep waiting."""
    if out_of_service:
        return DetachReason.OUT_OF_SERVICE
    if not mounted:
        return DetachReason.UNMOUNTED
    if not healthy and waited_s >= max_wait_s:
        return DetachReason.MAX_WAIT
    return None


def multi_attach_allowed(pv: dict[str, Any]) -> bool:
    modes = (pv.get("spec") or {}).get("accessModes") or []
    return any(m in ("ReadWriteMany", "ReadOnlyMany") for m in modes)


@dataclass
class Attached:
    va_name: str
    mounted: bool = True  # assumed, until the node's status is read
    detach_requested_at: float | None = None
    detaching: str = ""  # the reason, once the VolumeAttachment was deleted


class AttachDetachController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self.asw: dict[Key, Attached] = {}
        self._attaching: set[Key] = set()
        self._multi_reported: set[tuple[str, str]] = set()  # (pod uid, pv)
        self._next_sync = cfg.clock() + cfg.timings.adc_sync_period_s
        self._populate()

    def _populate(self) -> None:
        for _, entry in self.cfg.items("volumeattachments", "storage.k8s.io"):
            va = entry.obj()
            spec = va.get("spec") or {}
            if spec.get("attacher") == CSI_DRIVER and (va.get("status") or {}).get("attached"):
                key = ((spec.get("source") or {}).get("persistentVolumeName", ""), spec.get("nodeName", ""))
                self.asw[key] = Attached(va["metadata"]["name"], mounted=key[0] in self._in_use(key[1]))

    def run(self) -> None:
        now = self.cfg.clock()
        desired = self._desired()
        self._volumes_in_use()
        self._finish_operations(desired)
        for key, att in list(self.asw.items()):
            if key in desired:
                att.detach_requested_at = None
            elif not att.detaching:
                self._maybe_detach(key, att, now)
        for key in sorted(desired):
            if key not in self.asw and key not in self._attaching:
                self._maybe_attach(key, desired[key])
        if now >= self._next_sync:
            self._next_sync = now + self.cfg.timings.adc_sync_period_s
            self._sync_actual_state()

    # -- desired state ----------------------------------------------------------------

    def _desired(self) -> dict[Key, list[dict[str, Any]]]:
        cfg = self.cfg
        desired: dict[Key, list[dict[str, Any]]] = {}
        for (ns, _), entry in cfg.items("pods"):
            node = entry.fields.get("spec.nodeName", "")
            if not node or not entry.fields.get("sim.claims") or \
                    entry.fields.get("status.phase") in ("Succeeded", "Failed"):
                continue
            for claim in entry.fields["sim.claims"].split(","):
                pvc = cfg.obj("persistentvolumeclaims", ns, claim)
                pv = ((pvc or {}).get("spec") or {}).get("volumeName")
                if pv:
                    desired.setdefault((pv, node), []).append(entry.obj())
        return desired

    def _in_use(self, node: str) -> set[str]:
        """The PVs the node's status lists in volumesInUse."""
        obj = self.cfg.obj("nodes", "", node) or {}
        return {v.rsplit("^", 1)[-1] for v in (obj.get("status") or {}).get("volumesInUse") or []}

    def _volumes_in_use(self) -> None:
        """The Node updates: SetVolumeMountedByNode(listed in volumesInUse), either way."""
        by_node: dict[str, set[str]] = {}
        for (pv, node), att in self.asw.items():
            if node not in by_node:
                by_node[node] = self._in_use(node)
            att.mounted = pv in by_node[node]

    def _finish_operations(self, desired: dict[Key, list[dict[str, Any]]]) -> None:
        cfg = self.cfg
        for key in list(self._attaching):
            va = cfg.obj("volumeattachments", "", attachment_name(*key), "storage.k8s.io")
            if va is None:
                self._attaching.discard(key)  # deleted under us: the next pass tries again
            elif (va.get("status") or {}).get("attached") and not va["metadata"].get("deletionTimestamp"):
                self._attaching.discard(key)
                self.asw[key] = Attached(va["metadata"]["name"])
                for pod in desired.get(key, []):
                    cfg.events.record(object_ref({**pod, "kind": "Pod", "apiVersion": "v1"}), "Normal",
                                      "SuccessfulAttachVolume",
                                      f'AttachVolume.Attach succeeded for volume "{key[0]}" ', COMPONENT)
        for key, att in list(self.asw.items()):
            if att.detaching and cfg.obj("volumeattachments", "", att.va_name, "storage.k8s.io") is None:
                del self.asw[key]
                cfg.timeline.add("detach", key[1], f"pv/{key[0]}", att.detaching)

    # -- operations -------------------------------------------------------------------

    def _maybe_detach(self, key: Key, att: Attached, now: float) -> None:
        cfg = self.cfg
        pv, node_name = key
        if att.detach_requested_at is None:
            att.detach_requested_at = now
        node = cfg.obj("nodes", "", node_name)
        healthy = node is not None and ready_status(node) == "True"
        oos = node is not None and has_taint_key(node, OUT_OF_SERVICE)
        reason = detach_decision(att.mounted, healthy, oos, now - att.detach_requested_at,
                                 cfg.timings.max_wait_for_unmount_s)
        if reason is None:
            return
        try:
            cfg.registry.delete(cfg.rt("volumeattachments", "storage.k8s.io"), "", att.va_name)
        except ApiError as err:
            if err.code != 404:
                return
        att.detaching = str(reason)
        cfg.timeline.add("detach-requested", node_name, f"pv/{pv}", str(reason))

    def _maybe_attach(self, key: Key, pods: list[dict[str, Any]]) -> None:
        cfg = self.cfg
        pv, node = key
        pv_obj = cfg.obj("persistentvolumes", "", pv) or {}
        elsewhere = sorted({n for (p, n) in (*self.asw, *self._attaching) if p == pv and n != node})
        if elsewhere and not multi_attach_allowed(pv_obj):
            self._report_multi_attach(key, pods, elsewhere)
            return
        va_name = attachment_name(pv, node)
        existing = cfg.obj("volumeattachments", "", va_name, "storage.k8s.io")
        if existing is not None and existing["metadata"].get("deletionTimestamp"):
            return  # still being detached: attach again once it is gone
        if existing is None:
            try:
                cfg.registry.create(cfg.rt("volumeattachments", "storage.k8s.io"), "", {
                    "metadata": {"name": va_name},
                    "spec": {"attacher": CSI_DRIVER, "nodeName": node,
                             "source": {"persistentVolumeName": pv}}})
            except ApiError:
                return
            cfg.timeline.add("attach", node, f"pv/{pv}", "VolumeAttachment created")
        self._attaching.add(key)

    def _report_multi_attach(self, key: Key, pods: list[dict[str, Any]], elsewhere: list[str]) -> None:
        cfg = self.cfg
        pv, node = key
        new = [p for p in pods if (p["metadata"]["uid"], pv) not in self._multi_reported]
        if not new:
            return
        users = sorted({p["metadata"]["name"] for (p_pv, n), ps in self._desired().items()
                        if p_pv == pv and n != node for p in ps})
        for pod in new:
            self._multi_reported.add((pod["metadata"]["uid"], pv))
            same_ns = [u for u in users]  # the simulator's volumes are used within one namespace
            detail = (f"Volume is already used by pod(s) {', '.join(same_ns)}" if same_ns else
                      "Volume is already exclusively attached to one node and can't be attached to another")
            cfg.events.record(object_ref({**pod, "kind": "Pod", "apiVersion": "v1"}), "Warning",
                              "FailedAttachVolume", f'Multi-Attach error for volume "{pv}" {detail}', COMPONENT)
        cfg.timeline.add("multi-attach-wait", node, f"pv/{pv}",
                         f"volume is still attached to {', '.join(elsewhere)}")

    def _sync_actual_state(self) -> None:
        """VolumesAreAttached: forget pairs whose VolumeAttachment is gone or not attached."""
        cfg = self.cfg
        for key, att in list(self.asw.items()):
            if att.detaching:
                continue
            va = cfg.obj("volumeattachments", "", att.va_name, "storage.k8s.io")
            if va is None or not (va.get("status") or {}).get("attached"):
                del self.asw[key]
                cfg.timeline.add("detach", key[1], f"pv/{key[0]}",
                                 "sync found the VolumeAttachment gone: marked detached")
