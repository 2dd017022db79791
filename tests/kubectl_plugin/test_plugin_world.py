"""`kubectl nodewarden` as a user runs it: the real kubectl finds the plugin on PATH and
runs it against the simulated cluster (RBAC on, the chart's roles), with the real webhook.
The main paths go through kubectl in a subprocess; the rest call the plugin's `main` in
this process with the same user's kubeconfig (the same API requests, without paying a
Python start per command on a loaded machine).

One module-scoped world (2 nodes, no agents, no controller: the remediations are asked for
and cancelled through the webhook, so nothing here waits on fencing). People:
- alice: the chart's `nodewarden-viewer` ClusterRole only;
- bob: an operator role made here (create/patch NodeRemediations, the pause switch);
- mallory: authenticated, nothing granted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.world import OPERATOR_TOKEN, World, nodewarden_world
from kubectl_plugin.cli import main

ROOT = Path(__file__).resolve().parents[2]
NODE = "node-2"

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (scripts/ensure-tools)")]

OPERATOR_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: test-nodewarden-operator}
rules:
  - apiGroups: [nodewarden.io]
    resources: [noderemediations, noderemediationrecords]
    verbs: [get, list, watch, create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: test-nodewarden-pause, namespace: nodewarden}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-bob}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-nodewarden-operator}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: test-bob, namespace: nodewarden}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: test-nodewarden-pause}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-alice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nodewarden-viewer}
subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
"""


