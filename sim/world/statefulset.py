"""The StatefulSet controller (pkg/controller/statefulset/stateful_set_control.go) and the
API server's StatefulSet defaults (pkg/apis/apps/v1/defaults.go).

Defaults on create and update: `podManagementPolicy: OrderedReady`, `updateStrategy:
{type: RollingUpdate, rollingUpdate: {partition: 0}}`, `revisionHistoryLimit: 10`,
`persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Retain}`.

Stable names `<sts>-<i>`, one claim per ordinal and claim template (created before the
pod), a replacement only once the old pod object is gone; failed pods are deleted and
recreated. With OrderedReady (monotonic) the controller walks the ordinals in order and
stops at the first one that is missing (it creates it, then waits), Terminating, or not
Running and Ready: a lower ordinal stuck Terminating on a dead node blocks the recreation
of every higher one. Surplus ordinals are deleted highest first, one at a time, once every
lower pod is healthy. `Parallel` does all of it at once. Events: `SuccessfulCreate`
"create Pod X in StatefulSet Y successful", `SuccessfulDelete` likewise.
Rolling updates of the template are not simulated.
"""

from __future__ import annotations

import json
from typing import Any

from ..apiserver.errors import ApiError
from ..apiserver.resources import ResourceType
from .controller_config import ControllerConfig
from .recorder import object_ref

COMPONENT = "statefulset-controller"


def statefulset_defaults(op: str, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if rt.kind != "StatefulSet" or op not in ("CREATE", "UPDATE"):
        return
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    policy.setdefault("whenDeleted", "Retain")
    policy.setdefault("whenScaled", "Retain")


def _terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _active(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and not _terminal(pod)


def running_and_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return _active(pod) and status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


class StatefulSetController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg

    def run(self) -> None:
        for _, entry in self.cfg.items("statefulsets", "apps"):
            sts = entry.obj()
            if not sts["metadata"].get("deletionTimestamp"):
                self.sync(sts)

    def sync(self, sts: dict[str, Any]) -> None:
        cfg = self.cfg
        meta, spec = sts["metadata"], sts.get("spec") or {}
        name = meta["name"]
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        replicas = int(spec.get("replicas", 1))
        table = cfg.table("pods")
        pods: dict[str, dict[str, Any]] = {}
        for key in cfg.store.keys_by(table, "sim.owner", meta["uid"]):
            entry = cfg.store.get(table, *key)
            if entry is not None:
                pods[key[1]] = entry.obj()
        for i in range(replicas):
            pod = pods.get(f"{name}-{i}")
            if pod is None:
                self._create(sts, i)
                if monotonic:
                    break  # wait for it to be Running and Ready
                continue
            if _terminal(pod) and not pod["metadata"].get("deletionTimestamp"):
                self._delete(sts, pod)
                if monotonic:
                    break
                continue
            if monotonic and not running_and_ready(pod):
                break  # Terminating, or not yet Running and Ready: nothing after it moves
        else:
            self._condemn(sts, pods, replicas, monotonic)
        if not monotonic:
            self._condemn(sts, pods, replicas, monotonic)
        ready = sum(1 for p in pods.values() if running_and_ready(p))
        self._set_status(sts, {
            "replicas": sum(1 for p in pods.values() if _active(p)), "readyReplicas": ready,
            "availableReplicas": ready, "currentReplicas": len(pods),
            "observedGeneration": meta.get("generation", 1)})

    def _condemn(self, sts: dict[str, Any], pods: dict[str, dict[str, Any]], replicas: int, monotonic: bool) -> None:
        prefix = sts["metadata"]["name"] + "-"
        condemned = sorted(((int(n[len(prefix):]), p) for n, p in pods.items()
                            if n[len(prefix):].isdigit() and int(n[len(prefix):]) >= replicas),
                           key=lambda item: -item[0])
        for _ordinal, pod in condemned:
            if monotonic and pod["metadata"].get("deletionTimestamp"):
                return  # one at a time: wait for it to go
            if _active(pod):
                self._delete(sts, pod)
                if monotonic:
                    return

    def _create(self, sts: dict[str, Any], ordinal: int) -> None:
        cfg = self.cfg
        meta, spec = sts["metadata"], sts.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        pod_name = f"{name}-{ordinal}"
        template = spec.get("template") or {}
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        claims = []
        for tmpl in spec.get("volumeClaimTemplates") or []:
            claim = f"{tmpl['metadata']['name']}-{pod_name}"
            claims.append((tmpl["metadata"]["name"], claim))
            if cfg.entry("persistentvolumeclaims", ns, claim) is None:
                try:
                    cfg.registry.create(cfg.rt("persistentvolumeclaims"), ns, {
                        "metadata": {"name": claim, "labels": labels},
                        "spec": {**(tmpl.get("spec") or {}), "storageClassName": "sim"}})
                except ApiError:
                    return
        pod_spec = json.loads(json.dumps(template.get("spec") or {}))
        pod_spec["hostname"] = pod_name
        pod_spec["subdomain"] = spec.get("serviceName", name)
        volumes = pod_spec.setdefault("volumes", [])
        for vol_name, claim in claims:
            volumes.append({"name": vol_name, "persistentVolumeClaim": {"claimName": claim}})
        pod_labels = {**labels, "statefulset.kubernetes.io/pod-name": pod_name,
                      "apps.kubernetes.io/pod-index": str(ordinal)}
        try:
            cfg.registry.create(cfg.rt("pods"), ns, {
                "metadata": {"name": pod_name, "labels": pod_labels, "ownerReferences": [owner_ref(sts)]},
                "spec": pod_spec})
        except ApiError:
            return
        cfg.events.record(object_ref(sts), "Normal", "SuccessfulCreate",
                          f"create Pod {pod_name} in StatefulSet {name} successful", COMPONENT)
        cfg.timeline.add("pod-created", "", f"{ns}/{pod_name}", f"by statefulset {name}")

    def _delete(self, sts: dict[str, Any], pod: dict[str, Any]) -> None:
        cfg = self.cfg
        meta = pod["metadata"]
        try:
            cfg.registry.delete(cfg.rt("pods"), meta["namespace"], meta["name"],
                                preconditions={"uid": meta["uid"]})
        except ApiError:
            return
        cfg.events.record(object_ref(sts), "Normal", "SuccessfulDelete",
                          f"delete Pod {meta['name']} in StatefulSet {sts['metadata']['name']} successful",
                          COMPONENT)

    def _set_status(self, sts: dict[str, Any], status: dict[str, Any]) -> None:
        if (sts.get("status") or {}) == {**(sts.get("status") or {}), **status}:
            return

        def update(o: dict[str, Any]) -> None:
            o.setdefault("status", {}).update(status)

        self.cfg.registry.mutate(self.cfg.rt("statefulsets", "apps"), sts["metadata"]["namespace"],
                                 sts["metadata"]["name"], update, subresource="status")
