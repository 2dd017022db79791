"""Per-kind behaviour on create, update and delete, after the real API server's
registry strategies: what is reset on create, what a status update may change, how long a
deletion is graceful, and when an object with a deletionTimestamp is finally removed.
"""

from __future__ import annotations

import copy
from typing import Any

from .resources import ResourceType

# Kinds whose status a create resets (the real PrepareForCreate drops client-set status).
_STATUS_RESET_ON_CREATE = {
    "Pod": {"phase": "Pending"},
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "PersistentVolume": {"phase": "Pending"},
    "PersistentVolumeClaim": {"phase": "Pending"},
    "VolumeAttachment": {"attached": False},
    "Service": {"loadBalancer": {}},
    "Namespace": {"phase": "Active"},
}
_NO_GENERATION = {"Event", "Lease", "ConfigMap", "Secret", "Namespace", "Node"}


def prepare_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.kind in _STATUS_RESET_ON_CREATE:
        obj["status"] = copy.deepcopy(_STATUS_RESET_ON_CREATE[rt.kind])
    elif (rt.custom and rt.status_subresource) or rt.kind == "CustomResourceDefinition":
        obj.pop("status", None)
    if rt.kind not in _NO_GENERATION:
        obj["metadata"]["generation"] = 1
    if rt.kind == "Pod":
        _default_pod(obj)
    if rt.kind == "Namespace":
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    if rt.kind == "Node":
        labels = obj["metadata"].setdefault("labels", {})
        labels.setdefault("kubernetes.io/hostname", obj["metadata"]["name"])


def _default_pod(pod: dict[str, Any]) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            image = str(c.get("image", ""))
            c.setdefault("imagePullPolicy",
                         "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})


def prepare_update(rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                   subresource: str | None) -> dict[str, Any]:
    """The object to store for an update of `old` with `new` (both complete objects)."""
    if subresource == "status":
        result = copy.deepcopy(old)
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        return result
    result = new
    meta, old_meta = result.setdefault("metadata", {}), old.get("metadata", {})
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "generateName"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    if rt.status_subresource and rt.kind != "Namespace":
        if "status" in old:
            result["status"] = old["status"]
        else:
            result.pop("status", None)
    if "generation" in old_meta:
        changed = {k: v for k, v in result.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")}
        meta["generation"] = old_meta["generation"] + (1 if changed else 0)
    else:
        meta.pop("generation", None)
    # spec of a pod is immutable but for a few fields; keep nodeName once bound.
    if rt.kind == "Pod" and old.get("spec", {}).get("nodeName"):
        result.setdefault("spec", {})["nodeName"] = old["spec"]["nodeName"]
    return result


def graceful_period(rt: ResourceType, obj: dict[str, Any], requested: int | None) -> int:
    """Seconds of graceful deletion for `obj`; 0 means remove at once (unless finalizers)."""
    if not rt.graceful_delete:
        return 0
    spec = obj.get("spec") or {}
    if not spec.get("nodeName"):
        return 0
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def ready_to_remove(obj: dict[str, Any]) -> bool:
    """An object being deleted is removed once it has no finalizers and no grace left."""
    meta = obj.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return False
    if meta.get("finalizers"):
        return False
    return int(meta.get("deletionGracePeriodSeconds") or 0) == 0
