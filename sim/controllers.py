"""The control-plane loops nodewarden depends on, with Kubernetes' behaviour and timings:
node lifecycle, taint eviction, pod garbage collection, attach/detach and the scheduler.

Each runs on the cluster's ticker and skips its turn while the control plane is down
(an API outage). See docs/sim.md for the correspondence with the real controllers.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .timefmt import parse, rfc3339
from .tolerations import eviction_delay_s, untolerated

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger("sim.controllers")

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
STATUS_UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def ready_status(node: dict[str, Any]) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return "Unknown"


def has_taint_key(node: dict[str, Any], key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or [])


class NodeLifecycleController:
    """Marks nodes whose kubelet went silent Unknown after the grace period, and keeps the
    unreachable/not-ready taints in line with the Ready condition."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self._probe: dict[str, float] = {}  # node -> last time we saw it alive

    def restart(self) -> None:
        """A freshly started controller trusts every node for one grace period."""
        now = self.c.clock()
        self._probe = {name: now for name in self._probe}

    def run(self) -> None:
        c = self.c
        if not c.control_plane_up():
            return
        now = c.clock()
        grace = c.timings.node_monitor_grace_period_s
        nodes_rt, leases_rt = c.rt("nodes"), c.rt("leases", "coordination.k8s.io")
        for (_, name), entry in c.store.items(c.registry.table(nodes_rt)):
            node = entry.obj()
            lease = c.store.get(c.registry.table(leases_rt), "kube-node-lease", name)
            renew = parse(((lease.obj().get("spec") or {}).get("renewTime")) if lease else None) or 0.0
            heartbeat = 0.0
            for cond in (node.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Ready":
                    heartbeat = parse(cond.get("lastHeartbeatTime")) or 0.0
            seen = max(renew, heartbeat, self._probe.get(name, now))
            self._probe[name] = seen
            if now - seen > grace and ready_status(node) != "Unknown":
                self._mark_unknown(name)
            self._sync_taints(name)

    def _mark_unknown(self, name: str) -> None:
        c = self.c
        now = rfc3339(c.clock())

        def update(obj: dict[str, Any]) -> None:
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if cond.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure") \
                        and cond.get("status") != "Unknown":
                    cond.update({"status": "Unknown", "reason": "NodeStatusUnknown",
                                 "message": STATUS_UNKNOWN_MESSAGE, "lastTransitionTime": now})

        c.registry.mutate(c.rt("nodes"), "", name, update, subresource="status")

    def _sync_taints(self, name: str) -> None:
        c = self.c
        now = rfc3339(c.clock())

        def update(obj: dict[str, Any]) -> bool | None:
            ready = ready_status(obj)
            want = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready)
            taints = list((obj.get("spec") or {}).get("taints") or [])
            kept = [t for t in taints if t.get("key") not in (UNREACHABLE, NOT_READY)
                    or t.get("key") == want]
            present = {(t.get("key"), t.get("effect")) for t in kept}
            added = []
            if want:
                for effect in ("NoSchedule", "NoExecute"):
                    if (want, effect) not in present:
                        taint = {"key": want, "effect": effect}
                        if effect == "NoExecute":
                            taint["timeAdded"] = now
                        kept.append(taint)
                        added.append(f"{want}:{effect}")
            if kept == taints:
                return False
            obj.setdefault("spec", {})["taints"] = kept
            return None

        c.registry.mutate(c.rt("nodes"), "", name, update)