def _operator(w: World, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{w.webhook_url}/api/v1/remediations{path}", json=body,
                         headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("plugin")
    with nodewarden_world(tmp, nodes=2, time_scale=0.05, workloads=(), agent_nodes=[], controllers=0) as w:
        api = w.cluster.api
        for user in ("alice", "bob", "mallory"):
            api.add_identity(user)
            api.write_kubeconfig(tmp / f"{user}.kubeconfig", user)
        w.cluster.apply_manifest(OPERATOR_ROLE)
        w.cluster.fault("kubelet-stop", NODE)
        w.cluster.wait_for(lambda: _ready(w) == "Unknown", 30, message=f"{NODE} not Ready")
        for i in range(3):  # three remediations of one node: asked for, then cancelled
            asked = _operator(w, "", {"node": NODE, "reason": f"cycle {i}"})
            assert asked.status_code == 201, asked.text
            w.wait_phase(NODE, "Pending", "AwaitingApproval", timeout=10)
            assert _operator(w, f"/{NODE}/cancel", {"reason": f"undo cycle {i}"}).status_code == 200
            w.wait_phase(NODE, "Cancelled", timeout=10)
        yield w


def _ready(w: World) -> str:
    node = w.cluster.get("nodes", NODE) or {}
    return next((c["status"] for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), "")


def kubectl(w: World, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl ARGS` as `user`, with the plugin on PATH as a user would install it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / "bin"), env.get("PATH", "")])
    env["KUBECONFIG"] = str(w.tmp / f"{user}.kubeconfig")
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, cwd="/")


def plugin(w: World, user: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`kubectl nodewarden ARGS` as `user`, in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(["--kubeconfig", str(w.tmp / f"{user}.kubeconfig"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history_shows_the_three_remediations_of_the_node(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out = kubectl(world, "alice", "nodewarden", "history", NODE)
    assert out.returncode == 0, out.stderr
    assert f"{NODE}: 3 remediation(s), newest first" in out.stdout
    assert out.stdout.count("\n* ") == 3
    assert [line for line in out.stdout.splitlines() if line.startswith("  cancelled by")] == [
        f"  cancelled by operator: undo cycle {i}" for i in (2, 1, 0)]
    assert out.stdout.count("OperatorCancelled") == 3  # each one's own timeline

    code, stdout, _ = plugin(world, "alice", capsys, "history", NODE, "-o", "json")
    assert code == 0
    as_json = json.loads(stdout)
    rems = as_json["remediations"]
    assert [r["source"] for r in rems] == ["current", "archive", "archive"]
    assert [r["spec"]["trigger"]["reason"] for r in rems] == ["cycle 2", "cycle 1", "cycle 0"]
    assert len({r["uid"] for r in rems}) == 3
    # The same history with plain kubectl: the records, by the node's label.
    got = kubectl(world, "alice", "get", "nremrec", "-l", f"nodewarden.io/node={NODE}", "-o", "name")
    assert got.returncode == 0, got.stderr
    assert len(got.stdout.split()) == 2


def test_status_and_explain_say_what_happened_and_why(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = plugin(world, "alice", capsys, "status")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "Pause switch: unknown (its ConfigMap could not be read)"  # a viewer may not
    header = next(line for line in lines if line.startswith("NODE"))
    assert header.split() == ["NODE", "PHASE", "REASON", "STRATEGY", "TRIGGER", "SINCE", "MESSAGE"]
    row = next(line for line in lines if line.startswith(NODE)).split()
    assert row[1:5] == ["Cancelled", "OperatorCancelled", "OutOfServiceTaint", "operator/operator"]

    code, text, err = plugin(world, "alice", capsys, "explain", NODE)
    assert code == 0, err
    assert "Phase:        Cancelled since " in text
    assert "Why:          OperatorCancelled: " in text
    assert "Next:         finished: cancelled before any fence order" in text
    assert "Who:          cancelled by operator: undo cycle 2" in text
    trail = text.split("Decision trail (status.history, oldest first):\n", 1)[1]
    assert [line.split()[1] for line in trail.strip().splitlines()[1:]] == ["Pending", "Cancelled"]

    code, _, err = plugin(world, "alice", capsys, "explain", "node-1")
    assert code == 1
    assert "no NodeRemediation of node-1" in err


def test_a_user_without_rights_is_told_who_they_are_and_what_is_missing(world: World,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = kubectl(world, "mallory", "nodewarden", "status")
    assert out.returncode == 1
    assert "you are 'mallory' (groups: system:authenticated)" in out.stderr
    assert "you may not list noderemediations.nodewarden.io (cluster-scoped)" in out.stderr
    assert "kubectl auth can-i list noderemediations.nodewarden.io" in out.stderr
    # A viewer may read but not ask for a remediation.
    code, _, err = plugin(world, "alice", capsys, "request", "node-1", "--reason", "try")
    assert code == 1
    assert "you are 'alice'" in err and "may not create noderemediations.nodewarden.io" in err
    code, _, err = plugin(world, "alice", capsys, "pause")
    assert code == 1
    assert 'may not get configmaps "nodewarden-control" in namespace "nodewarden"' in err


def test_pause_and_resume_drive_the_switch_the_webhook_obeys(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plugin(world, "bob", capsys, "pause", "--reason", "kernel upgrade window")
    assert code == 0, err
    data = (world.cluster.get("configmaps", "nodewarden-control", "nodewarden") or {})["data"]
    assert (data["paused"], data["reason"], data["changedBy"]) == ("true", "kernel upgrade window", "bob")
    code, stdout, _ = plugin(world, "bob", capsys, "status")
    assert stdout.splitlines()[0] == "Pause switch: ON - no new remediation starts (kernel upgrade window)"

    def refused_as_paused() -> bool:
        return _operator(world, "", {"node": NODE, "reason": "while paused"}).json().get("reason") == "Paused"

    world.cluster.wait_for(refused_as_paused, 10, message="the webhook never saw the pause")
    assert plugin(world, "bob", capsys, "resume")[0] == 0
    data = (world.cluster.get("configmaps", "nodewarden-control", "nodewarden") or {})["data"]
    assert data["paused"] == "false"
    world.cluster.wait_for(lambda: _start(world), 10, message="the webhook never saw the resume")
    assert _operator(world, f"/{NODE}/cancel", {"reason": "resumed"}).status_code == 200


def _start(w: World) -> bool:
    """Ask for a remediation of NODE; True once one is under way (not refused as paused)."""
    if w.phase(NODE) in ("Pending", "AwaitingApproval"):
        return True
    return _operator(w, "", {"node": NODE, "reason": "for the plugin"}).status_code == 201


def test_approve_and_cancel_record_the_authenticated_user(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.cluster.wait_for(lambda: _start(world), 10, message="no remediation started")
    world.wait_phase(NODE, "Pending", "AwaitingApproval", timeout=10)
    assert plugin(world, "bob", capsys, "approve", NODE)[0] == 0
    code, _, err = plugin(world, "bob", capsys, "cancel", NODE, "--reason", "false alarm")
    assert code == 0, err
    ann = (world.remediation(NODE) or {})["metadata"]["annotations"]
    assert ann["nodewarden.io/approved-by"] == "bob"
    assert (ann["nodewarden.io/cancelled-by"], ann["nodewarden.io/cancel-reason"]) == ("bob", "false alarm")
    # The webhook turns the annotation into the cancellation, under bob's name.
    rem = world.wait_phase(NODE, "Cancelled", timeout=10)
    assert rem["status"]["cancellation"]["requestedBy"] == "bob", rem["status"]
    # A finished remediation cannot be approved or cancelled.
    assert _operator(world, f"/{NODE}/cancel", {"reason": "end"}).status_code == 409
    code, _, err = plugin(world, "bob", capsys, "approve", NODE)
    assert code == 1 and "already ended (Cancelled)" in err


def test_a_request_is_admitted_under_the_users_name_and_decided_by_policy(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """`request` creates the NodeRemediation the admission policy accepts (requested-by is
    bob's own username), and the webhook decides it as it decides an operator's request:
    node-1 is Ready, so it is rejected, under bob's name, and nothing is fenced."""
    code, _, err = plugin(world, "bob", capsys, "request", "node-1", "--reason", "disk controller hung")
    assert code == 0, err
    rem = world.wait_phase("node-1", "Rejected", timeout=10)
    assert rem["metadata"]["annotations"]["nodewarden.io/requested-by"] == "bob"
    assert rem["spec"]["trigger"]["source"] == "kubectl"
    assert (rem["status"]["reason"], rem["status"]["requestedBy"]) == ("NodeReady", "bob"), rem["status"]
    code, stdout, _ = plugin(world, "bob", capsys, "explain", "node-1")
    assert code == 0 and "NodeReady" in stdout, stdout
