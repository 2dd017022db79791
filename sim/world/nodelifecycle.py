"""The node lifecycle controller (pkg/controller/nodelifecycle/node_lifecycle_controller.go).

Every node_monitor_period (5 s) it:
- marks a node whose Lease and status heartbeat it has not seen change for the grace
  period (50 s) Ready/MemoryPressure/DiskPressure/PIDPressure `Unknown`; the probe time is
  its own memory, so a freshly started controller trusts every node for one grace period;
- on a Ready -> not Ready transition records `NodeNotReady` on the node ("Node X status is
  now: NodeNotReady") and marks every pod on it Ready=False (MarkPodsNotReady), with a
  `NodeNotReady` Warning on each pod;
- keeps the NoSchedule taints (`not-ready`, `unreachable`, and `unschedulable` for a
  cordoned node) in line at once, with `timeAdded`;
- adds the NoExecute taints through a per-zone rate-limited queue (a token bucket of one
  node per node_eviction_interval, 10 s; burst 1), swapping not-ready <-> unreachable
  directly, and removing them as soon as the node is Ready;
- computes each zone's state (`zone_state`): Normal, PartialDisruption (more than 2 and at
  least 55 % NotReady: the queue slows to the secondary rate in zones above 50 nodes, stops
  otherwise) or FullDisruption (no Ready node: normal rate). When every zone is in
  FullDisruption it enters "master disruption mode": it removes every NoExecute taint it
  manages and stops tainting; leaving that mode, it trusts every node for a grace period.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from ..apiserver.errors import ApiError
from ..timefmt import parse, rfc3339
from .controller_config import ControllerConfig
from .facts import (
    NOT_READY,
    STATUS_UNKNOWN_MESSAGE,
    UNREACHABLE,
    UNSCHEDULABLE,
    ready_status,
    zone_key,
)
from .recorder import object_ref

log = logging.getLogger("sim.nodelifecycle")
COMPONENT = "node-controller"
MANAGED_KEYS = (UNREACHABLE, NOT_READY)


class ZoneState(enum.StrEnum):
    INITIAL = "Initial"
    NORMAL = "Normal"
    FULL = "FullDisruption"
    PARTIAL = "PartialDisruption"


def zone_state(ready: int, not_ready: int, unhealthy_threshold: float) -> ZoneState:
    """ComputeZoneState: no Ready node -> FullDisruption; more than 2 NotReady making at least
    the threshold share -> PartialDisruption; otherwise Normal."""
    if ready == 0 and not_ready > 0:
        return ZoneState.FULL
    if not_ready > 2 and not_ready / (ready + not_ready) >= unhealthy_threshold:
        return ZoneState.PARTIAL
    return ZoneState.NORMAL


def taint_interval_s(state: ZoneState, zone_size: int, normal_s: float, secondary_s: float,
                     large_cluster_threshold: int) -> float | None:
    """Seconds between two NoExecute taintings in a zone (None: stopped), as setLimiterInZone:
    Normal and FullDisruption at the normal rate; PartialDisruption at the secondary rate in
    large zones and not at all in small ones."""
    if state is ZoneState.PARTIAL:
        return secondary_s if zone_size > large_cluster_threshold else None
    return normal_s


@dataclass
class ZoneQueue:
    """RateLimitedTimedQueue with a token bucket of burst 1 (starts full)."""
    interval_s: float | None
    tokens: float = 1.0
    last_refill: float = 0.0
    queue: list[str] = field(default_factory=list)

    def refill(self, now: float) -> None:
        if self.interval_s:
            self.tokens = min(1.0, self.tokens + (now - self.last_refill) / self.interval_s)
        self.last_refill = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.interval_s is None or self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def lifecycle_taints(node: dict[str, Any], ready: str) -> set[tuple[str, str]]:
    """The NoSchedule taints the controller wants on the node, and its NoExecute ones present."""
    want = {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready)
    out = {(want, "NoSchedule")} if want else set()
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((UNSCHEDULABLE, "NoSchedule"))
    return out


class NodeLifecycleController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self._probe: dict[str, float] = {}  # node -> when we last saw it alive (our clock)
        self._zones: dict[str, ZoneState] = {}
        self._queues: dict[str, ZoneQueue] = {}
        self.master_disruption = False

    # -- the monitor pass -------------------------------------------------------------

    def run(self) -> None:
        cfg = self.cfg
        now = cfg.clock()
        t = cfg.timings
        nodes: dict[str, dict[str, Any]] = {}
        for (_, name), entry in cfg.items("nodes"):
            node = entry.obj()
            before = ready_status(node)
            seen = self._observe(name, now)
            if now - seen > t.node_monitor_grace_period_s and before != "Unknown":
                node = self._mark_unknown(name) or node
            after = ready_status(node)
            if before == "True" and after != "True":
                cfg.events.record(object_ref({**node, "kind": "Node", "apiVersion": "v1"}), "Normal",
                                  "NodeNotReady", f"Node {name} status is now: NodeNotReady", COMPONENT)
                self._mark_pods_not_ready(name)
            self._sync_no_schedule(name, node, after)
            nodes[name] = node
        self._handle_disruption(nodes, now)
        for name, node in nodes.items():
            self._sync_no_execute(name, node)

    def tainting_pass(self) -> None:
        """doNoExecuteTaintingPass: take tokens per zone and taint queued nodes."""
        now = self.cfg.clock()
        for zone, q in self._queues.items():
            while q.queue and not self.master_disruption:
                name = q.queue[0]
                node = self.cfg.obj("nodes", "", name)
                ready = ready_status(node) if node else "True"
                if node is None or ready == "True":
                    q.queue.pop(0)  # healthy again or gone: nothing to do
                    continue
                if not q.take(now):
                    break
                q.queue.pop(0)
                want = UNREACHABLE if ready == "Unknown" else NOT_READY
                self._swap_no_execute(name, want)
                self.cfg.timeline.add("zone-taint", name, f"node/{name}",
                                      f"NoExecute {want} from the {zone or 'default'} zone queue")

    # -- health -----------------------------------------------------------------------

    def _observe(self, name: str, now: float) -> float:
        cfg = self.cfg
        lease = cfg.obj("leases", "kube-node-lease", name, "coordination.k8s.io")
        renew = parse(((lease or {}).get("spec") or {}).get("renewTime")) or 0.0
        seen = max(renew, self._probe.get(name, now))
        if now - seen > cfg.timings.node_monitor_grace_period_s:  # the status heartbeat may be newer
            node = cfg.obj("nodes", "", name) or {}
            for cond in (node.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Ready":
                    seen = max(seen, parse(cond.get("lastHeartbeatTime")) or 0.0)
        self._probe[name] = seen
        return seen

    def _mark_unknown(self, name: str) -> dict[str, Any] | None:
        cfg = self.cfg
        now = rfc3339(cfg.clock())

        def update(obj: dict[str, Any]) -> None:
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if cond.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure") \
                        and cond.get("status") != "Unknown":
                    cond.update({"status": "Unknown", "reason": "NodeStatusUnknown",
                                 "message": STATUS_UNKNOWN_MESSAGE, "lastTransitionTime": now})

        result = cfg.registry.mutate(cfg.rt("nodes"), "", name, update, subresource="status")
        return result.obj if result is not None else None

    def _mark_pods_not_ready(self, name: str) -> None:
        """MarkPodsNotReady: Ready=False on every pod of the node, and an event on each."""
        cfg = self.cfg
        now = rfc3339(cfg.clock())
        for pod in cfg.pods_on(name):
            meta = pod["metadata"]

            def update(obj: dict[str, Any], uid: str = meta["uid"]) -> bool | None:
                if obj["metadata"]["uid"] != uid:
                    return False
                changed = False
                for cond in (obj.get("status") or {}).get("conditions") or []:
                    if cond.get("type") == "Ready" and cond.get("status") != "False":
                        cond.update({"status": "False", "lastTransitionTime": now})
                        changed = True
                return None if changed else False

            try:
                cfg.registry.mutate(cfg.rt("pods"), meta["namespace"], meta["name"], update,
                                    subresource="status")
            except ApiError:
                continue
            cfg.events.record(object_ref({**pod, "kind": "Pod", "apiVersion": "v1"}), "Warning",
                              "NodeNotReady", "Node is not ready", COMPONENT)

    # -- zones ------------------------------------------------------------------------

    def _handle_disruption(self, nodes: dict[str, dict[str, Any]], now: float) -> None:
        cfg, t = self.cfg, self.cfg.timings
        counts: dict[str, list[int]] = {}
        for node in nodes.values():
            c = counts.setdefault(zone_key(node), [0, 0])
            c[0 if ready_status(node) == "True" else 1] += 1
        new = {z: zone_state(r, n, t.unhealthy_zone_threshold) for z, (r, n) in counts.items()}
        all_full = bool(new) and all(s is ZoneState.FULL for s in new.values())
        if all_full and not self.master_disruption:
            self.master_disruption = True
            cfg.timeline.add("master-disruption", detail="all nodes are not-Ready: entering master "
                             "disruption mode, NoExecute taints removed and tainting stopped")
            for name in nodes:
                self._remove_no_execute(name)
            for q in self._queues.values():
                q.queue.clear()
        elif not all_full and self.master_disruption:
            self.master_disruption = False
            cfg.timeline.add("master-disruption", detail="some node is Ready: leaving master disruption "
                             "mode, every node trusted for one grace period")
            self._probe = {name: now for name in nodes}
        for zone, state in new.items():
            q = self._queues.setdefault(zone, ZoneQueue(t.node_eviction_interval_s, last_refill=now))
            if self._zones.get(zone) != state:
                q.refill(now)
                q.interval_s = taint_interval_s(state, sum(counts[zone]), t.node_eviction_interval_s,
                                                t.secondary_node_eviction_interval_s,
                                                t.large_cluster_size_threshold)
                if self._zones.get(zone) is not None:
                    cfg.timeline.add("zone-state", detail=f"zone {zone or 'default'}: {state}")
            self._zones[zone] = state

    # -- taints -----------------------------------------------------------------------

    def _sync_no_schedule(self, name: str, node: dict[str, Any], ready: str) -> None:
        want = lifecycle_taints(node, ready)
        taints = (node.get("spec") or {}).get("taints") or []
        have = {(t.get("key"), "NoSchedule") for t in taints if t.get("effect") == "NoSchedule"
                and t.get("key") in (*MANAGED_KEYS, UNSCHEDULABLE)}
        if have == want:
            return
        now = rfc3339(self.cfg.clock())

        def update(obj: dict[str, Any]) -> bool | None:
            current = list((obj.get("spec") or {}).get("taints") or [])
            kept = [t for t in current if not (t.get("effect") == "NoSchedule" and
                                               t.get("key") in (*MANAGED_KEYS, UNSCHEDULABLE)
                                               and (t.get("key"), "NoSchedule") not in want)]
            present = {(t.get("key"), t.get("effect")) for t in kept}
            kept += [{"key": k, "effect": e, "timeAdded": now} for k, e in sorted(want - present)]
            if kept == current:
                return False
            obj.setdefault("spec", {})["taints"] = kept
            return None

        self.cfg.registry.mutate(self.cfg.rt("nodes"), "", name, update)

    def _sync_no_execute(self, name: str, node: dict[str, Any]) -> None:
        """processTaintBaseEviction."""
        ready = ready_status(node)
        present = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []
                   if t.get("effect") == "NoExecute" and t.get("key") in MANAGED_KEYS}
        q = self._queues.get(zone_key(node))
        if ready == "True":
            if present:
                self._remove_no_execute(name)
            if q is not None and name in q.queue:
                q.queue.remove(name)
            return
        if self.master_disruption:
            return
        want = UNREACHABLE if ready == "Unknown" else NOT_READY
        other = NOT_READY if want == UNREACHABLE else UNREACHABLE
        if want in present and other not in present:
            return
        if other in present:
            self._swap_no_execute(name, want)  # a swap is not rate limited
        elif q is not None and name not in q.queue:
            q.queue.append(name)

    def _swap_no_execute(self, name: str, want: str) -> None:
        now = rfc3339(self.cfg.clock())

        def update(obj: dict[str, Any]) -> bool | None:
            current = list((obj.get("spec") or {}).get("taints") or [])
            kept = [t for t in current if not (t.get("effect") == "NoExecute" and t.get("key") in MANAGED_KEYS
                                               and t.get("key") != want)]
            if not any(t.get("key") == want and t.get("effect") == "NoExecute" for t in kept):
                kept.append({"key": want, "effect": "NoExecute", "timeAdded": now})
            if kept == current:
                return False
            obj.setdefault("spec", {})["taints"] = kept
            return None

        self.cfg.registry.mutate(self.cfg.rt("nodes"), "", name, update)

    def _remove_no_execute(self, name: str) -> None:
        def update(obj: dict[str, Any]) -> bool | None:
            current = list((obj.get("spec") or {}).get("taints") or [])
            kept = [t for t in current if not (t.get("effect") == "NoExecute" and t.get("key") in MANAGED_KEYS)]
            if kept == current:
                return False
            obj.setdefault("spec", {})["taints"] = kept
            return None

        self.cfg.registry.mutate(self.cfg.rt("nodes"), "", name, update)
