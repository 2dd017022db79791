"""Faults below the product's code, and the invariant monitor catching exactly what it
claims to catch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness.waits import (
    add_taint,
    pod,
    ready,
    remove_taint,
    running_on,
    violations,
    wait_running,
)
from sim.world.cluster import Cluster
from sim.world.timings import Timings

SCALE = 0.02


def test_partitioned_node_keeps_running_and_a_hand_taint_is_caught(make_cluster: Callable[..., Cluster],
                                                                   tmp_path: Path) -> None:
    """The scenario fencing exists for: a node cut off from the API still runs its pods."""
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("partition", victim, from_="api")
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    assert "default/db-0" in cluster.node_state(victim)["runningPods"]  # still live
    # An operator taints it by hand with kubectl: the pod is force-deleted and started
    # elsewhere while the old one still runs.
    kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig("admin")), "--cache-dir", str(tmp_path)]
    subprocess.run([*kubectl, "taint", "node", victim,
                    "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"], check=True,
                   capture_output=True)
    cluster.wait_for(lambda: violations(cluster, "at-most-one"), 5, message="at-most-one violation")
    unsafe = violations(cluster, "unsafe-taint")
    assert [v["node"] for v in unsafe] == [victim]
    double = violations(cluster, "at-most-one")
    assert {v["object"] for v in double} >= {"pod/default/db-0"}
    assert any(v["object"].startswith("volume/") for v in double)


def test_taint_on_a_powered_off_node_is_safe(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("power-off", victim)
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5, message="Ready=Unknown")
    add_taint(cluster, victim)
    cluster.wait_for(lambda: running_on(cluster, "db-0") not in (None, victim), 5, message="db-0 moved")
    time.sleep(0.5)
    assert cluster.invariants()["violations"] == []
    assert cluster.invariants()["checked"] > 0


def test_taint_on_a_rebooted_node_is_unsafe_only_once_it_reached_the_api(
        make_cluster: Callable[..., Cluster]) -> None:
    """Unsafe once its kubelet, back on the API, admitted the pod still bound to it; a
    kubelet that admitted nothing is tests/sim/test_world_kubelet_admission.py's."""
    cluster = make_cluster(nodes=2, time_scale=SCALE)
    cluster.registry.create(cluster.rt("pods"), "default", {
        "metadata": {"name": "web"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
    wait_running(cluster, ["web"])
    cluster.fault("partition", "node-1", from_="api")
    cluster.fault("reboot", "node-1")
    cluster.wait_for(lambda: cluster.node_state("node-1")["power"] == "Running", 5, message="booted")
    add_taint(cluster, "node-1")  # rebooted, kubelet up, but it never reached the API: safe
    assert violations(cluster, "unsafe-taint") == []
    remove_taint(cluster, "node-1")
    cluster.fault("heal", "node-1")
    cluster.wait_for(lambda: ready(cluster, "node-1") == "True" and cluster.nodes["node-1"].admitted,
                     5, message="reconnected, synced, web admitted")
    add_taint(cluster, "node-1")  # now it runs (or is starting) its pod: unsafe
    [found] = violations(cluster, "unsafe-taint")
    assert found["node"] == "node-1" and "admitted on this boot=1" in found["detail"]


def test_stale_taint_is_reported_once_the_node_is_ready_again(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE)
    cluster.fault("power-off", "node-1")
    add_taint(cluster, "node-1")
    cluster.fault("power-on", "node-1")
    cluster.wait_for(lambda: ready(cluster, "node-1") == "True", 5, message="node back")
    found = cluster.wait_for(lambda: violations(cluster, "stale-taint"), 5, message="stale taint")
    assert found[0]["node"] == "node-1"
    assert violations(cluster, "unsafe-taint") == []


def test_stale_taint_counts_ready_from_the_current_boot(make_cluster: Callable[..., Cluster]) -> None:
    """Found by the chaos suite: a node reset by its watchdog came back faster than the
    grace period, so Ready never left True and its transition time was from before the
    reset. The taint applied while it was down is stale only a bound after the new boot."""
    timings = Timings(reboot_delay_s=5.0, boot_delay_s=2.0)  # back well within the 50 s grace
    cluster = make_cluster(nodes=2, time_scale=SCALE, timings=timings)
    bound = timings.stale_taint_bound_s * SCALE
    time.sleep(bound + 0.3)  # Ready for longer than the bound already
    cluster.fault("reboot", "node-1")
    cluster.wait_for(lambda: cluster.node_state("node-1")["power"] != "Running", 5, message="resetting")
    add_taint(cluster, "node-1")  # while it is down: safe
    cluster.wait_for(lambda: cluster.node_state("node-1")["power"] == "Running", 5, message="booted")
    assert ready(cluster, "node-1") == "True"
    time.sleep(bound / 3)
    assert violations(cluster, "stale-taint") == []
    found = cluster.wait_for(lambda: violations(cluster, "stale-taint"), 5, message="stale taint after the bound")
    assert found[0]["node"] == "node-1"
    assert violations(cluster, "unsafe-taint") == []


def test_kubelet_kills_pods_deleted_while_it_was_cut_off(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["web=deployment:2"])
    listed = cluster.wait_for(lambda: len(cluster.list("pods", "default")) == 2 and cluster.list("pods", "default"),
                              5, message="two pods")
    pods = [p["metadata"]["name"] for p in listed]
    placed = wait_running(cluster, pods)
    name, node = next(iter(placed.items()))
    cluster.fault("partition", node, from_="api")
    cluster.registry.delete(cluster.rt("pods"), "default", name, grace_period=0)
    time.sleep(0.3)
    assert f"default/{name}" in cluster.node_state(node)["runningPods"]  # cannot know yet
    cluster.fault("heal", node)
    cluster.wait_for(lambda: f"default/{name}" not in cluster.node_state(node)["runningPods"], 5,
                     message="kubelet kills the deleted pod")
    killed = cluster.timeline.first("pod-killed", node, obj=f"default/{name}")
    assert killed is not None and killed.detail == "pod no longer exists in the API"


def test_a_pod_started_while_the_api_was_out_of_reach_is_reported_running_later(
        make_cluster: Callable[..., Cluster]) -> None:
    """Found by the chaos suite: a pod that started just as an API outage began stayed
    Pending in the API forever, though it ran; the kubelet reported Running only at start."""
    cluster = make_cluster(nodes=1, time_scale=SCALE, workloads=["db=statefulset:1"],
                           timings=Timings(pod_start_delay_s=40.0))
    node = cluster.nodes["node-1"]
    cluster.wait_for(lambda: node.starting, 10, message="the kubelet starting db-0")
    cluster.fault("partition", "node-1", from_="api")
    cluster.wait_for(lambda: cluster.timeline.first("pod-started", "node-1", obj="default/db-0"), 10,
                     message="db-0 started")
    assert running_on(cluster, "db-0") is None  # it runs, but the kubelet could not say so
    cluster.fault("heal", "node-1")
    cluster.wait_for(lambda: running_on(cluster, "db-0") == "node-1", 5, message="db-0 reported Running")


def test_deployment_replaces_a_terminating_pod_at_once_with_a_new_name(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["web=deployment:1"])
    first = cluster.wait_for(lambda: cluster.list("pods", "default"), 5)[0]["metadata"]["name"]
    node = wait_running(cluster, [first])[first]
    cluster.fault("kubelet-stop", node)  # the pod's deletion will never be confirmed
    cluster.registry.delete(cluster.rt("pods"), "default", first)
    replacement = cluster.wait_for(
        lambda: [p["metadata"]["name"] for p in cluster.list("pods", "default")
                 if p["metadata"]["name"] != first and not p["metadata"].get("deletionTimestamp")], 5)
    assert replacement[0].startswith("web-")
    assert pod(cluster, first)["metadata"]["deletionTimestamp"]  # still there, Terminating


def test_force_detach_after_six_minutes_on_an_unhealthy_node(make_cluster: Callable[..., Cluster]) -> None:
    """Force-deleting a pod of a partitioned node without the taint: the volume is detached
    after max-wait-for-unmount and the monitor sees the volume live twice."""
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["db=statefulset:1"])
    victim = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("partition", victim, from_="api")
    cluster.wait_for(lambda: ready(cluster, victim) == "Unknown", 5)
    t0 = cluster.clock()
    cluster.registry.delete(cluster.rt("pods"), "default", "db-0", grace_period=0)
    wait = cluster.wait_for(lambda: cluster.timeline.first("multi-attach-wait", since=t0), 5)
    assert wait.detail.startswith("volume is still attached to")
    detach = cluster.wait_for(lambda: cluster.timeline.first("detach", victim, since=t0), 12)
    cluster_seconds = (detach.at - t0) / SCALE
    assert 355.0 <= cluster_seconds <= 370.0
    assert "max wait for unmount" in detach.detail
    cluster.wait_for(lambda: violations(cluster, "at-most-one"), 5, message="double mount seen")


def test_api_outage_answers_503_and_leaves_nodes_ready(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE)
    cfg = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig("admin")), client_configuration=cfg)
    core = client.CoreV1Api(client.ApiClient(cfg))
    cluster.fault("api-outage", duration_s=100.0)  # 2 s of test time
    with pytest.raises(ApiException) as err:
        core.read_node("node-1")
    assert err.value.status == 503
    time.sleep(100 * SCALE + 0.3)
    assert core.read_node("node-1").metadata.name == "node-1"
    time.sleep(60 * SCALE)  # more than a grace period after the outage
    assert ready(cluster, "node-1") == "True" and ready(cluster, "node-2") == "True"


