"""People request, approve and cancel remediations with their own kubectl, against a world
running the whole product with the chart's RBAC and admission policies: what kubectl says
to someone without the role, to a forged requester, to a hand-written status; that a
kubectl request passes the same policy as an alert (an opted-out node is Rejected and
never fenced); four-eyes; and a cancel inside the operator grace window."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from harness.world import World, nodewarden_world, policy

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None,
                       reason="kubectl is required: `make test` installs/checks it (scripts/ensure-tools)"),
]

GRACE_S = 10.0  # real seconds: long enough for a person to cancel with kubectl under load
USERS = ("alice", "bob", "carol")  # alice and bob hold the operator role, carol nothing


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("kubectl-world")
    doc = policy(groups=[{"name": "guarded", "selector": {"matchLabels": {"nodewarden.io/group": "guarded"}},
                          "approvalRequired": True, "fourEyes": True}])
    with nodewarden_world(tmp, nodes=3, time_scale=0.05, workloads=[], remediation_policy=doc,
                          controller_overrides={"OPERATOR_GRACE_S": GRACE_S}) as w:
        for user in USERS:
            w.cluster.api.add_identity(user)
            w.cluster.api.write_kubeconfig(tmp / f"{user}.kubeconfig", user)
        w.cluster.api.write_kubeconfig(tmp / "admin.kubeconfig")
        yield w


@pytest.fixture(scope="module")
def kubectl(world: World) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(user: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(world.tmp / f"{user}.kubeconfig"),
                               "--cache-dir", str(world.tmp / f"kubectl-cache-{user}"), *args],
                              input=stdin, capture_output=True, text=True, timeout=60)

    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "people-operate"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "nodewarden-operator"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}
                            for u in ("alice", "bob")]}
    done = run("admin", "create", "-f", "-", stdin=json.dumps(binding))
    assert done.returncode == 0, done.stderr
    return run


def request(node: str, requested_by: str, *, force: bool = False) -> str:
    return yaml.safe_dump({
        "apiVersion": "nodewarden.io/v1alpha1", "kind": "NodeRemediation",
        "metadata": {"name": node, "annotations": {"nodewarden.io/requested-by": requested_by}},
        "spec": {"nodeName": node, "trigger": {"source": "kubectl", "reason": "disk controller hung"},
                 "force": force},
    })


def events(kubectl: Callable[..., subprocess.CompletedProcess[str]], reason: str) -> list[dict[str, Any]]:
    out = kubectl("admin", "get", "events.events.k8s.io", "-n", "default", "-o", "json")
    assert out.returncode == 0, out.stderr
    return [e for e in json.loads(out.stdout)["items"] if e.get("reason") == reason]


def test_a_user_without_the_operator_role_gets_403_with_a_clear_message(kubectl: Any) -> None:
    out = kubectl("carol", "create", "-f", "-", stdin=request("node-1", "carol"))
    assert out.returncode != 0
    assert "forbidden" in out.stderr.lower() and 'User "carol" cannot create resource "noderemediations"' in out.stderr


def test_a_request_naming_someone_else_as_requester_is_refused_by_the_admission_policy(kubectl: Any) -> None:
    out = kubectl("alice", "create", "-f", "-", stdin=request("node-1", "bob"))
    assert out.returncode != 0
    assert "nodewarden.io/requested-by must be your own username (alice)" in out.stderr, out.stderr


def test_an_opted_out_node_requested_with_kubectl_is_rejected_and_never_fenced(world: World, kubectl: Any) -> None:
    assert kubectl("admin", "label", "node", "node-3", "nodewarden.io/remediation=disabled").returncode == 0
    out = kubectl("alice", "create", "-f", "-", stdin=request("node-3", "alice", force=True))
    assert out.returncode == 0, out.stderr
    rem = world.wait_phase("node-3", "Rejected", "Pending", "Confirming", "Fencing", timeout=30)
    assert rem["status"]["phase"] == "Rejected", rem["status"]
    assert rem["status"]["reason"] == "NodeOptedOut"
    assert rem["status"]["requestedBy"] == "alice"
    assert world.cluster.wait_for(lambda: events(kubectl, "NodeOptedOut"), 20, 0.5)
    time.sleep(1.0)  # a request fenced on sight (ConfirmedByOperator) would have its order by now
    rem = world.remediation("node-3") or {}
    assert rem["status"]["phase"] == "Rejected" and "fence" not in rem["status"]
    assert not world.has_taint("node-3")


def test_nobody_but_nodewarden_writes_status_by_hand(world: World, kubectl: Any) -> None:
    forged = json.dumps({"status": {"phase": "Pending", "approval": {"approvedBy": "alice"}}})
    # The operator role grants no status at all ...
    out = kubectl("alice", "patch", "noderemediation", "node-3", "--subresource=status", "--type=merge",
                  "-p", forged)
    assert out.returncode != 0
    assert 'User "alice" cannot get resource "noderemediations/status"' in out.stderr, out.stderr
    # ... and whoever RBAC does let write it (here cluster-admin) is refused by admission.
    out = kubectl("admin", "patch", "noderemediation", "node-3", "--subresource=status", "--type=merge",
                  "-p", forged)
    assert out.returncode != 0
    assert "only nodewarden writes a NodeRemediation's status" in out.stderr, out.stderr
    assert (world.remediation("node-3") or {})["status"]["phase"] == "Rejected"


def test_an_operator_cannot_rewrite_the_spec_of_a_remediation(world: World, kubectl: Any) -> None:
    """The operator role may patch (the annotations), but never the spec the webhook and the
    controller act on: `force`, `approvalRequired` or the strategy would otherwise skip the
    second person or the policy."""
    for patch in ({"spec": {"force": False}}, {"spec": {"approvalRequired": True}},
                  {"spec": {"nodeName": "node-1"}}):
        out = kubectl("alice", "patch", "noderemediation", "node-3", "--type=merge", "-p", json.dumps(patch))
        assert out.returncode != 0, patch
        assert "spec is immutable" in out.stderr, out.stderr
    assert (world.remediation("node-3") or {})["spec"].get("force") is True  # as requested, unchanged


def test_forcing_a_ready_node_needs_a_second_person_and_a_cancel_in_the_grace_window_stops_it(
        world: World, kubectl: Any) -> None:
    out = kubectl("alice", "create", "-f", "-", stdin=request("node-2", "alice", force=True))
    assert out.returncode == 0, out.stderr
    rem = world.wait_phase("node-2", "AwaitingApproval", "Rejected", timeout=30)
    assert (rem["status"]["phase"], rem["status"]["reason"]) == ("AwaitingApproval", "ForceNeedsApproval")
    assert rem["status"]["plan"]["fourEyes"] is True

    # Four-eyes: the requester's own approval is refused, said in an Event, and changes nothing.
    assert kubectl("alice", "annotate", "noderemediation", "node-2", "nodewarden.io/approved-by=alice").returncode == 0
    assert world.cluster.wait_for(lambda: events(kubectl, "SelfApproval"), 20, 0.5)
    rem = world.remediation("node-2") or {}
    assert rem["status"]["phase"] == "AwaitingApproval" and "approval" not in rem["status"]
    # Nor may alice sign bob's name.
    out = kubectl("alice", "annotate", "--overwrite", "noderemediation", "node-2", "nodewarden.io/approved-by=bob")
    assert "nodewarden.io/approved-by must be your own username (alice)" in out.stderr, out.stderr

    # A second person's approval counts; the fence order then waits out the grace window.
    assert kubectl("bob", "annotate", "--overwrite", "noderemediation", "node-2",
                   "nodewarden.io/approved-by=bob").returncode == 0
    rem = world.wait_phase("node-2", "Confirming", "Fencing", timeout=30)
    assert rem["status"]["approval"]["approvedBy"] == "bob"
    assert rem["status"]["phase"] == "Confirming" and "fence" not in rem["status"]
    world.cluster.wait_for(lambda: world.phase("node-2") != "Confirming"
                           or (world.remediation("node-2") or {})["status"]["reason"] == "OperatorGraceWindow", 10)

    assert kubectl("alice", "annotate", "noderemediation", "node-2", "nodewarden.io/cancelled-by=alice",
                   "nodewarden.io/cancel-reason=wrong node").returncode == 0
    rem = world.wait_phase("node-2", "Cancelled", "Fencing", timeout=30)
    assert (rem["status"]["phase"], rem["status"]["reason"]) == ("Cancelled", "OperatorCancelled")
    assert rem["status"]["cancellation"]["requestedBy"] == "alice"
    assert rem["status"]["cancellation"]["reason"] == "wrong node"
    time.sleep(1.0)  # a fence order written in the same instant as the cancel would show by now
    rem = world.remediation("node-2") or {}
    assert rem["status"]["phase"] == "Cancelled" and "fence" not in rem["status"], "a fence order was issued"
    assert not world.has_taint("node-2")


def test_the_controller_never_acts_on_a_remediation_without_a_phase(world: World) -> None:
    """The webhook's creation interrupted between its two writes: nothing acts on the object
    until the webhook writes its phase (it resumes it 10 s after the creation)."""
    world.cluster.wait_for(lambda: "became leader" in world.logs(200), 60, 0.2, "a leading controller")
    body = {"apiVersion": "nodewarden.io/v1alpha1", "kind": "NodeRemediation", "metadata": {"name": "node-1"},
            "spec": {"nodeName": "node-1", "strategy": "OutOfServiceTaint", "escalation": "OperatorApproval",
                     "trigger": {"source": "alertmanager", "alertName": "NodeNotReady",
                                 "receivedAt": "2026-01-01T00:00:00Z"}}}
    out = subprocess.run(["kubectl", "--kubeconfig", str(world.cluster.kubeconfig("webhook")), "create", "-f", "-"],
                         input=json.dumps(body), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    time.sleep(2.0)  # a controller that took a missing phase for Pending moved it on within this
    assert "phase" not in ((world.remediation("node-1") or {}).get("status") or {})
    assert "remediation node-1" not in world.logs(200)


def test_an_operator_deletes_only_a_finished_remediation(world: World, kubectl: Any) -> None:
    """To ask again for a node whose last remediation finished; one under way stays."""
    out = kubectl("alice", "delete", "noderemediation", "node-1")  # no phase yet, or under way
    assert out.returncode != 0
    assert "only a finished remediation may be deleted" in out.stderr, out.stderr
    assert world.remediation("node-1") is not None
    assert world.phase("node-3") == "Rejected"
    out = kubectl("alice", "delete", "noderemediation", "node-3")
    assert out.returncode == 0, out.stderr
    assert world.remediation("node-3") is None
