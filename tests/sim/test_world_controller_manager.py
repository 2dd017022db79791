"""Timers do not outlive the controller manager.

Sources followed: k8s.io/client-go/tools/leaderelection/leaderelection.go (renew deadline,
lease duration, a new identity waits for the old record to expire) with
kube-controller-manager's defaults (15 s / 10 s / 2 s) and its exit on "leaderelection lost";
pkg/controller/tainteviction/taint_eviction.go (the eviction queue lives in memory, counting
from when the controller saw the pod); pkg/controller/volume/attachdetach (detachRequestedTime
in the in-memory actual state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.waits import ready, running_on, wait_running
from sim.world.attachdetach import DetachReason
from sim.world.cluster import Cluster

SCALE = 0.02


def secs(cluster: Cluster, wall: float) -> float:
    return wall / cluster.timings.scale


def cm_events(cluster: Cluster, since: float, word: str) -> list[float]:
    return [e.at for e in cluster.timeline.events(since=since, kind="controller-manager") if word in e.detail]


def test_long_api_outage_restarts_the_controller_manager(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE)
    t0 = cluster.clock()
    cluster.fault("api-outage", duration_s=5)  # shorter than the renew deadline: keeps leading
    cluster.wait_for(lambda: cluster.control_plane_up() and cluster.clock() > t0 + 12 * SCALE, 5, message="5 s")
    assert cm_events(cluster, t0, "exited") == []
    t1 = cluster.clock()
    cluster.fault("api-outage", duration_s=30)
    exited = cluster.wait_for(lambda: cm_events(cluster, t1, "exited"), 5, message="lease lost")
    # the renew deadline (10 s) after the last renewal, which was up to one retry period (2 s) earlier
    assert 10.0 - 2.0 <= secs(cluster, exited[0] - t1) <= 10.0 + 3.0
    acquired = cluster.wait_for(lambda: cm_events(cluster, t1, "acquired"), 5, message="lease taken again")
    # back at 30 s; the new process waits out the old record for the lease duration (15 s)
    assert 30.0 + 15.0 <= secs(cluster, acquired[0] - t1) <= 30.0 + 15.0 + 5.0
    assert cluster.controller_manager.restarts == 1
    lease = cluster.get("leases", "kube-controller-manager", "kube-system", "coordination.k8s.io")
    assert lease["spec"]["holderIdentity"] == cluster.controller_manager.identity
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_restart_resets_the_taint_eviction_timer(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    t0 = cluster.clock()
    cluster.fault("power-off", victim)
    tainted = cluster.wait_for(lambda: cluster.timeline.first("zone-taint", victim, since=t0), 5,
                               message="NoExecute taint")
    cluster.wait_for(lambda: cluster.clock() > tainted.at + 150 * SCALE, 5, message="150 s")
    restart = cluster.clock()
    cluster.fault("controller-manager-restart")
    eviction = cluster.wait_for(lambda: cluster.timeline.first("eviction", victim, since=t0), 12,
                                message="eviction")
    acquired = cm_events(cluster, restart, "acquired")[0]
    assert secs(cluster, eviction.at - tainted.at) >= 150.0 + 300.0  # not 300 s after the taint
    assert 300.0 <= secs(cluster, eviction.at - acquired) <= 300.0 + 5.0
    assert ready(cluster, victim) == "Unknown"


def test_a_restart_resets_the_attach_detach_wait(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    t0 = cluster.clock()
    cluster.registry.delete(cluster.rt("pods"), "default", "db-0", grace_period=0)
    cluster.wait_for(lambda: cluster.clock() > t0 + 200 * SCALE, 5, message="200 s")
    restart = cluster.clock()
    cluster.fault("controller-manager-restart")
    detach = cluster.wait_for(lambda: cluster.timeline.first("detach-requested", victim, since=t0), 15,
                              message="force detach")
    acquired = cm_events(cluster, restart, "acquired")[0]
    assert secs(cluster, detach.at - t0) >= 200.0 + 360.0
    assert 360.0 <= secs(cluster, detach.at - acquired) <= 360.0 + 5.0


def test_a_restarted_controller_detaches_once_a_node_back_on_a_new_boot_lists_no_volume(
        make_cluster: Callable[..., Cluster]) -> None:
    """Chaos seed 146: the controller-manager was down while a node came back on a new boot;
    the node's old pod was gone and its status listed no volume in volumesInUse. The
    restarted attach/detach controller rebuilt its actual state (the volume attached there)
    and, as Kubernetes' populateActualStateOfWorld does, took the mounted flag from that
    status: not mounted, so the volume is detached and the replacement starts on another
    node. The simulator had assumed it mounted until the node listed it once, which it
    never would (a rule of Kubernetes releases before the attach state was tracked), and
    the replacement waited for good."""
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    cluster.registry.delete(cluster.rt("pods"), "default", "db-0")  # graceful: Terminating on the dead node

    def cordon(obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {})["unschedulable"] = True

    cluster.registry.mutate(cluster.rt("nodes"), "", victim, cordon)  # the replacement goes elsewhere
    t0 = cluster.clock()
    cluster.fault("controller-manager-restart")
    cluster.fault("power-on", victim)
    cluster.wait_for(lambda: cm_events(cluster, t0, "acquired"), 10, message="the manager back")
    back = cluster.timeline.first("node-booted", victim, since=t0)
    assert back is not None and back.at < cm_events(cluster, t0, "acquired")[0]  # back before the manager
    moved = cluster.wait_for(lambda: running_on(cluster, "db-0") not in (None, victim), 20,
                             message="db-0 running on another node")
    assert moved != victim
    detach = cluster.timeline.first("detach-requested", victim, since=t0)
    assert detach is not None and detach.detail == str(DetachReason.UNMOUNTED), detach
    assert cluster.invariants()["violations"] == []
