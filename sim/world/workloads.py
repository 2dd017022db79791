"""Workload controllers: Deployment -> ReplicaSet -> pods
(replacements with new names as soon as a pod is terminating), a dynamic volume
provisioner, owner-reference garbage collection, and the DefaultTolerationSeconds
admission plugin. The StatefulSet controller is `statefulset`."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from ..apiserver.errors import ApiError
from ..apiserver.resources import ResourceType

if TYPE_CHECKING:
    from .cluster import Cluster
    from .controller_config import ControllerConfig

log = logging.getLogger("sim.workloads")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
DEFAULT_TOLERATION_SECONDS = 300


def default_tolerations(op: str, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """DefaultTolerationSeconds: pods get not-ready/unreachable NoExecute tolerations of
    300 s unless they already tolerate those taints."""
    if op != "CREATE" or rt.kind != "Pod":
        return
    spec = obj.setdefault("spec", {})
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        # plugin/pkg/admission/defaulttolerationseconds: a toleration counts when its key is
        # this one or empty AND its effect is NoExecute or empty (a keyless NoSchedule does not)
        if any(t.get("key") in (key, None, "") and t.get("effect") in (None, "", "NoExecute") for t in tolerations):
            continue
        tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


def _active(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class WorkloadControllers:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.c = cfg

    def run(self) -> None:
        self.provision_volumes()
        self.reconcile_deployments()
        self.reconcile_replicasets()

    # -- helpers -----------------------------------------------------------------------

    def _objects(self, plural: str, group: str = "") -> list[dict[str, Any]]:
        c = self.c
        return [e.obj() for _, e in c.store.items(c.registry.table(c.rt(plural, group)))]

    def _owned(self, owner_uid: str) -> list[tuple[tuple[str, str], Any]]:
        """(key, entry) of the pods an owner controls, from the owner index (no parsing)."""
        c = self.c
        table = c.registry.table(c.rt("pods"))
        out = []
        for key in c.store.keys_by(table, "sim.owner", owner_uid):
            entry = c.store.get(table, *key)
            if entry is not None:
                out.append((key, entry))
        return out

    def _create(self, plural: str, namespace: str, obj: dict[str, Any], group: str = "") -> None:
        try:
            self.c.registry.create(self.c.rt(plural, group), namespace, obj)
        except ApiError as err:
            if err.code != 409:
                log.warning("creating %s in %s: %s", plural, namespace, err.message)

    def _set_status(self, plural: str, group: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if (obj.get("status") or {}) == {**(obj.get("status") or {}), **status}:
            return

        def update(o: dict[str, Any]) -> None:
            o.setdefault("status", {}).update(status)

        self.c.registry.mutate(self.c.rt(plural, group), obj["metadata"]["namespace"],
                               obj["metadata"]["name"], update, subresource="status")

    # -- volumes -----------------------------------------------------------------------

    def provision_volumes(self) -> None:
        c = self.c
        for pvc in self._objects("persistentvolumeclaims"):
            if (pvc.get("spec") or {}).get("volumeName"):
                continue
            meta = pvc["metadata"]
            pv_name = f"pvc-{meta['uid']}"
            spec = pvc.get("spec") or {}
            size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            self._create("persistentvolumes", "", {
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": "sim.csi.k8s.io"}},
                "spec": {"capacity": {"storage": size},
                         "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "sim",
                         "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                                      "name": meta["name"], "uid": meta["uid"]},
                         "csi": {"driver": "sim.csi.k8s.io", "volumeHandle": pv_name}}})

            def bound(o: dict[str, Any]) -> None:
                o.setdefault("status", {})["phase"] = "Bound"

            c.registry.mutate(c.rt("persistentvolumes"), "", pv_name, bound, subresource="status")

            def bind(o: dict[str, Any], pv_name: str = pv_name) -> None:
                o.setdefault("spec", {})["volumeName"] = pv_name

            c.registry.mutate(c.rt("persistentvolumeclaims"), meta["namespace"], meta["name"], bind)

            modes = spec.get("accessModes") or ["ReadWriteOnce"]

            def claim_bound(o: dict[str, Any], modes: list[str] = modes, size: str = size) -> None:
                o.setdefault("status", {}).update({"phase": "Bound", "accessModes": modes,
                                                   "capacity": {"storage": size}})

            c.registry.mutate(c.rt("persistentvolumeclaims"), meta["namespace"], meta["name"],
                              claim_bound, subresource="status")

    # -- Deployment / ReplicaSet -------------------------------------------------------

    def reconcile_deployments(self) -> None:
        for dep in self._objects("deployments", "apps"):
            meta, spec = dep["metadata"], dep.get("spec") or {}
            if meta.get("deletionTimestamp"):
                continue
            ns = meta["namespace"]
            template = spec.get("template") or {}
            digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
            rs_name = f"{meta['name']}-{int(digest, 16) % 10**10:010d}"[: len(meta["name"]) + 11]
            rs_entry = self.c.store.get(self.c.registry.table(self.c.rt("replicasets", "apps")), ns, rs_name)
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels["pod-template-hash"] = digest
            if rs_entry is None:
                tmpl = json.loads(json.dumps(template))
                tmpl.setdefault("metadata", {})["labels"] = labels
                self._create("replicasets", ns, {
                    "metadata": {"name": rs_name, "labels": labels, "ownerReferences": [owner_ref(dep)]},
                    "spec": {"replicas": int(spec.get("replicas", 1)),
                             "selector": {"matchLabels": labels}, "template": tmpl}}, "apps")
                continue
            rs = rs_entry.obj()
            if int((rs.get("spec") or {}).get("replicas", 1)) != int(spec.get("replicas", 1)):
                def scale(o: dict[str, Any], n: int = int(spec.get("replicas", 1))) -> None:
                    o["spec"]["replicas"] = n
                self.c.registry.mutate(self.c.rt("replicasets", "apps"), ns, rs_name, scale)
            status = rs.get("status") or {}
            self._set_status("deployments", "apps", dep, {
                "replicas": status.get("replicas", 0), "readyReplicas": status.get("readyReplicas", 0),
                "availableReplicas": status.get("readyReplicas", 0),
                "updatedReplicas": status.get("replicas", 0),
                "observedGeneration": meta.get("generation", 1)})

    def reconcile_replicasets(self) -> None:
        c = self.c
        for rs in self._objects("replicasets", "apps"):
            meta, spec = rs["metadata"], rs.get("spec") or {}
            if meta.get("deletionTimestamp"):
                continue
            ns = meta["namespace"]
            owned = self._owned(meta["uid"])
            active_entries = [(k, e) for k, e in owned if not e.fields.get("sim.deleting")
                              and e.fields.get("status.phase") not in ("Succeeded", "Failed")]
            want = int(spec.get("replicas", 1))
            template = spec.get("template") or {}
            for _ in range(want - len(active_entries)):
                self._create("pods", ns, {
                    "metadata": {"generateName": f"{meta['name']}-",
                                 "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                                 "ownerReferences": [owner_ref(rs)]},
                    "spec": json.loads(json.dumps(template.get("spec") or {}))})
            if len(active_entries) > want:
                extra = sorted((e.obj() for _, e in active_entries),
                               key=lambda p: p["metadata"]["creationTimestamp"])[want:]
                for pod in extra:
                    try:
                        c.registry.delete(c.rt("pods"), ns, pod["metadata"]["name"],
                                          preconditions={"uid": pod["metadata"]["uid"]})
                    except ApiError:
                        pass
            ready = sum(1 for _, e in active_entries if e.fields.get("sim.podready"))
            self._set_status("replicasets", "apps", rs, {
                "replicas": len(active_entries), "readyReplicas": ready, "availableReplicas": ready,
                "observedGeneration": meta.get("generation", 1)})


def garbage_collect(cluster: Cluster) -> Any:
    """A delete hook: when an owner goes, its dependents go too (background propagation)."""

    def on_delete(rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.kind not in ("Deployment", "ReplicaSet", "StatefulSet", "Node"):
            return
        uid = obj["metadata"].get("uid")
        kinds = [("pods", ""), ("replicasets", "apps")] if rt.kind != "Node" else [("leases", "coordination.k8s.io")]
        for plural, group in kinds:
            dep_rt = cluster.rt(plural, group)
            for (ns, name), entry in cluster.store.items(cluster.registry.table(dep_rt)):
                dependent = entry.obj()
                if owned_by(dependent, uid):
                    try:
                        cluster.registry.delete(dep_rt, ns, name)
                    except ApiError:
                        pass

    return on_delete


def workload_objects(spec: str, namespace: str = "default") -> dict[str, Any]:
    """`web=deployment:4` or `db=statefulset:3` as an apps/v1 object."""
    try:
        name, rest = spec.split("=", 1)
        kind, replicas = rest.split(":", 1)
        count = int(replicas)
    except ValueError:
        raise ValueError(f"workload must look like NAME=deployment:N or NAME=statefulset:N, got {spec!r}") from None
    labels = {"app": name}
    template: dict[str, Any] = {"metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 30,
                         "containers": [{"name": name, "image": PAUSE_IMAGE}]}}
    if kind == "deployment":
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"replicas": count, "selector": {"matchLabels": labels}, "template": template}}
    if kind == "statefulset":
        template["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        return {"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"replicas": count, "serviceName": name, "selector": {"matchLabels": labels},
                         "template": template,
                         "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                             "accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}]}}
    raise ValueError(f"unknown workload kind {kind!r} (deployment or statefulset)")