def test_a_write_answered_503_leaves_the_next_request_on_its_connection_intact(
    make_cluster: Callable[..., Cluster],
) -> None:
    """The outage answers before reading the body; the connection must not carry that
    body into the next request (which then failed as "400 Bad request syntax")."""
    cluster = make_cluster(nodes=1, time_scale=SCALE)
    cfg = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig("admin")), client_configuration=cfg)
    cfg.retries = False
    core = client.CoreV1Api(client.ApiClient(cfg))
    namespace = {"metadata": {"name": "after-outage"}}
    cluster.fault("api-outage", duration_s=50.0)  # 1 s of test time
    with pytest.raises(ApiException) as err:
        core.create_namespace(namespace)
    assert err.value.status == 503
    time.sleep(50 * SCALE + 0.3)
    assert core.create_namespace(namespace).metadata.name == "after-outage"


def test_kubelet_stop_leaves_containers_running(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["db=statefulset:1"])
    node = wait_running(cluster, ["db-0"])["db-0"]
    cluster.fault("kubelet-stop", node)
    cluster.wait_for(lambda: ready(cluster, node) == "Unknown", 5)
    assert "default/db-0" in cluster.node_state(node)["runningPods"]
    cluster.fault("kubelet-start", node)
    cluster.wait_for(lambda: ready(cluster, node) == "True", 5)


