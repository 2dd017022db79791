"""StatefulSets as the real controller runs them.

Sources followed: kubernetes pkg/apis/apps/v1/defaults.go (SetDefaults_StatefulSet) and
pkg/controller/statefulset/stateful_set_control.go (monotonic = OrderedReady: stop at the
first ordinal that is missing, Terminating or not Running and Ready)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.waits import add_taint, ready, running_on, wait_running
from sim.world.cluster import Cluster

SCALE = 0.02


def created(cluster: Cluster, name: str, since: float | None = None) -> Any:
    return cluster.timeline.first("pod-created", obj=f"default/{name}", since=since)


def test_statefulset_defaults_are_the_api_servers(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE, workloads=["db=statefulset:1"])
    spec = cluster.get("statefulsets", "db", "default", "apps")["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_ordered_ready_creates_one_ordinal_at_a_time(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:3"])
    wait_running(cluster, ["db-0", "db-1", "db-2"])
    for lower, higher in (("db-0", "db-1"), ("db-1", "db-2")):
        started = cluster.timeline.first("pod-started", obj=f"default/{lower}")
        assert started is not None and created(cluster, higher).at >= started.at, (lower, higher)
    events = [e for e in cluster.list("events", "default") if e.get("reason") == "SuccessfulCreate"]
    assert {e["message"] for e in events} >= {"create Pod db-0 in StatefulSet db successful"}


def _stuck_lower_ordinal(cluster: Cluster) -> str:
    """db-0's node dies and db-0 is deleted (stays Terminating); db-1 is deleted from a healthy
    node. Returns db-0's node."""
    nodes = wait_running(cluster, ["db-0", "db-1"])
    victim = nodes["db-0"]
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    cluster.registry.delete(cluster.rt("pods"), "default", "db-0")  # graceful: stuck Terminating
    cluster.registry.delete(cluster.rt("pods"), "default", "db-1", grace_period=0)
    return victim


def test_ordered_ready_blocks_behind_a_lower_ordinal_stuck_terminating(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:2"])
    victim = _stuck_lower_ordinal(cluster)
    t0 = cluster.clock()
    time.sleep(100 * SCALE)  # 100 cluster seconds: db-1 is not recreated
    assert cluster.get("pods", "db-1", "default") is None
    assert created(cluster, "db-1", since=t0) is None
    add_taint(cluster, victim)  # pod GC force-deletes db-0; db-0 comes back first, then db-1
    wait_running(cluster, ["db-0", "db-1"], timeout=10)
    db0_started = cluster.timeline.first("pod-started", obj="default/db-0", since=t0)
    assert db0_started is not None and created(cluster, "db-1", since=t0).at >= db0_started.at
    assert running_on(cluster, "db-0") != victim
    assert cluster.invariants()["violations"] == []


def test_parallel_policy_does_not_block(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE)
    cluster.apply_manifest("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: registry.k8s.io/pause:3.10}]}
""")
    _stuck_lower_ordinal(cluster)
    cluster.wait_for(lambda: running_on(cluster, "db-1"), 5, message="db-1 recreated without waiting for db-0")
    assert cluster.get("pods", "db-0", "default")["metadata"]["deletionTimestamp"]
