"""Server-side printing: the `Table` objects `kubectl get` asks for
(`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns the real
server prints for each kind, and CRD `additionalPrinterColumns` for custom resources."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..timefmt import parse
from .resources import ResourceType

Row = list[Any]
Col = tuple[str, str, int]  # name, type, priority


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: 45s, 5m30s, 3h, 2d4h, 12d, 2y."""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _age(obj: dict[str, Any], now: float) -> str:
    created = parse((obj.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if created is None else human_duration(now - created)


def _node_status(node: dict[str, Any]) -> str:
    conds = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    status = "Ready" if conds.get("Ready") == "True" else ("NotReady" if "Ready" in conds else "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(node: dict[str, Any]) -> str:
    roles = sorted(k.split("/", 1)[1] for k in (node["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    return ",".join(r for r in roles if r) or "<none>"


def _node_ip(node: dict[str, Any], kind: str) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == kind:
            return str(a.get("address"))
    return "<none>"


def _pod_status(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        terminated = (cs.get("state") or {}).get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating" if status.get("reason") != "NodeLost" else "Unknown"
    return str(reason)


def _pod_ready(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    ready = sum(1 for cs in (pod.get("status") or {}).get("containerStatuses") or [] if cs.get("ready"))
    return f"{ready}/{len(containers)}"


def _restarts(pod: dict[str, Any]) -> int:
    return sum(int(cs.get("restartCount") or 0)
               for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def _event_object(ev: dict[str, Any]) -> str:
    io = ev.get("involvedObject") or {}
    return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"


def _event_last_seen(ev: dict[str, Any], now: float) -> str:
    ts = parse(ev.get("lastTimestamp")) or parse(ev.get("eventTime")) or parse(
        (ev.get("series") or {}).get("lastObservedTime"))
    return "<unknown>" if ts is None else human_duration(now - ts)


S, INT, DATE = "string", "integer", "date"
_Columns = list[tuple[str, str, int, Callable[[dict[str, Any], float], Any]]]

BUILTIN: dict[str, _Columns] = {
    "Node": [
        ("Status", S, 0, lambda o, n: _node_status(o)),
        ("Roles", S, 0, lambda o, n: _node_roles(o)),
        ("Age", S, 0, _age),
        ("Version", S, 0, lambda o, n: ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")),
        ("Internal-IP", S, 1, lambda o, n: _node_ip(o, "InternalIP")),
        ("External-IP", S, 1, lambda o, n: _node_ip(o, "ExternalIP")),
        ("OS-Image", S, 1, lambda o, n: ((o.get("status") or {}).get("nodeInfo") or {}).get("osImage", "")),
        ("Kernel-Version", S, 1, lambda o, n: ((o.get("status") or {}).get("nodeInfo") or {}).get("kernelVersion", "")),
        ("Container-Runtime", S, 1, lambda o, n: ((o.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", "")),
    ],
    "Pod": [
        ("Ready", S, 0, lambda o, n: _pod_ready(o)),
        ("Status", S, 0, lambda o, n: _pod_status(o)),
        ("Restarts", S, 0, lambda o, n: str(_restarts(o))),
        ("Age", S, 0, _age),
        ("IP", S, 1, lambda o, n: (o.get("status") or {}).get("podIP") or "<none>"),
        ("Node", S, 1, lambda o, n: (o.get("spec") or {}).get("nodeName") or "<none>"),
        ("Nominated Node", S, 1, lambda o, n: (o.get("status") or {}).get("nominatedNodeName") or "<none>"),
        ("Readiness Gates", S, 1, lambda o, n: "<none>"),
    ],
    "Namespace": [
        ("Status", S, 0, lambda o, n: (o.get("status") or {}).get("phase", "")),
        ("Age", S, 0, _age),
    ],
    "Event": [
        ("Last Seen", S, 0, _event_last_seen),
        ("Type", S, 0, lambda o, n: o.get("type", "")),
        ("Reason", S, 0, lambda o, n: o.get("reason", "")),
        ("Object", S, 0, lambda o, n: _event_object(o)),
        ("Message", S, 0, lambda o, n: o.get("message") or o.get("note") or ""),
    ],
    "Lease": [
        ("Holder", S, 0, lambda o, n: (o.get("spec") or {}).get("holderIdentity", "")),
        ("Age", S, 0, _age),
    ],
    "ConfigMap": [("Data", INT, 0, lambda o, n: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
                  ("Age", S, 0, _age)],
    "Secret": [("Type", S, 0, lambda o, n: o.get("type", "Opaque")),
               ("Data", INT, 0, lambda o, n: len(o.get("data") or {})), ("Age", S, 0, _age)],
    "Deployment": [
        ("Ready", S, 0, lambda o, n: f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}"),
        ("Up-to-date", INT, 0, lambda o, n: (o.get("status") or {}).get("updatedReplicas", 0)),
        ("Available", INT, 0, lambda o, n: (o.get("status") or {}).get("availableReplicas", 0)),
        ("Age", S, 0, _age),
    ],
    "ReplicaSet": [
        ("Desired", INT, 0, lambda o, n: (o.get("spec") or {}).get("replicas", 1)),
        ("Current", INT, 0, lambda o, n: (o.get("status") or {}).get("replicas", 0)),
        ("Ready", INT, 0, lambda o, n: (o.get("status") or {}).get("readyReplicas", 0)),
        ("Age", S, 0, _age),
    ],
    "StatefulSet": [
        ("Ready", S, 0, lambda o, n: f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}"),
        ("Age", S, 0, _age),
    ],
    "DaemonSet": [
        ("Desired", INT, 0, lambda o, n: (o.get("status") or {}).get("desiredNumberScheduled", 0)),
        ("Current", INT, 0, lambda o, n: (o.get("status") or {}).get("currentNumberScheduled", 0)),
        ("Ready", INT, 0, lambda o, n: (o.get("status") or {}).get("numberReady", 0)),
        ("Up-to-date", INT, 0, lambda o, n: (o.get("status") or {}).get("updatedNumberScheduled", 0)),
        ("Available", INT, 0, lambda o, n: (o.get("status") or {}).get("numberAvailable", 0)),
        ("Age", S, 0, _age),
    ],
    "PodDisruptionBudget": [
        ("Min Available", S, 0, lambda o, n: _pdb_bound(o, "minAvailable")),
        ("Max Unavailable", S, 0, lambda o, n: _pdb_bound(o, "maxUnavailable")),
        ("Allowed Disruptions", INT, 0, lambda o, n: (o.get("status") or {}).get("disruptionsAllowed", 0)),
        ("Age", S, 0, _age),
    ],
    "PersistentVolume": [
        ("Capacity", S, 0, lambda o, n: ((o.get("spec") or {}).get("capacity") or {}).get("storage", "")),
        ("Access Modes", S, 0, lambda o, n: ",".join(_mode(m) for m in (o.get("spec") or {}).get("accessModes") or [])),
        ("Reclaim Policy", S, 0, lambda o, n: (o.get("spec") or {}).get("persistentVolumeReclaimPolicy", "")),
        ("Status", S, 0, lambda o, n: (o.get("status") or {}).get("phase", "")),
        ("Claim", S, 0, lambda o, n: _claim(o)),
        ("StorageClass", S, 0, lambda o, n: (o.get("spec") or {}).get("storageClassName", "")),
        ("Age", S, 0, _age),
    ],
    "PersistentVolumeClaim": [
        ("Status", S, 0, lambda o, n: (o.get("status") or {}).get("phase", "")),
        ("Volume", S, 0, lambda o, n: (o.get("spec") or {}).get("volumeName", "")),
        ("Capacity", S, 0, lambda o, n: ((o.get("status") or {}).get("capacity") or {}).get("storage", "")),
        ("Access Modes", S, 0, lambda o, n: ",".join(_mode(m) for m in (o.get("spec") or {}).get("accessModes") or [])),
        ("StorageClass", S, 0, lambda o, n: (o.get("spec") or {}).get("storageClassName", "")),
        ("Age", S, 0, _age),
    ],
    "VolumeAttachment": [
        ("Attacher", S, 0, lambda o, n: (o.get("spec") or {}).get("attacher", "")),
        ("PV", S, 0, lambda o, n: ((o.get("spec") or {}).get("source") or {}).get("persistentVolumeName", "")),
        ("Node", S, 0, lambda o, n: (o.get("spec") or {}).get("nodeName", "")),
        ("Attached", S, 0, lambda o, n: str(bool((o.get("status") or {}).get("attached"))).lower()),
        ("Age", S, 0, _age),
    ],
    "CustomResourceDefinition": [
        ("Created At", DATE, 0, lambda o, n: o["metadata"].get("creationTimestamp", "")),
    ],
}


def _pdb_bound(pdb: dict[str, Any], field: str) -> str:
    value = (pdb.get("spec") or {}).get(field)
    return "N/A" if value is None else str(value)


def _mode(mode: str) -> str:
    return {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
            "ReadWriteOncePod": "RWOP"}.get(mode, mode)


def _claim(pv: dict[str, Any]) -> str:
    ref = (pv.get("spec") or {}).get("claimRef")
    return f"{ref.get('namespace')}/{ref.get('name')}" if ref else ""


_JSONPATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.(\w+)==['\"]([^'\"]*)['\"]\)\]")


def jsonpath_value(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use: .a.b, [0], [?(@.type=="Ready")]."""
    cur = obj
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    for m in _JSONPATH_PART.finditer(path):
        if cur is None:
            return None
        if m.group(1) is not None:
            cur = cur.get(m.group(1)) if isinstance(cur, dict) else None
        elif m.group(2) is not None:
            idx = int(m.group(2))
            cur = cur[idx] if isinstance(cur, list) and idx < len(cur) else None
        else:
            key, want = m.group(3), m.group(4)
            cur = next((x for x in cur if isinstance(x, dict) and str(x.get(key)) == want), None) \
                if isinstance(cur, list) else None
    return cur


def _custom_columns(rt: ResourceType) -> _Columns:
    if not rt.printer_columns:
        return [("Age", S, 0, _age)]
    cols: _Columns = []
    for col in rt.printer_columns:
        path = col.get("jsonPath", "")
        tp = col.get("type", "string")

        def cell(o: dict[str, Any], n: float, path: str = path, tp: str = tp) -> Any:
            value = jsonpath_value(o, path)
            if tp == "date" and isinstance(value, str):
                ts = parse(value)
                return value if ts is None else human_duration(n - ts)
            if value is None:
                return None
            if isinstance(value, dict | list):
                return json.dumps(value)
            return value

        cols.append((col.get("name", ""), tp, int(col.get("priority", 0)), cell))
    return cols


def columns_for(rt: ResourceType) -> _Columns:
    if rt.custom:
        return _custom_columns(rt)
    return BUILTIN.get(rt.kind, [("Age", S, 0, _age)])


def table(rt: ResourceType, objects: list[dict[str, Any]], now: float, resource_version: str,
          include_object: str = "Metadata", continue_token: str = "") -> dict[str, Any]:
    cols = columns_for(rt)
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                    "description": "Name must be unique within a namespace."}]
    definitions += [{"name": name, "type": tp, "format": "", "priority": pri, "description": name}
                    for name, tp, pri, _ in cols]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [obj["metadata"].get("name", "")]
                               + [fn(obj, now) for _, _, _, fn in cols]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata", {})}
        rows.append(row)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": definitions, "rows": rows}
