"""The control-plane loops nodewarden depends on, with Kubernetes' behaviour and timings:
node lifecycle, taint eviction, pod garbage collection, attach/detach and the scheduler.

Each runs on the cluster's ticker and skips its turn while the control plane is down
(an API outage). See docs/sim.md for the correspondence with the real controllers.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from typing import TYPE_CHECKING, Any

from ..apiserver.errors import ApiError
from ..timefmt import parse, rfc3339
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


def derived_fields(rt: Any, obj: dict[str, Any]) -> dict[str, str]:
    """Facts the controllers filter on, indexed at write time (see Registry.derived_fields)."""
    if rt.kind == "Node":
        taints = (obj.get("spec") or {}).get("taints") or []
        return {"sim.ready": ready_status(obj),
                "sim.noexecute": "1" if any(t.get("effect") == "NoExecute" for t in taints) else "",
                "sim.oos": "1" if any(t.get("key") == OUT_OF_SERVICE for t in taints) else "",
                "sim.lifecycle": ",".join(sorted(f"{t.get('key')}:{t.get('effect')}" for t in taints
                                                 if t.get("key") in (UNREACHABLE, NOT_READY)))}
    if rt.kind == "Pod":
        claims = [str((v.get("persistentVolumeClaim") or {}).get("claimName"))
                  for v in (obj.get("spec") or {}).get("volumes") or [] if v.get("persistentVolumeClaim")]
        meta = obj.get("metadata") or {}
        owner = next((o.get("uid", "") for o in meta.get("ownerReferences") or [] if o.get("controller")), "")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (obj.get("status") or {}).get("conditions") or [])
        return {"sim.claims": ",".join(claims), "sim.owner": owner,
                "sim.deleting": "1" if meta.get("deletionTimestamp") else "",
                "sim.podready": "1" if ready else ""}
    return {}


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
            lease = c.store.get(c.registry.table(leases_rt), "kube-node-lease", name)
            renew = parse(((lease.obj().get("spec") or {}).get("renewTime")) if lease else None) or 0.0
            seen = max(renew, self._probe.get(name, now))
            if now - seen > grace:  # the lease is stale: the status heartbeat may be newer
                for cond in (entry.obj().get("status") or {}).get("conditions") or []:
                    if cond.get("type") == "Ready":
                        seen = max(seen, parse(cond.get("lastHeartbeatTime")) or 0.0)
            self._probe[name] = seen
            ready = entry.fields.get("sim.ready", "Unknown")
            if now - seen > grace and ready != "Unknown":
                self._mark_unknown(name)
                ready = "Unknown"
            want = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready)
            wanted = ",".join(sorted(f"{want}:{e}" for e in ("NoExecute", "NoSchedule"))) if want else ""
            if entry.fields.get("sim.lifecycle", "") != wanted or ready != entry.fields.get("sim.ready"):
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
            if not entry.fields.get("sim.noexecute"):
                continue
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
            if node_entry is None:
                reason = "orphaned: node no longer exists"
            else:
                if not entry.fields.get("sim.deleting"):
                    continue
                if node_entry.fields.get("sim.ready") == "True" or not node_entry.fields.get("sim.oos"):
                    continue
                reason = "terminating on a not-Ready node with the out-of-service taint"
            pod = entry.obj()
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
            if not node or not entry.fields.get("sim.claims") or \
                    entry.fields.get("status.phase") in ("Succeeded", "Failed"):
                continue
            for claim in entry.fields["sim.claims"].split(","):
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
    """Binds pending pods to Ready, schedulable nodes whose taints they tolerate and whose
    labels match their nodeSelector, choosing the least loaded node."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def run(self) -> None:
        c = self.c
        if not c.control_plane_up():
            return
        pods_table = c.registry.table(c.rt("pods"))
        pending = [(k, e) for k, e in c.store.items(pods_table)
                   if not e.fields.get("spec.nodeName") and not e.fields.get("sim.deleting")]
        if not pending:
            return
        nodes: dict[str, dict[str, Any]] = {}
        load: dict[str, int] = {}
        clean: list[tuple[int, str]] = []  # heap of untainted nodes by load (lazily updated)
        for (_, name), entry in c.store.items(c.registry.table(c.rt("nodes"))):
            if entry.fields.get("sim.ready") != "True" or entry.fields.get("spec.unschedulable") == "true":
                continue
            nodes[name] = entry.obj()
            load[name] = len(c.store.keys_by(pods_table, "spec.nodeName", name))
            if not (nodes[name].get("spec") or {}).get("taints"):
                clean.append((load[name], name))
        heapq.heapify(clean)
        tainted = [n for n in nodes if (nodes[n].get("spec") or {}).get("taints")]
        for (ns, name), entry in sorted(pending):
            pod = entry.obj()
            chosen = self._choose(pod.get("spec") or {}, nodes, load, clean, tainted)
            if chosen is None or not self._bind(ns, name, pod["metadata"]["uid"], chosen):
                continue
            load[chosen] += 1
            if chosen not in tainted:
                heapq.heappush(clean, (load[chosen], chosen))

    @staticmethod
    def _choose(spec: dict[str, Any], nodes: dict[str, dict[str, Any]], load: dict[str, int],
                clean: list[tuple[int, str]], tainted: list[str]) -> str | None:
        tolerations = spec.get("tolerations") or []
        selector = spec.get("nodeSelector") or {}

        def fits(name: str) -> bool:
            node = nodes[name]
            if untolerated((node.get("spec") or {}).get("taints") or [], tolerations,
                           ("NoSchedule", "NoExecute")):
                return False
            labels = node["metadata"].get("labels") or {}
            return all(labels.get(k) == v for k, v in selector.items())

        if selector:
            options = [(load[n], n) for n in nodes if fits(n)]
            return min(options)[1] if options else None
        while clean and clean[0][0] != load[clean[0][1]]:
            heapq.heappop(clean)  # a stale entry: that node has been given pods since
        options = [(load[n], n) for n in tainted if fits(n)]
        if clean:
            options.append(clean[0])
        return min(options)[1] if options else None

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
