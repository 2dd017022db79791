"""Helpers for tests of the simulated cluster."""

from __future__ import annotations

from typing import Any

from sim.world.cluster import Cluster

OOS = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}


def pod(cluster: Cluster, name: str, namespace: str = "default") -> dict[str, Any] | None:
    return cluster.get("pods", name, namespace)


def running_on(cluster: Cluster, name: str, namespace: str = "default") -> str | None:
    """The node an API pod is Running on (per its status), or None."""
    p = pod(cluster, name, namespace)
    if p is None or p["metadata"].get("deletionTimestamp") or (p.get("status") or {}).get("phase") != "Running":
        return None
    return str(p["spec"].get("nodeName"))


def wait_running(cluster: Cluster, names: list[str], timeout: float = 15.0) -> dict[str, str]:
    def placed() -> dict[str, str] | None:
        nodes = {n: running_on(cluster, n) for n in names}
        return nodes if all(nodes.values()) else None  # type: ignore[return-value]

    return cluster.wait_for(placed, timeout, message=f"pods {names} running")


def add_taint(cluster: Cluster, node: str, taint: dict[str, str] = OOS) -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {}).setdefault("taints", []).append(dict(taint))

    cluster.registry.mutate(cluster.rt("nodes"), "", node, edit)


def remove_taint(cluster: Cluster, node: str, key: str = OOS["key"]) -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj["spec"]["taints"] = [t for t in obj["spec"].get("taints") or [] if t.get("key") != key]

    cluster.registry.mutate(cluster.rt("nodes"), "", node, edit)


def ready(cluster: Cluster, node: str) -> str:
    obj = cluster.get("nodes", node) or {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return "Unknown"


def violations(cluster: Cluster, kind: str | None = None) -> list[dict[str, Any]]:
    return [v for v in cluster.invariants()["violations"] if kind is None or v["kind"] == kind]
