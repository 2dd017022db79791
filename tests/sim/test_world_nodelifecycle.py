"""The node lifecycle controller's zones, rates, events and MarkPodsNotReady.

Source followed: kubernetes pkg/controller/nodelifecycle/node_lifecycle_controller.go
(ComputeZoneState, setLimiterInZone, handleDisruption, doNoScheduleTaintingPass,
doNoExecuteTaintingPass, processTaintBaseEviction, MarkPodsNotReady via
pkg/controller/util/node RecordNodeStatusChange) and the controller manager's defaults
(--node-eviction-rate 0.1, --secondary-node-eviction-rate 0.01,
--unhealthy-zone-threshold 0.55, --large-cluster-size-threshold 50)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.waits import ready, wait_running
from sim.world.cluster import Cluster
from sim.world.nodelifecycle import ZoneState, taint_interval_s, zone_state

SCALE = 0.02
UNREACHABLE = "node.kubernetes.io/unreachable"


def secs(cluster: Cluster, wall: float) -> float:
    return wall / cluster.timings.scale


def taints(cluster: Cluster, node: str, effect: str) -> set[str]:
    return {t["key"] for t in cluster.get("nodes", node)["spec"].get("taints") or [] if t["effect"] == effect}


def events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("events", "default") if e.get("reason") == reason]


def test_zone_state_and_rates() -> None:
    assert zone_state(0, 3, 0.55) is ZoneState.FULL
    assert zone_state(2, 3, 0.55) is ZoneState.PARTIAL  # 3 > 2 and 60 % >= 55 %
    assert zone_state(1, 2, 0.55) is ZoneState.NORMAL  # only 2 NotReady
    assert zone_state(3, 3, 0.55) is ZoneState.NORMAL  # 50 %
    assert taint_interval_s(ZoneState.NORMAL, 10, 10.0, 100.0, 50) == 10.0
    assert taint_interval_s(ZoneState.FULL, 10, 10.0, 100.0, 50) == 10.0
    assert taint_interval_s(ZoneState.PARTIAL, 10, 10.0, 100.0, 50) is None
    assert taint_interval_s(ZoneState.PARTIAL, 51, 10.0, 100.0, 50) == 100.0


def test_dead_node_marks_its_pods_not_ready_with_real_events(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    scheduled = [e for e in events(cluster, "Scheduled") if e["involvedObject"]["name"] == "db-0"]
    assert scheduled and scheduled[0]["message"] == f"Successfully assigned default/db-0 to {victim}"
    assert scheduled[0]["source"]["component"] == "default-scheduler"
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")

    def pod_ready() -> str:
        pod = cluster.get("pods", "db-0", "default")
        return next(c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready")

    cluster.wait_for(lambda: pod_ready() == "False", 2, message="MarkPodsNotReady")
    node_events = [e for e in events(cluster, "NodeNotReady") if e["involvedObject"]["kind"] == "Node"]
    assert [e["message"] for e in node_events] == [f"Node {victim} status is now: NodeNotReady"]
    pod_events = [e for e in events(cluster, "NodeNotReady") if e["involvedObject"]["kind"] == "Pod"]
    assert [(e["type"], e["message"]) for e in pod_events] == [("Warning", "Node is not ready")]
    # Controller taints carry timeAdded, NoSchedule ones too (SwapNodeControllerTaint)
    cluster.wait_for(lambda: len(cluster.get("nodes", victim)["spec"].get("taints") or []) == 2, 2,
                     message="both taints")
    assert all(t.get("timeAdded") for t in cluster.get("nodes", victim)["spec"]["taints"])


def test_no_execute_taints_are_rate_limited_per_zone(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=6, time_scale=SCALE)
    t0 = cluster.clock()
    cluster.fault("power-off", "node-1")
    cluster.fault("power-off", "node-2")
    for node in ("node-1", "node-2"):
        cluster.wait_for(lambda n=node: UNREACHABLE in taints(cluster, n, "NoExecute"), 5, message=f"{node} tainted")
    added = sorted(e.at for e in cluster.timeline.events(since=t0, kind="taint-added")
                   if e.detail == f"{UNREACHABLE}:NoExecute")
    no_schedule = sorted(e.at for e in cluster.timeline.events(since=t0, kind="taint-added")
                         if e.detail == f"{UNREACHABLE}:NoSchedule")
    assert secs(cluster, added[1] - added[0]) >= 9.0  # 0.1 node/s, burst 1
    assert secs(cluster, no_schedule[1] - no_schedule[0]) < 6.0  # NoSchedule is not rate limited


def test_partial_zone_disruption_stops_tainting_in_a_small_zone(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=6, time_scale=SCALE)
    down = ["node-1", "node-2", "node-3", "node-4"]
    for node in down:
        cluster.fault("power-off", node)
    cluster.wait_for(lambda: all(ready(cluster, n) == "Unknown" for n in down), 5, message="all Unknown")
    time.sleep(100 * SCALE)
    assert all(UNREACHABLE in taints(cluster, n, "NoSchedule") for n in down)
    assert [n for n in down if taints(cluster, n, "NoExecute")] == []
    assert any("PartialDisruption" in e.detail for e in cluster.timeline.events(kind="zone-state"))


def test_zones_are_judged_apart(make_cluster: Callable[..., Cluster]) -> None:
    """A whole zone down is FullDisruption there (normal rate) while another zone is Normal."""
    cluster = make_cluster(nodes=4, time_scale=SCALE, zones=2)  # zone-a: node-1, node-3
    for node in ("node-1", "node-3"):
        cluster.fault("power-off", node)
    for node in ("node-1", "node-3"):
        cluster.wait_for(lambda n=node: UNREACHABLE in taints(cluster, n, "NoExecute"), 5, message=f"{node} tainted")
    assert any("FullDisruption" in e.detail for e in cluster.timeline.events(kind="zone-state"))


def test_master_disruption_mode_stops_evictions(make_cluster: Callable[..., Cluster]) -> None:
    """Every node NotReady: no NoExecute taints, so no eviction even after tolerationSeconds."""
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    wait_running(cluster, ["db-0"])
    t0 = cluster.clock()
    for node in ("node-1", "node-2", "node-3"):
        cluster.fault("power-off", node)
    cluster.wait_for(lambda: all(ready(cluster, n) == "Unknown" for n in ("node-1", "node-2", "node-3")), 5,
                     message="all Unknown")
    time.sleep(400 * SCALE)
    assert cluster.timeline.first("eviction", since=t0) is None
    assert all(not taints(cluster, n, "NoExecute") for n in ("node-1", "node-2", "node-3"))
    assert cluster.timeline.first("master-disruption", since=t0) is not None
    assert not cluster.get("pods", "db-0", "default")["metadata"].get("deletionTimestamp")
    cluster.fault("power-on", "node-1")
    cluster.wait_for(lambda: len(cluster.timeline.events(since=t0, kind="master-disruption")) == 2, 5,
                     message="leaving master disruption mode")


def test_cordon_adds_the_unschedulable_taint(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE)

    def cordon(obj: dict[str, Any]) -> None:
        obj["spec"]["unschedulable"] = True

    cluster.registry.mutate(cluster.rt("nodes"), "", "node-1", cordon)
    cluster.wait_for(lambda: "node.kubernetes.io/unschedulable" in taints(cluster, "node-1", "NoSchedule"), 2,
                     message="unschedulable taint")

    def uncordon(obj: dict[str, Any]) -> None:
        obj["spec"]["unschedulable"] = False

    cluster.registry.mutate(cluster.rt("nodes"), "", "node-1", uncordon)
    cluster.wait_for(lambda: not taints(cluster, "node-1", "NoSchedule"), 2, message="taint removed")


def test_pods_marked_not_ready_are_ready_again_when_their_node_returns(make_cluster: Callable[..., Cluster]) -> None:
    """The kubelet's status manager reports the pods it runs once it reaches the API again."""
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("partition", victim, from_="api")

    def pod_ready() -> str:
        pod = cluster.get("pods", "db-0", "default")
        return next(c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready")

    cluster.wait_for(lambda: pod_ready() == "False", 5, message="MarkPodsNotReady")
    cluster.fault("heal", victim)
    cluster.wait_for(lambda: pod_ready() == "True", 5, message="Ready again")
