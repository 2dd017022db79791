"""kube-state-metrics compatible series, so the standard alerting rules (and
nodewarden's own) can run against the simulated cluster with a real Prometheus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..timefmt import parse

if TYPE_CHECKING:
    from .cluster import Cluster


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: dict[str, object], value: float) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    text = repr(float(value))  # full precision: timestamps are 10 significant digits
    return f"{name}{{{inner}}} {text}" if inner else f"{name} {text}"


def render(cluster: Cluster) -> bytes:
    c = cluster
    out: list[str] = []

    def family(name: str, help_text: str, kind: str = "gauge") -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    nodes = [e.obj() for _, e in c.store.items(c.registry.table(c.rt("nodes")))]
    family("kube_node_status_condition", "The condition of a cluster node.")
    for node in nodes:
        name = node["metadata"]["name"]
        for cond in (node.get("status") or {}).get("conditions") or []:
            for status in ("true", "false", "unknown"):
                out.append(_series("kube_node_status_condition",
                                   {"node": name, "condition": cond.get("type"), "status": status},
                                   1.0 if str(cond.get("status")).lower() == status else 0.0))
    family("kube_node_spec_taint", "The taint of a cluster node.")
    for node in nodes:
        for taint in (node.get("spec") or {}).get("taints") or []:
            out.append(_series("kube_node_spec_taint",
                               {"node": node["metadata"]["name"], "key": taint.get("key", ""),
                                "value": taint.get("value", ""), "effect": taint.get("effect", "")}, 1))
    family("kube_node_spec_unschedulable", "Whether a node can schedule new pods.")
    for node in nodes:
        out.append(_series("kube_node_spec_unschedulable", {"node": node["metadata"]["name"]},
                           1.0 if (node.get("spec") or {}).get("unschedulable") else 0.0))
    family("kube_node_info", "Information about a cluster node.")
    for node in nodes:
        info = (node.get("status") or {}).get("nodeInfo") or {}
        out.append(_series("kube_node_info", {"node": node["metadata"]["name"],
                                              "kubelet_version": info.get("kubeletVersion", ""),
                                              "system_uuid": info.get("systemUUID", "")}, 1))
    family("kube_node_created", "Unix creation timestamp")
    for node in nodes:
        created = parse(node["metadata"].get("creationTimestamp"))
        if created is not None:
            out.append(_series("kube_node_created", {"node": node["metadata"]["name"]}, created))
    family("kube_lease_renew_time", "Kube lease renew time.")
    for (ns, name), entry in c.store.items(c.registry.table(c.rt("leases", "coordination.k8s.io"))):
        renew = parse((entry.obj().get("spec") or {}).get("renewTime"))
        if renew is not None:
            out.append(_series("kube_lease_renew_time", {"namespace": ns, "lease": name}, renew))
    pods = [e.obj() for _, e in c.store.items(c.registry.table(c.rt("pods")))]
    family("kube_pod_info", "Information about pod.")
    for pod in pods:
        meta, pod_spec, pod_status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        owner: dict[str, str] = next(iter(meta.get("ownerReferences") or []), {})
        out.append(_series("kube_pod_info", {
            "namespace": meta["namespace"], "pod": meta["name"], "uid": meta["uid"],
            "node": pod_spec.get("nodeName", ""), "host_ip": pod_status.get("hostIP", ""),
            "pod_ip": pod_status.get("podIP", ""), "created_by_kind": owner.get("kind", ""),
            "created_by_name": owner.get("name", "")}, 1))
    family("kube_pod_status_phase", "The pods current phase.")
    for pod in pods:
        meta = pod["metadata"]
        phase = (pod.get("status") or {}).get("phase", "")
        for candidate in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            out.append(_series("kube_pod_status_phase", {"namespace": meta["namespace"], "pod": meta["name"],
                                                         "uid": meta["uid"], "phase": candidate},
                               1.0 if phase == candidate else 0.0))
    family("kube_pod_deletion_timestamp", "Unix deletion timestamp")
    for pod in pods:
        ts = parse(pod["metadata"].get("deletionTimestamp"))
        if ts is not None:
            out.append(_series("kube_pod_deletion_timestamp", {
                "namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"]}, ts))
    return ("\n".join(out) + "\n").encode()
