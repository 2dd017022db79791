"""Golden tests of the simulated cluster's timings against Kubernetes' defaults, run at
a time scale and read back in cluster seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.waits import add_taint, pod, ready, running_on, wait_running
from sim.world.cluster import Cluster

SCALE = 0.02  # 50 s of cluster time is 1 s of test time


def cluster_seconds(cluster: Cluster, wall: float) -> float:
    return wall / cluster.timings.scale


def test_power_off_turns_ready_unknown_after_the_grace_period(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE)
    t0 = cluster.clock()
    cluster.fault("power-off", "node-1")
    event = cluster.wait_for(
        lambda: cluster.timeline.first("node-condition", "node-1", since=t0), 5, message="Ready change")
    elapsed = cluster_seconds(cluster, event.at - t0)
    # grace period 50 s; the lifecycle controller looks every 5 s
    assert 50.0 <= elapsed <= 50.0 + 5.0 + 3.0, elapsed
    assert event.detail == "Ready=Unknown (NodeStatusUnknown)"
    node = cluster.get("nodes", "node-1")
    ready_cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready_cond["message"] == "Kubelet stopped posting node status."
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    assert ready(cluster, "node-2") == "True"


def test_statefulset_pod_stays_terminating_without_help_and_moves_with_the_taint(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    t0 = cluster.clock()
    cluster.fault("power-off", victim)
    # eviction after grace (50 s) + tolerationSeconds (300 s)
    eviction = cluster.wait_for(lambda: cluster.timeline.first("eviction", victim, since=t0), 12,
                                message="taint eviction")
    assert 345.0 <= cluster_seconds(cluster, eviction.at - t0) <= 365.0
    # ... and then nothing: 10 more minutes of cluster time, the pod stays Terminating.
    time.sleep(max(0.0, eviction.at + 600 * SCALE - cluster.clock()))
    stuck = pod(cluster, "db-0")
    assert stuck is not None and stuck["metadata"]["deletionTimestamp"]
    assert stuck["spec"]["nodeName"] == victim
    assert running_on(cluster, "db-0") is None
    # With the out-of-service taint, pod GC force-deletes it within one period (20 s), then the
    # StatefulSet recreates it and it starts elsewhere (attach 1 s + start 2 s + scheduling).
    t1 = cluster.clock()
    add_taint(cluster, victim)
    cluster.wait_for(lambda: running_on(cluster, "db-0") not in (None, victim), 5, message="db-0 replaced")
    started = cluster.timeline.first("pod-started", since=t1, obj="default/db-0")
    assert started is not None
    assert cluster_seconds(cluster, started.at - t1) <= 20.0 + 15.0
    assert cluster.invariants()["violations"] == []


def test_node_comes_back_with_a_new_boot_id(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE)
    before = cluster.get("nodes", "node-1")["status"]["nodeInfo"]["bootID"]
    t0 = cluster.clock()
    cluster.fault("reboot", "node-1")
    cluster.wait_for(lambda: cluster.timeline.first("node-booted", "node-1", since=t0), 5,
                     message="boot")

    def new_boot() -> bool:
        return cluster.get("nodes", "node-1")["status"]["nodeInfo"]["bootID"] != before

    cluster.wait_for(new_boot, 5, message="new bootID posted")
    booted = cluster.timeline.first("node-booted", "node-1", since=t0)
    # reboot delay 30 s + boot delay 10 s
    assert 40.0 <= cluster_seconds(cluster, booted.at - t0) <= 45.0
    assert cluster.node_state("node-1")["boots"] == 2
