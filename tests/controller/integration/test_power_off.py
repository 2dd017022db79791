"""The controller with real agents, the real webhook and the simulated cluster:
power-off -> fence proven -> out-of-service taint -> workloads move -> power-on -> taint
removed, with the invariant monitor watching."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.waits import running_on, wait_running
from harness.world import nodewarden_world

SCALE = 0.05


def test_power_off_recovery_and_return(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE) as w:  # the controller deletes the pods (default)
        c = w.cluster
        placed = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)
        victim = placed["db-0"]
        boot = c.node_state(victim)["bootId"]
        # A pod that asked to stay on its node through the fencing and out-of-service taints.
        c.apply_manifest(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stays", "namespace": "default"},
            "spec": {"nodeName": victim, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                     "tolerations": [{"key": key, "operator": "Exists", "effect": "NoExecute"}
                                     for key in ("node.kubernetes.io/out-of-service", "nodewarden.io/fencing")]}}))
        c.wait_for(lambda: running_on(c, "stays") == victim, 20, message="the tolerating pod runs")
        t0 = c.clock()
        c.fault("power-off", victim)
        c.wait_for(lambda: c.get("nodes", victim)["status"]["conditions"][-1]["status"] == "Unknown", 10)
        response = w.alert(victim)
        assert response.status_code == 200, response.text
        rem = w.wait_phase(victim, "AwaitingNodeReady", timeout=60)
        evidence = rem["status"]["fence"]["evidence"]
        assert evidence["rule"] == "AgentHeartbeatStale", evidence
        assert w.has_taint(victim)
        # The controller force-deleted the terminating pods itself (pod GC had no part in
        # db-0's deletion), and left the pod that tolerates both taints (never terminating).
        assert rem["status"]["recovery"]["podsDeleted"] >= 1, rem["status"]["recovery"]
        assert c.get("pods", "stays", "default") is not None
        c.wait_for(lambda: running_on(c, "db-0") not in (None, victim), 20, message="db-0 moved")
        moved_at = c.clock()
        assert c.timeline.first("pod-force-deleted", obj="default/db-0", since=0) is None
        assert c.get("pods", "stays", "default") is not None
        # bring the node back: the taint goes once it is Ready with a new boot
        c.fault("power-on", victim)
        rem = w.wait_phase(victim, "Succeeded", timeout=60)
        assert rem["status"]["reason"] == "NodeReturned"
        assert not w.has_taint(victim)
        assert c.node_state(victim)["bootId"] != boot
        report = c.invariants()
        assert report["violations"] == [], report
        print(f"recovery took {(moved_at - t0) / SCALE:.0f} cluster seconds")


def test_resource_deletion_moves_the_pod_and_its_volume_without_the_taint(tmp_path: Path) -> None:
    """The ResourceDeletion strategy: once the fence is proven, the controller itself
    force-deletes the node's pods and VolumeAttachments (the deletion of an attachment is
    answered with a Status, which the client must not try to read as the object)."""
    from harness.world import policy

    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE,
                          remediation_policy=policy(strategy="ResourceDeletion")) as w:
        c = w.cluster
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)["db-0"]
        c.fault("power-off", victim)
        c.wait_for(lambda: c.get("nodes", victim)["status"]["conditions"][-1]["status"] == "Unknown", 10)
        assert w.alert(victim).status_code == 200
        rem = w.wait_phase(victim, "AwaitingNodeReady", timeout=60)
        recovery = rem["status"]["recovery"]
        assert recovery["strategy"] == "ResourceDeletion"
        assert recovery["podsDeleted"] >= 1 and recovery["volumeAttachmentsDeleted"] >= 1, recovery
        assert not w.has_taint(victim)
        c.wait_for(lambda: running_on(c, "db-0") not in (None, victim), 20, message="db-0 moved")
        assert "reconcile of" not in w.logs(tail=400)
        report = c.invariants()
        assert report["violations"] == [], report