def test_unknown_node_and_bad_fault_are_rejected(make_cluster: Callable[..., Cluster]) -> None:
    from sim.world.faults import FaultError

    cluster = make_cluster(nodes=1, time_scale=SCALE)
    with pytest.raises(FaultError, match="unknown node"):
        cluster.fault("power-off", "node-9")
    with pytest.raises(FaultError, match="api, peers or all"):
        cluster.fault("partition", "node-1", from_="everything")


def test_fault_command_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "admin.kubeconfig"
    serve = subprocess.Popen([sys.executable, "-m", "sim", "serve", "--nodes", "2", "--port", "0",
                              "--time-scale", "0.02", "--kubeconfig-out", str(kubeconfig)],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()  # type: ignore[union-attr]
        assert "API server on https://127.0.0.1:" in line
        out = subprocess.run([sys.executable, "-m", "sim", "fault", "--kubeconfig", str(kubeconfig),
                              "power-off", "node-2"], capture_output=True, text=True, check=True)
        assert json.loads(out.stdout)["ok"] is True
        bad = subprocess.run([sys.executable, "-m", "sim", "fault", "--kubeconfig", str(kubeconfig),
                              "power-off", "node-7"], capture_output=True, text=True)
        assert bad.returncode != 0 and "unknown node" in bad.stderr
        time.sleep(0.5)
        timeline = subprocess.run([sys.executable, "-m", "sim", "timeline", "--kubeconfig", str(kubeconfig)],
                                  capture_output=True, text=True, check=True).stdout
        assert "node-power" in timeline and "node-2" in timeline
    finally:
        serve.send_signal(2)
        out, _ = serve.communicate(timeout=10)
    assert "0 violation(s)" in out
    assert serve.returncode == 0
