"""Facts about stored objects that several simulated controllers share: taint keys, the
Ready status of a node, and the fields indexed at write time for fast filtering
(`Registry.derived_fields`)."""

from __future__ import annotations

import hashlib
from typing import Any

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
STATUS_UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
CSI_DRIVER = "sim.csi.k8s.io"


def ready_status(node: dict[str, Any]) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return "Unknown"


def has_taint_key(node: dict[str, Any], key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or [])


def zone_key(node: dict[str, Any]) -> str:
    """The node lifecycle controller's zone: region and zone labels (empty when unlabelled)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    region, zone = labels.get(REGION_LABEL, ""), labels.get(ZONE_LABEL, "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def attachment_name(pv: str, node: str) -> str:
    """The VolumeAttachment name the CSI attacher derives: csi-sha256(pv + driver + node)."""
    digest = hashlib.sha256(f"{pv}{CSI_DRIVER}{node}".encode()).hexdigest()
    return f"csi-{digest}"


def derived_fields(rt: Any, obj: dict[str, Any]) -> dict[str, str]:
    """Facts the controllers filter on, indexed at write time (see Registry.derived_fields)."""
    if rt.kind == "Node":
        taints = (obj.get("spec") or {}).get("taints") or []
        return {"sim.ready": ready_status(obj),
                "sim.noexecute": "1" if any(t.get("effect") == "NoExecute" for t in taints) else "",
                "sim.oos": "1" if any(t.get("key") == OUT_OF_SERVICE for t in taints) else ""}
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
