"""PodDisruptionBudgets as the real disruption controller keeps them, and `kubectl drain`
through them on a running world.

Source followed: kubernetes pkg/controller/disruption/disruption.go (getExpectedPodCount,
getExpectedScale, countHealthyPods, buildDisruptedPodMap, updatePdbStatus, failSafe)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from harness.waits import running_on, wait_running
from sim.timefmt import rfc3339
from sim.world.cluster import Cluster
from sim.world.disruption import budget_status

NOW = 1_000_000.0
RS = {"kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid", "controller": True}


def budget(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "b", "namespace": "ns", "generation": 3},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def pod(name: str, ready: bool = True, owner: dict[str, Any] | None = RS, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": {"app": "web"},
                            "ownerReferences": [owner] if owner else []}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def scale_of(replicas: int) -> Callable[[str, dict[str, Any]], tuple[str, int] | None]:
    return lambda _ns, ref: (ref["uid"], replicas) if ref["uid"] == "rs-uid" else None


def test_min_available_number_counts_the_pods_and_ready_ones() -> None:
    status = budget_status(budget(minAvailable=2), [pod("a"), pod("b"), pod("c", ready=False)], scale_of(3), NOW)
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"], status["observedGeneration"]) == (3, 2, 2, 0, 3)
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("DisruptionAllowed", "False", "InsufficientPods")]


def test_max_unavailable_scales_against_the_controllers_replicas() -> None:
    # 4 replicas wanted, 3 Ready: desired = 4 - ceil(25% of 4) = 3, so no disruption is allowed.
    status = budget_status(budget(maxUnavailable="25%"), [pod("a"), pod("b"), pod("c")], scale_of(4), NOW)
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (4, 3, 0)
    status = budget_status(budget(maxUnavailable=1), [pod("a"), pod("b"), pod("c")], scale_of(3), NOW)
    assert (status["desiredHealthy"], status["disruptionsAllowed"]) == (2, 1)
    assert status["conditions"][0]["reason"] == "SufficientPods"


def test_terminating_and_recently_disrupted_pods_are_not_healthy() -> None:
    b = budget(minAvailable=1)
    b["status"] = {"disruptedPods": {"a": rfc3339(NOW - 10), "b": rfc3339(NOW - 500)}}
    status = budget_status(b, [pod("a"), pod("b"), pod("c", deleting=True), pod("d")], scale_of(4), NOW)
    # a: evicted 10 s ago, still expected to go; b: past the 2-minute timeout, healthy again.
    assert status["disruptedPods"] == {"a": rfc3339(NOW - 10)}
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (2, 1)


def test_a_pod_whose_controller_is_missing_fails_safe() -> None:
    orphan = pod("x", owner={"kind": "ReplicaSet", "name": "gone", "uid": "gone-uid", "controller": True})
    b = budget(maxUnavailable=1)
    b["status"] = {"disruptionsAllowed": 2}
    status = budget_status(b, [pod("a"), orphan], scale_of(2), NOW)
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"][0]["reason"] == "SyncFailed"
    assert status["conditions"][0]["message"] == 'found no controllers for pod "x"'


def test_no_expected_pod_allows_nothing() -> None:
    status = budget_status(budget(minAvailable=0), [], scale_of(0), NOW)
    assert (status["expectedPods"], status["disruptionsAllowed"]) == (0, 0)


PDB = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
"""


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is required")
def test_kubectl_drain_on_a_running_world(make_cluster: Callable[..., Cluster]) -> None:
    """The disruption controller opens the budget, drain evicts one pod at a time, the
    ReplicaSet replaces it elsewhere, the budget closes and opens again."""
    cluster = make_cluster(nodes=2, time_scale=0.02, workloads=["web=deployment:2"])
    cluster.wait_for(lambda: len(cluster.list("pods", "default")) == 2, timeout=15,
                     message="the Deployment's two pods")
    names = sorted(p["metadata"]["name"] for p in cluster.list("pods", "default"))
    wait_running(cluster, names, timeout=30)
    cluster.apply_manifest(PDB)

    def allowed() -> int:
        pdb = cluster.get("poddisruptionbudgets", "web", "default", "policy") or {}
        return int((pdb.get("status") or {}).get("disruptionsAllowed", 0))

    cluster.wait_for(lambda: allowed() == 1, timeout=15, message="the budget to allow one disruption")
    node = running_on(cluster, names[0])
    assert node is not None
    proc = subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig()), "drain", node,
                           "--ignore-daemonsets", "--timeout=60s"], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert f"pod/{names[0]} evicted" in proc.stdout
    pods = cluster.list("pods", "default")
    assert all(p["spec"].get("nodeName") != node for p in pods)
    pdb = cluster.get("poddisruptionbudgets", "web", "default", "policy") or {}
    assert pdb["status"]["expectedPods"] == 2
    cluster.wait_for(lambda: allowed() == 1, timeout=20, message="the replacement to be Ready")
