"""Faults injected below the product's code, and the gate that applies the network ones
to API traffic.

Actions: power-off, power-on, reboot, kubelet-stop, kubelet-start,
partition --from api|peers|all, partition-group NODE,NODE,... (cut from the API and from
every node outside the group, connected among themselves: a zone or a site), heal,
api-outage --duration S [--mode unavailable|drop], api-slow --duration S --delay D (every
API answer D cluster seconds late), api-throttle --duration S [--retry-after N]
[--fraction F] (a share F of API requests answered 429 TooManyRequests with
`Retry-After: N`, N whole wall-clock seconds as in the real header, default 1),
controller-manager-restart, csi-stall --duration S (the CSI driver's detach hangs: no
volume detaches before S cluster seconds have passed), agent-kill [--restart-after S].

API traffic is cut by identity: each node's agent has its own token, and in-process
kubelets ask the cluster. Peer traffic is cut by the per-node proxies (`network`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..apiserver.auth import Identity

if TYPE_CHECKING:
    from .cluster import Cluster

ACTIONS = ("power-off", "power-on", "reboot", "kubelet-stop", "kubelet-start", "partition",
           "partition-group", "heal", "api-outage", "api-slow", "api-throttle", "controller-manager-restart",
           "csi-stall", "agent-kill")
NODE_ACTIONS = set(ACTIONS) - {"api-outage", "api-slow", "api-throttle", "heal", "controller-manager-restart",
                               "partition-group", "csi-stall"}


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    action: str
    node: str = ""
    from_: str = ""  # partition: api | peers | all
    duration_s: float = 0.0  # api-outage, api-slow, api-throttle, csi-stall (simulation seconds)
    mode: str = ""  # api-outage: unavailable | drop
    restart_after_s: float | None = None  # agent-kill
    delay_s: float = 0.0  # api-slow (simulation seconds)
    retry_after_s: int = 1  # api-throttle: the Retry-After header (wall-clock seconds)
    fraction: float = 1.0  # api-throttle: share of requests throttled

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
            delay = float(body.get("delay", 0) or 0)
            retry_after = int(body.get("retryAfter", 1) if body.get("retryAfter") is not None else 1)
            fraction = float(body.get("fraction", 1.0) if body.get("fraction") is not None else 1.0)
        except (TypeError, ValueError):
            raise FaultError("duration, restartAfter, delay, retryAfter and fraction must be numbers") from None
        nodes = body.get("nodes")
        node = ",".join(str(n) for n in nodes) if isinstance(nodes, list) else str(body.get("node") or "")
        return cls(action, node, str(body.get("from") or ""), duration,
                   str(body.get("mode") or ""), restart_s, delay, retry_after, fraction)


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
            if node is not None and ("api" in node.partition or node.island):
                return c.partition_mode
        return c.api_weather.verdict(c.clock())

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
    elif fault.action == "partition-group":
        group = [n for n in fault.node.split(",") if n]
        unknown = [n for n in group if n not in c.nodes]
        if not group or unknown:
            raise FaultError(f"unknown nodes {unknown}" if unknown else "partition-group needs NODE,NODE,...")
        c.partition_group(group)
    elif fault.action in ("api-slow", "api-throttle"):
        if fault.duration_s <= 0:
            raise FaultError(f"{fault.action} needs --duration > 0")
        if fault.action == "api-slow":
            if fault.delay_s <= 0:
                raise FaultError("api-slow needs --delay > 0")
            c.api_weather.slow(c.clock(), fault.duration_s * c.timings.scale, fault.delay_s * c.timings.scale)
        else:
            if fault.retry_after_s < 0 or not 0 < fault.fraction <= 1:
                raise FaultError("api-throttle needs --retry-after >= 0 and 0 < --fraction <= 1")
            c.api_weather.throttle(c.clock(), fault.duration_s * c.timings.scale, fault.retry_after_s,
                                   fault.fraction)
        c.timeline.add("fault", detail=f"{fault.action} for {fault.duration_s:g}s")
    elif fault.action == "controller-manager-restart":
        c.timeline.add("fault", detail="controller-manager-restart")
        c.controller_manager.restart()
    elif fault.action == "csi-stall":
        if fault.duration_s <= 0:
            raise FaultError("csi-stall needs --duration > 0")
        c.external_attacher.stall(c.clock() + fault.duration_s * c.timings.scale)
        c.timeline.add("fault", detail=f"csi-stall for {fault.duration_s:g}s")
    elif fault.action == "agent-kill":
        c.kill_agent(fault.node, fault.restart_after_s)
    return {"ok": True, "action": fault.action, "node": fault.node, "at": c.clock()}


class ApiWeather:
    """Slow and throttled API answers, for a while: the verdicts the HTTP layer understands
    are "delay:<wall seconds>" (answer late) and "throttle:<Retry-After seconds>" (429)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slow_until = 0.0
        self._delay_s = 0.0
        self._throttle_until = 0.0
        self._retry_after_s = 1
        self._fraction = 1.0
        self._count = 0

    def slow(self, now: float, duration_s: float, delay_s: float) -> None:
        with self._lock:
            self._slow_until, self._delay_s = now + duration_s, delay_s

    def throttle(self, now: float, duration_s: float, retry_after_s: int, fraction: float) -> None:
        with self._lock:
            self._throttle_until, self._retry_after_s, self._fraction = now + duration_s, retry_after_s, fraction
            self._count = 0

    def verdict(self, now: float) -> str | None:
        with self._lock:
            if now < self._throttle_until:
                self._count += 1
                if int(self._count * self._fraction) != int((self._count - 1) * self._fraction):
                    return f"throttle:{self._retry_after_s}"
            if now < self._slow_until:
                return f"delay:{self._delay_s}"
        return None
