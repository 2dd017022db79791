"""The simulated kubelet admits pods as the real one does: once per pod per boot, refusing a
pod that does not tolerate one of the node's NoExecute taints (pkg/kubelet/kubelet.go
`HandlePodAdditions`, `rejectPod`; pkg/kubelet/lifecycle/predicate.go `generalFilter`),
and the invariant monitor counts only what such a kubelet could really run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.waits import add_taint, pod, ready, running_on, violations, wait_running
from sim.world.cluster import Cluster
from sim.world.kubelet import admission
from sim.world.nodes import Power, RunningPod, SimNode
from sim.world.timings import Timings

SCALE = 0.02
FENCING = {"key": "nodewarden.io/fencing", "effect": "NoExecute"}
REJECTED = "Pod was rejected: Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"


# -- the decision alone ------------------------------------------------------------------

def _pod(tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"spec": {"tolerations": tolerations}}


def test_an_untolerated_no_execute_taint_rejects_with_the_predicate_name() -> None:
    assert admission(_pod([]), [FENCING]) == (
        "TaintToleration", "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate")


def test_only_no_execute_taints_count_at_admission() -> None:
    assert admission(_pod([]), [{"key": "k", "effect": "NoSchedule"},
                                {"key": "k2", "effect": "PreferNoSchedule"}]) is None


def test_a_toleration_with_toleration_seconds_still_tolerates_at_admission() -> None:
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    default = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 300}
    assert admission(_pod([default]), [unreachable]) is None
    assert admission(_pod([default]), [unreachable, FENCING]) is not None  # one untolerated is enough
    assert admission(_pod([{"operator": "Exists"}]), [unreachable, FENCING]) is None


# -- what the node could run ---------------------------------------------------------------

def test_a_synced_kubelet_that_admitted_nothing_cannot_run_workloads() -> None:
    node = SimNode("node-1", 1)
    assert node.synced_since_boot and not node.could_run_workloads
    node.admitted["u1"] = "default/db-0"
    assert node.could_run_workloads
    node.admitted.clear()
    node.starting.add("u2")
    assert node.could_run_workloads
    node.starting.clear()
    node.running["u3"] = RunningPod("default", "web", "u3", (), "", 0.0)
    assert node.could_run_workloads
    node.power = Power.BOOTING
    assert not node.could_run_workloads


# -- in a world ----------------------------------------------------------------------------

def _bare_pod(cluster: Cluster, name: str, node: str, tolerations: list[dict[str, Any]] | None = None) -> str:
    obj = {"metadata": {"name": name},
           "spec": {"nodeName": node, "tolerations": tolerations or [],
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}
    return str(cluster.registry.create(cluster.rt("pods"), "default", obj).obj["metadata"]["uid"])


def _events(cluster: Cluster, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("events", "default")
            if e["involvedObject"].get("name") == name and e.get("reason") == reason]


def _controller_manager_down(cluster: Cluster) -> None:
    """The taint-eviction controller (and every other one) stops, so a pod stays bound to a
    NoExecute-tainted node for as long as the test needs."""
    cluster.fault("controller-manager-restart")
    cluster.wait_for(lambda: cluster.lifecycle is None, 5, message="controller manager down")


def test_a_kubelet_back_on_a_new_boot_refuses_the_old_pod_and_its_statefulset_replaces_it(
        make_cluster: Callable[..., Cluster]) -> None:
    """Seed 116's shape: a node cut off from the API reboots while still cut off; the
    fencing taint is on its Node when it returns. Its kubelet must refuse db-0 (Failed,
    Warning Event), never start it, and then not count as able to run workloads; the
    StatefulSet controller deletes the failed pod and the scheduler places the new one
    elsewhere."""
    cluster = make_cluster(nodes=3, time_scale=SCALE, workloads=["db=statefulset:1"],
                           timings=Timings(controller_manager_restart_s=150.0))
    victim = wait_running(cluster, ["db-0"])["db-0"]
    old_uid = pod(cluster, "db-0")["metadata"]["uid"]
    cluster.fault("partition", victim, from_="api")
    cluster.fault("reboot", victim)
    cluster.wait_for(lambda: cluster.node_state(victim)["power"] == "Running", 5, message="rebooted")
    booted = cluster.clock()
    _controller_manager_down(cluster)
    add_taint(cluster, victim, FENCING)
    cluster.fault("heal", victim)

    rejected = cluster.wait_for(lambda: cluster.timeline.first("pod-rejected", victim, obj="default/db-0"), 5,
                                message="db-0 rejected")
    assert rejected.detail == "TaintToleration: untolerated NoExecute taint nodewarden.io/fencing"
    status = cluster.wait_for(lambda: (pod(cluster, "db-0") or {}).get("status", {}).get("phase") == "Failed"
                              and pod(cluster, "db-0")["status"], 5, message="db-0 Failed")
    assert (status["reason"], status["message"]) == ("TaintToleration", REJECTED)
    assert pod(cluster, "db-0")["metadata"]["uid"] == old_uid  # the controller manager is still down
    [event] = _events(cluster, "db-0", "TaintToleration")
    assert event["type"] == "Warning"
    assert event["source"] == {"component": "kubelet", "host": victim}
    assert event["message"] == "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
    assert cluster.timeline.first("pod-started", victim, obj="default/db-0", since=booted) is None
    assert cluster.nodes[victim].synced_since_boot and not cluster.nodes[victim].admitted

    add_taint(cluster, victim)  # synced, but it admitted nothing: it cannot run db-0
    assert violations(cluster, "unsafe-taint") == []

    new_node = cluster.wait_for(
        lambda: pod(cluster, "db-0") is not None and pod(cluster, "db-0")["metadata"]["uid"] != old_uid
        and running_on(cluster, "db-0"), 15, message="db-0 recreated and running")
    assert new_node != victim
    assert any(e["message"] == "delete Pod db-0 in StatefulSet db successful"
               for e in _events(cluster, "db", "SuccessfulDelete"))
    assert cluster.timeline.first("pod-started", victim, obj="default/db-0", since=booted) is None
    assert violations(cluster, "at-most-one") == [] and violations(cluster, "unsafe-taint") == []


def test_admission_is_once_per_pod_per_boot(make_cluster: Callable[..., Cluster]) -> None:
    """A pod admitted before a NoExecute taint arrives still starts (the taint-eviction
    controller evicts it later, and the kubelet stops it); after the taint, a pod that
    tolerates it is admitted and one that does not is refused and never starts."""
    cluster = make_cluster(nodes=1, time_scale=SCALE,
                           timings=Timings(pod_start_delay_s=100.0, controller_manager_restart_s=200.0))
    node = cluster.nodes["node-1"]
    cluster.wait_for(lambda: ready(cluster, "node-1") == "True", 5, message="node-1 Ready")
    _controller_manager_down(cluster)
    early = _bare_pod(cluster, "early", "node-1")
    cluster.wait_for(lambda: early in node.starting, 5, message="early admitted and starting")
    add_taint(cluster, "node-1", FENCING)
    tolerating = _bare_pod(cluster, "tolerating", "node-1",
                           [{"key": "nodewarden.io/fencing", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 3000}])
    _bare_pod(cluster, "refused", "node-1")
    cluster.wait_for(lambda: (pod(cluster, "refused") or {}).get("status", {}).get("phase") == "Failed", 5,
                     message="refused Failed")
    assert pod(cluster, "refused")["status"]["reason"] == "TaintToleration"
    assert tolerating in node.admitted

    wait_running(cluster, ["early", "tolerating"], timeout=10)
    assert cluster.timeline.first("pod-rejected", "node-1", obj="default/early") is None
    assert cluster.timeline.first("pod-started", "node-1", obj="default/refused") is None

    # The controller manager returns: the taint-eviction controller evicts the pod that
    # does not tolerate the taint, and the kubelet stops it; the tolerating one stays.
    cluster.wait_for(lambda: cluster.timeline.first("pod-killed", "node-1", obj="default/early"), 15,
                     message="early evicted and stopped")
    assert cluster.timeline.first("eviction", "node-1", obj="default/early") is not None
    assert running_on(cluster, "tolerating") == "node-1"
    assert cluster.timeline.first("pod-started", "node-1", obj="default/refused") is None
    assert sorted(node.admitted.values()) == ["default/tolerating"]



def test_the_replicaset_controller_replaces_a_refused_pod_and_leaves_it(make_cluster: Callable[..., Cluster]) -> None:
    """A pod the kubelet refused is Failed: the ReplicaSet controller no longer counts it
    (FilterActivePods) and creates a replacement; the Failed pod stays for pod GC."""
    cluster = make_cluster(nodes=2, time_scale=SCALE, workloads=["web=deployment:1"])
    first = cluster.wait_for(lambda: cluster.list("pods", "default"), 5, message="web pod")[0]["metadata"]["name"]
    wait_running(cluster, [first])

    def refuse(obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Failed", "reason": "TaintToleration", "message": REJECTED}

    cluster.registry.mutate(cluster.rt("pods"), "default", first, refuse, subresource="status")
    others = cluster.wait_for(lambda: [p["metadata"]["name"] for p in cluster.list("pods", "default")
                                       if p["metadata"]["name"] != first], 5, message="a replacement")
    wait_running(cluster, others)
    assert (pod(cluster, first) or {}).get("status", {}).get("phase") == "Failed"
