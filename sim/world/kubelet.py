"""A kubelet per simulated node: renews the node Lease, posts node status, admits or
rejects the pods bound to the node, starts the admitted ones (once their volumes are
attached), completes graceful deletions, and — once it can reach the API again after a
partition — kills pods that no longer exist there. While it cannot reach the API it keeps
running what it runs: exactly the danger fencing guards against.

Admission, as the real kubelet's (pkg/kubelet/kubelet.go `HandlePodAdditions`,
`canAdmitPod`, `rejectPod`; pkg/kubelet/lifecycle/predicate.go `Admit`, `generalFilter`):
- once per pod per boot, when the kubelet first sees the pod (on its first sync after
  the boot for the pods already bound); the verdict stands for the rest of the boot: a
  pod admitted while it waits for its volumes starts even if a NoExecute taint arrives
  meanwhile (the taint-eviction controller then deletes it and the kubelet stops it);
- pods in a terminal phase, and pods already being deleted (the pod worker terminates
  them without ever starting them), are not admitted;
- of the node's taints (from the API's Node object, as the kubelet's node lister) only
  NoExecute ones count: a pod that does not tolerate one of them is rejected, whatever
  its tolerationSeconds (a toleration with tolerationSeconds still tolerates); NoSchedule
  is the scheduler's business. Static pods are exempt in the real kubelet; the simulator
  has none.
- a rejected pod gets a Warning Event with the predicate's name as the reason
  (`TaintToleration`, "Predicate TaintToleration failed: node(s) had taints that the pod
  didn't tolerate") and the status phase `Failed` with that reason and the message
  prefixed "Pod was rejected: ", reported until the API has it (the status manager
  retries). It never starts on this boot; its owner replaces it.
The simulated kubelet reads the Node from the store directly, so it never admits against
a stale view of the taints, which a real kubelet's informer can."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from ..apiserver.errors import ApiError
from ..timefmt import rfc3339, rfc3339_micro
from .nodes import RunningPod, SimNode
from .recorder import object_ref
from .tolerations import untolerated

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger("sim.kubelet")
CSI_DRIVER = "sim.csi.k8s.io"
COMPONENT = "kubelet"
TAINT_TOLERATION = "TaintToleration"  # the scheduler plugin's name, the kubelet's reason
TAINTS_NOT_TOLERATED = "node(s) had taints that the pod didn't tolerate"
# Conditions the kubelet owns (pkg/kubelet/types PodConditionsByKubelet): a rejection's
# status replaces them; others (DisruptionTarget, ...) are kept.
KUBELET_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized", "ContainersReady",
                                "PodReadyToStartContainers"})


def admission(pod: dict[str, Any], node_taints: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The kubelet's taint check at admission: None to admit, else (reason, message) of
    the rejection. Only NoExecute taints count; tolerationSeconds does not."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if untolerated(node_taints, tolerations, ("NoExecute",)):
        return TAINT_TOLERATION, f"Predicate {TAINT_TOLERATION} failed: {TAINTS_NOT_TOLERATED}"
    return None


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Kubelet:
    def __init__(self, cluster: Cluster, node: SimNode) -> None:
        self.cluster = cluster
        self.node = node
        self.user = f"system:node:{node.name}"

    # -- periodic duties ----------------------------------------------------------------

    def start(self, epoch: int) -> None:
        """Called when the node finishes booting: schedule this boot's duties."""
        t = self.cluster.timings
        alive = lambda: self.node.epoch == epoch  # noqa: E731
        ticker = self.cluster.ticker
        ticker.every(t.lease_renew_interval_s, self.renew_lease, first_delay=0.0, alive=alive)
        ticker.every(t.node_status_interval_s, self.post_status, first_delay=0.0, alive=alive)
        ticker.every(t.kubelet_sync_period_s, self.sync, first_delay=0.0, alive=alive)

    def reachable(self) -> bool:
        return self.node.kubelet_alive and self.cluster.api_reachable(self.node.name)

    def renew_lease(self) -> None:
        if not self.reachable():
            return
        c = self.cluster
        now = c.clock()
        rt = c.rt("leases", "coordination.k8s.io")

        def renew(lease: dict[str, Any]) -> None:
            spec = lease.setdefault("spec", {})
            spec["holderIdentity"] = self.node.name
            spec["leaseDurationSeconds"] = int(c.timings.lease_duration_s / c.timings.scale)
            spec["renewTime"] = rfc3339_micro(now)

        if c.registry.mutate(rt, "kube-node-lease", self.node.name, renew) is None:
            try:
                c.registry.create(rt, "kube-node-lease", {
                    "metadata": {"name": self.node.name, "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": self.node.name,
                         "uid": c.node_uid(self.node.name)}]},
                    "spec": {"holderIdentity": self.node.name,
                             "leaseDurationSeconds": int(c.timings.lease_duration_s / c.timings.scale),
                             "acquireTime": rfc3339_micro(now), "renewTime": rfc3339_micro(now)}})
            except ApiError as err:
                log.debug("lease create for %s: %s", self.node.name, err.message)

    def post_status(self) -> None:
        if not self.reachable():
            return
        c = self.cluster
        now = rfc3339(c.clock())
        node = self.node
        mounted = sorted(node.mounted_volumes())

        def update(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            conditions = {cond.get("type"): cond for cond in status.get("conditions") or []}
            wanted = [("MemoryPressure", "False", "KubeletHasSufficientMemory",
                       "kubelet has sufficient memory available"),
                      ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                      ("PIDPressure", "False", "KubeletHasSufficientPID",
                       "kubelet has sufficient PID available"),
                      ("Ready", "True", "KubeletReady", "kubelet is posting ready status")]
            new_conditions = []
            for ctype, value, reason, message in wanted:
                old = conditions.get(ctype) or {}
                transition = old.get("lastTransitionTime") if old.get("status") == value else now
                new_conditions.append({"type": ctype, "status": value, "reason": reason,
                                       "message": message, "lastHeartbeatTime": now,
                                       "lastTransitionTime": transition or now})
            status["conditions"] = new_conditions
            status.setdefault("nodeInfo", {})["bootID"] = node.boot_id
            status["volumesInUse"] = [f"kubernetes.io/csi/{CSI_DRIVER}^{pv}" for pv in mounted]

        c.registry.mutate(c.rt("nodes"), "", node.name, update, subresource="status")

    # -- pods ---------------------------------------------------------------------------

    def sync(self) -> None:
        """Reconcile what runs here with the pods the API binds to this node."""
        if not self.reachable():
            return
        self.node.synced_since_boot = True
        c = self.cluster
        pods_rt = c.rt("pods")
        bound: dict[str, dict[str, Any]] = {}
        for ns, name in c.store.keys_by(c.registry.table(pods_rt), "spec.nodeName", self.node.name):
            entry = c.store.get(c.registry.table(pods_rt), ns, name)
            if entry is not None:
                pod = entry.obj()
                bound[pod["metadata"]["uid"]] = pod
        node = self.node
        epoch = node.epoch
        with node.lock:
            gone = [uid for uid in [*node.running, *node.admitted] if uid not in bound]
            node.rejected = {uid: st for uid, st in node.rejected.items() if uid in bound}
        for uid in dict.fromkeys(gone):  # deleted from the API (e.g. force-deleted) while we ran it
            self._kill(uid, "pod no longer exists in the API")
        for uid, pod in bound.items():
            meta = pod["metadata"]
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp"):
                self._terminate(pod, epoch)
            elif phase in ("Succeeded", "Failed"):
                self._kill(uid, f"pod phase {phase}")
            elif uid in node.running and (phase != "Running" or not _ready(pod)):
                # Started while the API was out of reach, or marked not Ready by the node
                # lifecycle controller meanwhile: the status manager reports it now, as the
                # real kubelet's keeps syncing until the API has it.
                self._report_running(pod)
            elif uid not in node.running and uid not in node.starting:
                if uid not in node.admitted and not self._admit(pod):
                    continue  # rejected on this boot: it never starts here
                volumes = self._attached_volumes(pod)
                if volumes is None:
                    continue  # waiting for the attach/detach controller
                node.starting.add(uid)
                c.ticker.call_later(c.timings.pod_start_delay_s,
                                    functools.partial(self._start, pod, volumes, epoch))

    def _admit(self, pod: dict[str, Any]) -> bool:
        """Admit the pod (first seen on this boot) or reject it; a rejected pod's Failed
        status is reported again at each sync until the API has it."""
        c, node = self.cluster, self.node
        meta = pod["metadata"]
        uid, key = meta["uid"], f"{meta['namespace']}/{meta['name']}"
        with node.lock:
            status = node.rejected.get(uid)
        if status is not None:
            self._report_rejected(pod, status)
            return False
        entry = c.store.get(c.registry.table(c.rt("nodes")), "", node.name)
        taints = ((entry.obj().get("spec") or {}).get("taints") or []) if entry is not None else []
        verdict = admission(pod, taints)
        if verdict is None:
            with node.lock:
                node.admitted[uid] = key
            return True
        reason, message = verdict
        status = {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}"}
        with node.lock:
            node.rejected[uid] = status
        c.events.record(object_ref({**pod, "kind": "Pod", "apiVersion": "v1"}), "Warning", reason, message,
                        COMPONENT, host=node.name)
        refused = untolerated(taints, (pod.get("spec") or {}).get("tolerations") or [], ("NoExecute",))
        keys = ",".join(sorted({str(t.get("key")) for t in refused}))
        c.timeline.add("pod-rejected", node.name, key, f"{reason}: untolerated NoExecute taint {keys}", uid=uid)
        self._report_rejected(pod, status)
        return False

    def _report_rejected(self, pod: dict[str, Any], status: dict[str, str]) -> None:
        c = self.cluster
        meta = pod["metadata"]

        def update(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != meta["uid"]:
                return False
            old = obj.get("status") or {}
            kept = [cond for cond in old.get("conditions") or [] if cond.get("type") not in KUBELET_CONDITIONS]
            obj["status"] = {**status, "qosClass": old.get("qosClass", "BestEffort"),
                             **({"conditions": kept} if kept else {})}
            return None

        try:
            c.registry.mutate(c.rt("pods"), meta["namespace"], meta["name"], update, subresource="status")
        except ApiError as err:
            log.debug("rejection status of %s: %s", meta["name"], err.message)

    def _attached_volumes(self, pod: dict[str, Any]) -> tuple[str, ...] | None:
        """PV names of the pod's claims, or None while any is unbound or unattached here."""
        c = self.cluster
        ns = pod["metadata"]["namespace"]
        pvs = []
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = c.store.get(c.registry.table(c.rt("persistentvolumeclaims")), ns, claim)
            if pvc is None:
                return None
            pv = (pvc.obj().get("spec") or {}).get("volumeName")
            if not pv or not c.volume_attached(pv, self.node.name):
                return None
            pvs.append(pv)
        return tuple(pvs)

    def _start(self, pod: dict[str, Any], volumes: tuple[str, ...], epoch: int) -> None:
        c, node = self.cluster, self.node
        meta = pod["metadata"]
        uid = meta["uid"]
        with node.lock:
            node.starting.discard(uid)
            if node.epoch != epoch or not node.can_run_pods or uid in node.running or uid not in node.admitted:
                return
        current = c.store.get(c.registry.table(c.rt("pods")), meta["namespace"], meta["name"])
        if current is None or current.obj()["metadata"]["uid"] != uid:
            return
        if current.obj()["metadata"].get("deletionTimestamp"):
            return
        owners = meta.get("ownerReferences") or []
        identity = (f"{meta['namespace']}/{meta['name']}"
                    if any(o.get("kind") == "StatefulSet" for o in owners) else "")
        running = RunningPod(meta["namespace"], meta["name"], uid, volumes, identity, c.clock())
        with node.lock:
            node.running[uid] = running
        c.timeline.add("pod-started", node.name, running.key, f"uid {uid[:8]}", uid=uid,
                       volumes=list(volumes))
        c.invariants_monitor.pod_started(node.name, running)
        if self.reachable():
            if volumes:  # report the mounts at once, as the kubelet marks volumes in use
                self.post_status()
            self._report_running(pod)

    def _report_running(self, pod: dict[str, Any]) -> None:
        c = self.cluster
        now = rfc3339(c.clock())
        meta = pod["metadata"]
        containers = (pod.get("spec") or {}).get("containers") or []
        ip = f"10.244.{self.node.index}.{(hash(meta['uid']) % 250) + 2}"

        def update(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != meta["uid"]:
                return False
            status = obj.setdefault("status", {})
            status.update({
                "phase": "Running", "hostIP": f"10.0.0.{10 + self.node.index}",
                "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now, "qosClass": "BestEffort",
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                               for t in ("PodReadyToStartContainers", "Initialized", "Ready",
                                         "ContainersReady", "PodScheduled")],
                "containerStatuses": [{
                    "name": ctr.get("name", "c"), "ready": True, "started": True, "restartCount": 0,
                    "image": ctr.get("image", ""), "imageID": "", "containerID": f"containerd://{meta['uid'][:12]}",
                    "state": {"running": {"startedAt": now}}} for ctr in containers],
            })
            return None

        c.registry.mutate(c.rt("pods"), meta["namespace"], meta["name"], update, subresource="status")

    def _terminate(self, pod: dict[str, Any], epoch: int) -> None:
        """Graceful deletion while we are alive: stop containers, then confirm (grace 0)."""
        c, node = self.cluster, self.node
        meta = pod["metadata"]
        uid = meta["uid"]
        with node.lock:
            if uid in node.terminating:
                return
            node.terminating.add(uid)
            node.starting.discard(uid)
            was_running = uid in node.running

        def finish() -> None:
            with node.lock:
                node.terminating.discard(uid)
            if node.epoch != epoch:
                return
            self._kill(uid, "graceful deletion")
            if not self.reachable():
                return  # the confirmation waits until we can reach the API again
            try:
                c.registry.delete(c.rt("pods"), meta["namespace"], meta["name"], grace_period=0,
                                  preconditions={"uid": uid})
                c.timeline.add("pod-deleted", node.name, f"{meta['namespace']}/{meta['name']}",
                               "kubelet confirmed graceful deletion", uid=uid)
            except ApiError:
                pass

        if was_running:
            c.ticker.call_later(c.timings.container_stop_s, finish)
        else:
            finish()

    def _kill(self, uid: str, why: str) -> None:
        node = self.node
        with node.lock:
            running = node.running.pop(uid, None)
            node.starting.discard(uid)
            node.admitted.pop(uid, None)  # terminated: never started again on this boot
        if running is not None:
            self.cluster.invariants_monitor.pod_stopped(node.name, running)
            self.cluster.timeline.add("pod-killed", node.name, running.key, why, uid=uid)