class TaintEvictionController:
    """Deletes (gracefully) pods that do not tolerate a node's NoExecute taints, after
    their tolerationSeconds, marking them with the DisruptionTarget condition."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def run(self) -> None:
        c = self.c
        if not c.control_plane_up():
            return
        now = c.clock()
        pods_rt = c.rt("pods")
        pods_table = c.registry.table(pods_rt)
        for (_, node_name), entry in c.store.items(c.registry.table(c.rt("nodes"))):
            node = entry.obj()
            taints = [t for t in (node.get("spec") or {}).get("taints") or []
                      if t.get("effect") == "NoExecute"]
            if not taints:
                continue
            added = min((parse(t.get("timeAdded")) or now) for t in taints)
            for ns, pod_name in c.store.keys_by(pods_table, "spec.nodeName", node_name):
                pod_entry = c.store.get(pods_table, ns, pod_name)
                if pod_entry is None:
                    continue
                pod = pod_entry.obj()
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                delay = eviction_delay_s(taints, (pod.get("spec") or {}).get("tolerations") or [])
                if delay is None or now < added + c.timings.real(delay):
                    continue
                self._evict(pod, node_name, taints)

    def _evict(self, pod: dict[str, Any], node_name: str, taints: list[dict[str, Any]]) -> None:
        c = self.c
        meta = pod["metadata"]
        now = rfc3339(c.clock())

        def mark(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != meta["uid"]:
                return False
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [x for x in conds if x.get("type") != "DisruptionTarget"]
            conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                          "message": "Taint manager: deleting due to NoExecute taint",
                          "lastTransitionTime": now})
            return None

        try:
            c.registry.mutate(c.rt("pods"), meta["namespace"], meta["name"], mark, subresource="status")
            c.registry.delete(c.rt("pods"), meta["namespace"], meta["name"],
                              preconditions={"uid": meta["uid"]})
        except ApiError:
            return
        keys = ",".join(sorted({str(t.get("key")) for t in taints}))
        c.timeline.add("eviction", node_name, f"{meta['namespace']}/{meta['name']}",
                       f"NoExecute taint {keys}", uid=meta["uid"])


class PodGCController:
    """Force-deletes terminating pods on not-Ready nodes that carry the out-of-service
    taint key (phase Failed first), and pods whose node no longer exists."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def run(self) -> None:
        c = self.c
        if not c.control_plane_up():
            return
        nodes_table = c.registry.table(c.rt("nodes"))
        pods_rt = c.rt("pods")
        for _key, entry in c.store.items(c.registry.table(pods_rt)):
            node_name = entry.fields.get("spec.nodeName", "")
            if not node_name:
                continue
            node_entry = c.store.get(nodes_table, "", node_name)
            pod = None
            if node_entry is None:
                reason = "orphaned: node no longer exists"
            else:
                node = node_entry.obj()
                pod = entry.obj()
                if not pod["metadata"].get("deletionTimestamp"):
                    continue
                if ready_status(node) == "True" or not has_taint_key(node, OUT_OF_SERVICE):
                    continue
                reason = "terminating on a not-Ready node with the out-of-service taint"
            pod = pod or entry.obj()
            self._force_delete(pod, node_name, reason)

    def _force_delete(self, pod: dict[str, Any], node_name: str, reason: str) -> None:
        c = self.c
        meta = pod["metadata"]

        def failed(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != meta["uid"]:
                return False
            obj.setdefault("status", {})["phase"] = "Failed"
            return None

        try:
            c.registry.mutate(c.rt("pods"), meta["namespace"], meta["name"], failed, subresource="status")
            c.registry.delete(c.rt("pods"), meta["namespace"], meta["name"], grace_period=0,
                              preconditions={"uid": meta["uid"]})
        except ApiError:
            return
        c.timeline.add("pod-force-deleted", node_name, f"{meta['namespace']}/{meta['name']}", reason,
                       uid=meta["uid"], by="pod-gc")


def attachment_name(pv: str, node: str) -> str:
    digest = hashlib.sha256(f"{pv}{'sim.csi.k8s.io'}{node}".encode()).hexdigest()
    return f"csi-{digest}"


class AttachDetachController:
    """One VolumeAttachment per (PV, node). Attaches what pods need (one node at a time for
    ReadWriteOnce volumes); detaches a volume no pod needs only when its node confirms the
    unmount, or after max_wait_for_unmount on an unhealthy node, or at once when the node
    carries the out-of-service taint."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self._undesired_since: dict[str, float] = {}
        self._waiting: set[tuple[str, str]] = set()

    def run(self) -> None:
        c = self.c
        if not c.control_plane_up():
            return
        now = c.clock()
        desired = self._desired()
        va_rt = c.rt("volumeattachments", "storage.k8s.io")
        actual: dict[tuple[str, str], dict[str, Any]] = {}
        for _, entry in c.store.items(c.registry.table(va_rt)):
            va = entry.obj()
            spec = va.get("spec") or {}
            actual[((spec.get("source") or {}).get("persistentVolumeName", ""), spec.get("nodeName", ""))] = va
        for (pv, node), va in actual.items():
            if (pv, node) in desired:
                self._undesired_since.pop(va["metadata"]["name"], None)
                if not (va.get("status") or {}).get("attached"):
                    created = parse(va["metadata"].get("creationTimestamp")) or now
                    if now - created >= c.timings.attach_delay_s:
                        self._set_attached(va)
                continue
            self._maybe_detach(pv, node, va, now)
        for pv, node in desired:
            if (pv, node) in actual:
                continue
            elsewhere = [n for (p, n) in actual if p == pv and n != node]
            if elsewhere:
                if (pv, node) not in self._waiting:
                    self._waiting.add((pv, node))
                    c.timeline.add("multi-attach-wait", node, f"pv/{pv}",
                                   f"volume is still attached to {', '.join(elsewhere)}")
                continue
            self._waiting.discard((pv, node))
            self._attach(pv, node)

    def _desired(self) -> set[tuple[str, str]]:
        c = self.c
        pvc_table = c.registry.table(c.rt("persistentvolumeclaims"))
        desired = set()
        for (ns, _), entry in c.store.items(c.registry.table(c.rt("pods"))):
            node = entry.fields.get("spec.nodeName", "")
            if not node or entry.fields.get("status.phase") in ("Succeeded", "Failed"):
                continue
            pod = entry.obj()
            for vol in (pod.get("spec") or {}).get("volumes") or []:
                claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
                if not claim:
                    continue
                pvc = c.store.get(pvc_table, ns, claim)
                pv = ((pvc.obj().get("spec") or {}).get("volumeName")) if pvc else None
                if pv:
                    desired.add((pv, node))
        return desired

    def _attach(self, pv: str, node: str) -> None:
        c = self.c
        try:
            c.registry.create(c.rt("volumeattachments", "storage.k8s.io"), "", {
                "metadata": {"name": attachment_name(pv, node)},
                "spec": {"attacher": "sim.csi.k8s.io", "nodeName": node,
                         "source": {"persistentVolumeName": pv}}})
        except ApiError:
            return
        c.timeline.add("attach", node, f"pv/{pv}", "VolumeAttachment created")

    def _set_attached(self, va: dict[str, Any]) -> None:
        c = self.c

        def update(obj: dict[str, Any]) -> None:
            obj.setdefault("status", {})["attached"] = True

        c.registry.mutate(c.rt("volumeattachments", "storage.k8s.io"), "", va["metadata"]["name"],
                          update, subresource="status")

    def _maybe_detach(self, pv: str, node_name: str, va: dict[str, Any], now: float) -> None:
        c = self.c
        name = va["metadata"]["name"]
        since = self._undesired_since.setdefault(name, now)
        node_entry = c.store.get(c.registry.table(c.rt("nodes")), "", node_name)
        node = node_entry.obj() if node_entry else {}
        in_use = any(v.endswith(f"^{pv}") for v in (node.get("status") or {}).get("volumesInUse") or [])
        reason = None
        if not node_entry:
            reason = "node deleted"
        elif has_taint_key(node, OUT_OF_SERVICE):
            reason = "node has the out-of-service taint: detaching without waiting for unmount"
        elif not in_use:
            reason = "node confirmed unmount"
        elif ready_status(node) != "True" and now - since >= c.timings.max_wait_for_unmount_s:
            reason = "max wait for unmount elapsed on an unhealthy node: force detach"
        if reason is None:
            return
        try:
            c.registry.delete(c.rt("volumeattachments", "storage.k8s.io"), "", name)
        except ApiError:
            return
        self._undesired_since.pop(name, None)
        c.timeline.add("detach", node_name, f"pv/{pv}", reason)


class Scheduler:
    """Binds pending pods to Ready, schedulable nodes whose taints they tolerate, spreading
    them over the least loaded nodes."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def run(self) -> None:
        c = self.c
        if not c.control_plane_up():
            return
        pods_rt = c.rt("pods")
        pods_table = c.registry.table(pods_rt)
        pending = [(k, e) for k, e in c.store.items(pods_table) if not e.fields.get("spec.nodeName")]
        if not pending:
            return
        nodes = []
        for (_, name), entry in c.store.items(c.registry.table(c.rt("nodes"))):
            node = entry.obj()
            if ready_status(node) != "True" or (node.get("spec") or {}).get("unschedulable"):
                continue
            nodes.append((name, node, len(c.store.keys_by(pods_table, "spec.nodeName", name))))
        for (ns, name), entry in sorted(pending):
            pod = entry.obj()
            if pod["metadata"].get("deletionTimestamp"):
                continue
            spec = pod.get("spec") or {}
            tolerations = spec.get("tolerations") or []
            selector = spec.get("nodeSelector") or {}
            fits = [(load, n) for n, node, load in nodes
                    if not untolerated((node.get("spec") or {}).get("taints") or [], tolerations,
                                       ("NoSchedule", "NoExecute"))
                    and all((node["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
            if not fits:
                continue
            _load, chosen = min(fits)
            if self._bind(ns, name, pod["metadata"]["uid"], chosen):
                nodes = [(n, nd, ld + 1 if n == chosen else ld) for n, nd, ld in nodes]

    def _bind(self, ns: str, name: str, uid: str, node: str) -> bool:
        c = self.c
        now = rfc3339(c.clock())

        def bind(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != uid or obj.get("spec", {}).get("nodeName"):
                return False
            obj["spec"]["nodeName"] = node
            return None

        result = c.registry.mutate(c.rt("pods"), ns, name, bind)
        if result is None or result.obj.get("spec", {}).get("nodeName") != node:
            return False

        def scheduled(obj: dict[str, Any]) -> None:
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [x for x in conds if x.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now})

        c.registry.mutate(c.rt("pods"), ns, name, scheduled, subresource="status")
        c.timeline.add("scheduled", node, f"{ns}/{name}", f"bound to {node}", uid=uid)
        return True
