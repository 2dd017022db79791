"""Volumes as hard as a real cluster makes them: the CSI external-attacher's finalizer
and detach delay, and an attach/detach controller that trusts its own memory.

Sources followed: kubernetes-csi/external-attacher pkg/controller/csi_handler.go (finalizer,
ControllerUnpublish before the finalizer goes); kubernetes pkg/controller/volume/attachdetach
reconciler/reconciler.go (maxWaitForUnmountDuration, out-of-service taint, Multi-Attach
error, reconcilerSyncDuration) and cache/actual_state_of_world.go (mountedByNode assumed
true until the node reports otherwise)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.waits import add_taint, ready, running_on, wait_running
from sim.timefmt import parse
from sim.world.attachdetach import (
    DetachReason,
    detach_decision,
    multi_attach_allowed,
)
from sim.world.cluster import Cluster
from sim.world.csi_attacher import FINALIZER
from sim.world.facts import attachment_name
from sim.world.timings import Timings

SCALE = 0.02


def secs(cluster: Cluster, wall: float) -> float:
    return wall / cluster.timings.scale


def pv_of(cluster: Cluster, claim: str) -> str:
    return str(cluster.get("persistentvolumeclaims", claim, "default")["spec"]["volumeName"])


def events(cluster: Cluster, reason: str, name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in cluster.list("events", "default")
            if e.get("reason") == reason and (name is None or e["involvedObject"]["name"] == name)]


def force_delete(cluster: Cluster, name: str) -> None:
    cluster.registry.delete(cluster.rt("pods"), "default", name, grace_period=0)


# -- pure rules ------------------------------------------------------------------------

def test_detach_rule_follows_the_reconciler() -> None:
    """reconciler.go: skip detach while mounted unless force-detach timeout on an unhealthy
    node, or the out-of-service taint."""
    assert detach_decision(True, True, False, 10_000, 360) is None  # healthy and mounted: never
    assert detach_decision(True, False, False, 359, 360) is None
    assert detach_decision(True, False, False, 360, 360) is DetachReason.MAX_WAIT
    assert detach_decision(True, True, True, 0, 360) is DetachReason.OUT_OF_SERVICE
    assert detach_decision(False, True, False, 0, 360) is DetachReason.UNMOUNTED


def test_multi_attach_only_for_many_node_access_modes() -> None:
    assert not multi_attach_allowed({"spec": {"accessModes": ["ReadWriteOnce"]}})
    assert not multi_attach_allowed({"spec": {}})
    assert multi_attach_allowed({"spec": {"accessModes": ["ReadWriteMany"]}})


# -- the external-attacher ---------------------------------------------------------------

def test_volume_attachment_carries_the_attacher_finalizer_and_detaches_after_unpublish(
        make_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    """external-attacher: the finalizer is on before attach; a delete waits for
    ControllerUnpublish (csi_detach_delay_s, 5 s) before the object goes."""
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["db=statefulset:1"])
    node = wait_running(cluster, ["db-0"])["db-0"]
    va_name = attachment_name(pv_of(cluster, "data-db-0"), node)
    va = cluster.get("volumeattachments", va_name, group="storage.k8s.io")
    assert va["metadata"]["finalizers"] == [FINALIZER] == ["external-attacher/sim-csi-k8s-io"]
    assert va["status"]["attached"] is True
    kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig("admin")), "--cache-dir", str(tmp_path)]
    t0 = cluster.clock()
    subprocess.run([*kubectl, "delete", "volumeattachment", va_name, "--wait=false"], check=True,
                   capture_output=True)
    held = cluster.get("volumeattachments", va_name, group="storage.k8s.io")
    assert held is not None and held["metadata"]["deletionTimestamp"]  # not gone at once
    cluster.wait_for(lambda: cluster.get("volumeattachments", va_name, group="storage.k8s.io") is None
                     or cluster.get("volumeattachments", va_name, group="storage.k8s.io")["metadata"]["uid"]
                     != va["metadata"]["uid"], 5, message="VolumeAttachment gone")
    gone = cluster.timeline.first("csi-unpublished", since=t0)
    deleted_at = parse(held["metadata"]["deletionTimestamp"])
    assert gone is not None and deleted_at is not None
    assert 5.0 <= secs(cluster, gone.at - deleted_at) <= 5.0 + 3.0


# -- the attach/detach controller ----------------------------------------------------------

def test_dead_node_without_the_taint_keeps_the_volume_six_minutes_with_multi_attach_events(
        make_cluster: Callable[..., Cluster]) -> None:
    """reconciler.go: a volume mounted on a node that died is force-detached only after
    maxWaitForUnmountDuration (6 min) from the detach request; meanwhile the new pod gets
    FailedAttachVolume "Multi-Attach error"."""
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    pv = pv_of(cluster, "data-db-0")
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    t0 = cluster.clock()
    force_delete(cluster, "db-0")  # as an operator's `kubectl delete --force` would
    cluster.wait_for(lambda: events(cluster, "FailedAttachVolume", "db-0"), 5, message="Multi-Attach event")
    event = events(cluster, "FailedAttachVolume", "db-0")[0]
    assert event["type"] == "Warning"
    assert event["message"].startswith(f'Multi-Attach error for volume "{pv}" ')
    moved = cluster.wait_for(lambda: running_on(cluster, "db-0") not in (None, victim), 12,
                             message="db-0 running elsewhere")
    assert moved != victim
    detach = cluster.timeline.first("detach-requested", victim, since=t0)
    assert detach is not None and detach.detail == str(DetachReason.MAX_WAIT)
    assert 360.0 <= secs(cluster, detach.at - t0) <= 360.0 + 5.0
    assert cluster.invariants()["violations"] == []


def test_out_of_service_taint_detaches_without_waiting(make_cluster: Callable[..., Cluster]) -> None:
    """reconciler.go: the out-of-service taint skips the unmount wait; the CSI detach delay remains."""
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    t0 = cluster.clock()
    add_taint(cluster, victim)
    cluster.wait_for(lambda: running_on(cluster, "db-0") not in (None, victim), 5, message="db-0 moved")
    requested = cluster.timeline.first("detach-requested", victim, since=t0)
    done = cluster.timeline.first("detach", victim, since=t0)
    assert requested is not None and requested.detail == str(DetachReason.OUT_OF_SERVICE)
    assert done is not None and secs(cluster, done.at - requested.at) >= 5.0  # unpublish first
    assert cluster.invariants()["violations"] == []


def test_out_of_band_attachment_deletion_is_noticed_only_at_the_sync_period(
        make_cluster: Callable[..., Cluster]) -> None:
    """reconciler.go sync(): the actual state is checked against VolumeAttachments only every
    reconcilerSyncDuration; deleting the old node's VolumeAttachment by hand frees the
    volume for another node at the next sync, not at once."""
    sync_s = 120.0
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"],
                           timings=Timings(adc_sync_period_s=sync_s))
    victim = wait_running(cluster, ["db-0"])["db-0"]
    pv = pv_of(cluster, "data-db-0")
    adc_started = cluster.timeline.first("controller-manager")
    assert adc_started is not None
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    force_delete(cluster, "db-0")
    cluster.wait_for(lambda: events(cluster, "FailedAttachVolume", "db-0"), 5, message="Multi-Attach event")
    t0 = cluster.clock()
    cluster.registry.delete(cluster.rt("volumeattachments", "storage.k8s.io"), "", attachment_name(pv, victim))
    noticed = cluster.wait_for(
        lambda: cluster.timeline.first("detach", victim, since=t0), 8, message="sync noticed the deletion")
    assert noticed.detail == "sync found the VolumeAttachment gone: marked detached"
    since_start = secs(cluster, noticed.at - adc_started.at)
    phase = since_start % sync_s
    assert phase <= 4.0 or phase >= sync_s - 1.0, since_start  # on a sync tick, not at the deletion
    cluster.wait_for(lambda: running_on(cluster, "db-0") not in (None, victim), 5, message="db-0 moved")


def test_a_csi_stall_holds_every_detach_until_it_ends(make_cluster: Callable[..., Cluster]) -> None:
    """csi-stall: ControllerUnpublishVolume hangs for its duration, so a deleted
    VolumeAttachment keeps its finalizer (and its node the volume) until the stall ends,
    then goes once its own detach delay has passed."""
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["db=statefulset:1"])
    node = wait_running(cluster, ["db-0"])["db-0"]
    va_name = attachment_name(pv_of(cluster, "data-db-0"), node)
    t0 = cluster.clock()
    cluster.fault("csi-stall", duration_s=60.0)
    cluster.registry.delete(cluster.rt("volumeattachments", "storage.k8s.io"), "", va_name)
    cluster.wait_for(lambda: cluster.timeline.first("csi-unpublished", since=t0) is not None, 10,
                     message="the volume detached once the stall ended")
    gone = cluster.timeline.first("csi-unpublished", since=t0)
    assert gone is not None and 60.0 <= secs(cluster, gone.at - t0) <= 60.0 + 5.0  # not after 5 s as unstalled
