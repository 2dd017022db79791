"""Faults injected below the product's code, and the gate that applies the network ones
to API traffic.

Actions: power-off, power-on, reboot, kubelet-stop, kubelet-start,
partition --from api|peers|all, heal, api-outage --duration S [--mode unavailable|drop],
agent-kill [--restart-after S].

API traffic is cut by identity: each node's agent has its own token, and in-process
kubelets ask the cluster. Peer traffic is cut by the per-node proxies (`network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..apiserver.auth import Identity

if TYPE_CHECKING:
    from .cluster import Cluster

ACTIONS = ("power-off", "power-on", "reboot", "kubelet-stop", "kubelet-start", "partition",
           "heal", "api-outage", "agent-kill")
NODE_ACTIONS = set(ACTIONS) - {"api-outage", "heal"}


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    action: str
    node: str = ""
    from_: str = ""  # partition: api | peers | all
    duration_s: float = 0.0  # api-outage (simulation seconds)
    mode: str = ""  # api-outage: unavailable | drop
    restart_after_s: float | None = None  # agent-kill

    @classmethod
    def from_json(cls, body: Any) -> Fault:
        if not isinstance(body, dict):
            raise FaultError("body must be a JSON object")
        action = body.get("action")
        if action not in ACTIONS:
            raise FaultError(f"action must be one of {', '.join(ACTIONS)}")
        try:
            duration = float(body.get("duration", 0) or 0)
            restart = body.get("restartAfter")
            restart_s = None if restart is None else float(restart)
        except (TypeError, ValueError):
            raise FaultError("duration and restartAfter must be numbers of seconds") from None
        return cls(action, str(body.get("node") or ""), str(body.get("from") or ""), duration,
                   str(body.get("mode") or ""), restart_s)


class ClusterGate:
    """Decides, per API request, whether the network lets it through."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def api_verdict(self, identity: Identity | None) -> str | None:
        c = self.c
        if not c.control_plane_up():
            return c.outage_mode
        if identity is not None and identity.node:
            node = c.nodes.get(identity.node)
            if node is not None and "api" in node.partition:
                return c.partition_mode
        return None

    def hold_seconds(self) -> float:
        return 120.0


def apply(cluster: Cluster, fault: Fault) -> dict[str, Any]:
    c = cluster
    if fault.action in NODE_ACTIONS and fault.node not in c.nodes:
        raise FaultError(f"unknown node {fault.node!r}" if fault.node else f"{fault.action} needs a node")
    if fault.action in ("power-off", "power-on", "reboot"):
        c.timeline.add("fault", fault.node, f"node/{fault.node}", fault.action)
    if fault.action == "power-off":
        c.power_off(fault.node, "fault: power-off")
    elif fault.action == "power-on":
        c.power_on(fault.node)
    elif fault.action == "reboot":
        c.reboot(fault.node, "fault: reboot")
    elif fault.action == "kubelet-stop":
        c.set_kubelet(fault.node, False)
    elif fault.action == "kubelet-start":
        c.set_kubelet(fault.node, True)
    elif fault.action == "partition":
        scope = fault.from_ or "all"
        if scope not in ("api", "peers", "all"):
            raise FaultError("partition --from must be api, peers or all")
        c.partition(fault.node, {"api"} if scope == "api" else {"peers"} if scope == "peers" else {"api", "peers"})
    elif fault.action == "heal":
        if fault.node and fault.node not in c.nodes:
            raise FaultError(f"unknown node {fault.node!r}")
        c.heal(fault.node or None)
    elif fault.action == "api-outage":
        if fault.duration_s <= 0:
            raise FaultError("api-outage needs --duration > 0")
        mode = fault.mode or "unavailable"
        if mode not in ("unavailable", "drop"):
            raise FaultError("api-outage --mode must be unavailable or drop")
        c.api_outage(fault.duration_s, mode)
    elif fault.action == "agent-kill":
        c.kill_agent(fault.node, fault.restart_after_s)
    return {"ok": True, "action": fault.action, "node": fault.node, "at": c.clock()}
