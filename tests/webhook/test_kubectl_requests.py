"""People's kubectl requests (webhook.kubectl_requests): the step table row by row, and the
real app over the fake API deciding them exactly like an operator request, turning the
approve / cancel annotations into status, four-eyes, force, and the rate-limit ledger
keyed by the request so that several workers take one slot between them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from core.clock import FakeClock, rfc3339
from core.kube import JSON
from tests.webhook.conftest import START, World, WorldFactory
from tests.webhook.fake_kube import FakeWebhookKube
from webhook.app import create_app
from webhook.auth import load_credentials
from webhook.kube import Resource
from webhook.kubectl_requests import Step, next_step
from webhook.ledger import RateLedger, read_starts
from webhook.metrics import WebhookMetrics
from webhook.policy import parse_policy

GUARDED = {"groups": [{"name": "guarded", "selector": {"matchLabels": {"nodewarden.io/group": "guarded"}},
                       "approvalRequired": True, "fourEyes": True}]}


def kubectl_body(node: str, by: str = "alice", **spec: Any) -> JSON:
    return {
        "apiVersion": "nodewarden.io/v1alpha1", "kind": "NodeRemediation",
        "metadata": {"name": node, "annotations": {"nodewarden.io/requested-by": by}},
        "spec": {"nodeName": node, "trigger": {"source": "kubectl", "reason": "disk hung"}, **spec},
    }


def decided(w: World, node: str, phase: str | None = None, timeout_s: float = 5.0) -> JSON:
    """Wait until the webhook wrote a phase (and, if given, this one); the stored object."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        obj = w.remediation(node) or {}
        got = (obj.get("status") or {}).get("phase")
        if got and (phase is None or got == phase):
            w.settle()
            return obj
        time.sleep(0.005)
    raise AssertionError(f"{node}: no phase {phase or ''} written: {w.remediation(node)}")


def reasons(w: World, node: str) -> list[str]:
    return [e["reason"] for e in w.events_for(node)]


# -- the step table ------------------------------------------------------------------------


def obj(*, foreign: bool = True, phase: str | None = None, created: float = START,
        annotations: dict[str, str] | None = None, **status: Any) -> JSON:
    ann = dict(annotations or {})
    if foreign:
        ann["nodewarden.io/requested-by"] = "alice"
    st: dict[str, Any] = dict(status)
    if phase:
        st.setdefault("reason", "AwaitingApproval" if phase == "AwaitingApproval" else "Accepted")
        st.update(phase=phase, phaseSince=rfc3339(START))
    return {"metadata": {"name": "node-1", "uid": "u", "creationTimestamp": rfc3339(created), "annotations": ann},
            "spec": {"nodeName": "node-1", "trigger": {"source": "kubectl" if foreign else "operator"}},
            "status": st}


@pytest.mark.parametrize("case,expected", [
    (obj(), Step.DECIDE),
    (obj(foreign=False), Step.NOTHING),  # the webhook's own, being created right now
    (obj(foreign=False, created=START - 11), Step.RESUME),  # its creation was interrupted
    (obj(phase="Pending"), Step.NOTHING),
    (obj(phase="Pending", annotations={"nodewarden.io/cancelled-by": "bob"}), Step.CANCEL),
    (obj(phase="Cancelled", annotations={"nodewarden.io/cancelled-by": "bob"}), Step.NOTHING),
    (obj(phase="AwaitingApproval", annotations={"nodewarden.io/approved-by": "bob"}), Step.APPROVE),
    (obj(phase="AwaitingApproval", annotations={"nodewarden.io/approved-by": "bob"},
         approval={"approvedBy": "bob", "approvedAt": rfc3339(START)}), Step.NOTHING),
    (obj(phase="Confirming", annotations={"nodewarden.io/approved-by": "bob"}), Step.NOTHING),
    # an escalation asking "is the node powered off?": a standing annotation never answers it
    (obj(phase="AwaitingApproval", reason="AwaitingOperatorConfirmation",
         annotations={"nodewarden.io/approved-by": "bob"}, fence={"issuedAt": rfc3339(START)}), Step.NOTHING),
    (obj(phase="AwaitingApproval", reason="FenceAgentCredentialsRefused",
         annotations={"nodewarden.io/approved-by": "bob"}, escalation={"kind": "FenceAgent"}), Step.NOTHING),
    (obj(phase="Rejected", annotations={"nodewarden.io/approved-by": "bob"}), Step.NOTHING),
])
def test_next_step(case: JSON, expected: Step) -> None:
    assert next_step(case, START, resume_after_s=10.0) is expected


def test_an_object_naming_kubectl_as_source_is_a_persons_request_even_without_the_annotation() -> None:
    case = obj()
    del case["metadata"]["annotations"]["nodewarden.io/requested-by"]
    assert next_step(case, START, 10.0) is Step.DECIDE


# -- deciding a request by policy ----------------------------------------------------------


def test_an_opted_out_node_is_rejected_with_its_reason_an_event_and_the_metric(world: WorldFactory) -> None:
    w = world(labels={"node-2": {"nodewarden.io/remediation": "disabled"}})
    w.kube.set_ready("node-2", "Unknown")
    w.settle()  # the decision is taken on the watch-fed view of the node
    w.kube.create_remediation(kubectl_body("node-2"))
    status = decided(w, "node-2")["status"]
    assert (status["phase"], status["reason"], status["requestedBy"]) == ("Rejected", "NodeOptedOut", "alice")
    assert "plan" not in status
    assert "NodeOptedOut" in reasons(w, "node-2")
    assert w.sample("nodewarden_webhook_decisions_total", verdict="rejected", reason="NodeOptedOut") == 1


def test_an_accepted_request_records_the_plan_policy_decided_not_the_requesters_spec(world: WorldFactory) -> None:
    w = world(policy=GUARDED, labels={"node-3": {"nodewarden.io/group": "guarded"}})
    w.kube.set_ready("node-3", "Unknown")
    w.settle()  # the decision is taken on the watch-fed view of the node
    # alice writes "no approval, ResourceDeletion": her spec counts for nothing.
    w.kube.create_remediation(kubectl_body("node-3", approvalRequired=False, strategy="ResourceDeletion",
                                           escalation="None"))
    status = decided(w, "node-3")["status"]
    assert (status["phase"], status["reason"]) == ("AwaitingApproval", "AwaitingApproval")
    assert status["plan"] == {"policyGroup": "guarded", "strategy": "OutOfServiceTaint",
                              "escalation": "OperatorApproval", "approvalRequired": True, "fourEyes": True,
                              "dryRun": False, "force": False}
    assert "disk hung" in status["message"] and "alice" in status["message"]


def test_a_ready_node_is_rejected_unless_forced_and_forcing_always_needs_a_second_person(
        world: WorldFactory) -> None:
    w = world()
    w.kube.create_remediation(kubectl_body("node-1"))
    assert decided(w, "node-1")["status"]["reason"] == "NodeReady"
    w.kube.create_remediation(kubectl_body("node-2", force=True))
    status = decided(w, "node-2")["status"]
    assert (status["phase"], status["reason"]) == ("AwaitingApproval", "ForceNeedsApproval")
    assert status["plan"]["fourEyes"] and status["plan"]["force"] and status["plan"]["approvalRequired"]
    assert "FORCED" in status["message"]


def test_four_eyes_refuses_the_requesters_own_approval_and_takes_a_second_persons(world: WorldFactory) -> None:
    w = world()
    w.kube.create_remediation(kubectl_body("node-2", force=True))
    decided(w, "node-2", "AwaitingApproval")
    w.kube.annotate("node-2", {"nodewarden.io/approved-by": "alice"})
    deadline = time.monotonic() + 5
    while "SelfApproval" not in reasons(w, "node-2") and time.monotonic() < deadline:
        time.sleep(0.01)
        w.settle()
    assert "SelfApproval" in reasons(w, "node-2")
    assert "approval" not in (w.remediation("node-2") or {})["status"]
    assert w.sample("nodewarden_webhook_decisions_total", verdict="rejected", reason="SelfApproval") == 1
    w.kube.annotate("node-2", {"nodewarden.io/approved-by": "bob"})
    deadline = time.monotonic() + 5
    while not ((w.remediation("node-2") or {})["status"].get("approval")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert (w.remediation("node-2") or {})["status"]["approval"]["approvedBy"] == "bob"
    w.settle()
    assert "Approved" in reasons(w, "node-2")


def test_the_http_apis_approval_obeys_four_eyes_too(world: WorldFactory) -> None:
    w = world()  # the operator token's name is "alice"
    w.kube.set_ready("node-1", "True")
    response = w.op("POST", "/api/v1/remediations", {"node": "node-1", "force": True})
    assert response.status_code == 201, response.json
    assert response.json["reason"] == "ForceNeedsApproval"
    refused = w.op("POST", "/api/v1/remediations/node-1/approve")
    assert refused.status_code == 409 and refused.json["reason"] == "SelfApproval"


def test_a_cancel_annotation_cancels_with_the_annotations_username_and_reason(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-4", "Unknown")
    w.settle()  # the decision is taken on the watch-fed view of the node
    w.kube.create_remediation(kubectl_body("node-4"))
    decided(w, "node-4", "Pending")
    w.kube.annotate("node-4", {"nodewarden.io/cancelled-by": "bob", "nodewarden.io/cancel-reason": "wrong node"})
    status = decided(w, "node-4", "Cancelled")["status"]
    assert status["reason"] == "OperatorCancelled"
    assert status["cancellation"]["requestedBy"] == "bob" and status["cancellation"]["reason"] == "wrong node"


def test_an_alert_about_an_undecided_request_never_gives_it_a_phase(world: WorldFactory) -> None:
    """record_alert completes an interrupted creation of the webhook's own; a person's
    request gets its first phase only from a policy decision."""
    w = world()
    w.svc.kubectl_requests.stop()  # nobody decides: the request stays undecided
    w.kube.set_ready("node-1", "Unknown")
    w.settle()  # the decision is taken on the watch-fed view of the node
    w.kube.create_remediation(kubectl_body("node-1", approvalRequired=False))
    w.settle()
    from webhook.records import AlertEntry

    w.svc.writer.record_alert("node-1", AlertEntry("NodeNotReady", "fp", "firing", START, START))
    assert "phase" not in ((w.remediation("node-1") or {}).get("status") or {})


def test_deleting_a_finished_remediation_to_ask_again_keeps_its_cooldown(world: WorldFactory) -> None:
    w = world(policy={"cooldown": "30m"})
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.kube.create_remediation(kubectl_body("node-1"))
    decided(w, "node-1", "Pending")
    done = w.kube.put_status("node-1", {"phase": "Succeeded", "phaseSince": rfc3339(START)})
    w.settle()
    w.kube.delete_remediation("node-1", done["metadata"]["uid"], done["metadata"]["resourceVersion"])
    w.settle()
    w.clock.advance(60.0)
    w.kube.create_remediation(kubectl_body("node-1", by="bob"))
    status = decided(w, "node-1")["status"]
    assert (status["phase"], status["reason"]) == ("Rejected", "Cooldown")
    # ... and so does an alert's request, through the same cache.
    w.kube.delete_remediation("node-1", *(lambda m: (m["uid"], m["resourceVersion"]))(
        (w.remediation("node-1") or {})["metadata"]))
    w.settle()
    response = w.op("POST", "/api/v1/remediations", {"node": "node-1"})
    assert response.status_code == 409 and response.json["reason"] == "Cooldown"


# -- the ledger ------------------------------------------------------------------------------


def test_a_keyed_reservation_takes_one_slot_however_many_workers_reserve_it() -> None:
    kube = FakeWebhookKube(FakeClock(START))
    policy = parse_policy({"rateLimit": {"maxRemediations": 2, "window": "15m"}})
    workers = [RateLedger(kube, FakeClock(START)) for _ in range(4)]
    assert all(ledger.reserve("node-1", policy, key="uid-1") is None for ledger in workers)
    assert read_starts(kube.stored(Resource.PAUSE, "x") or kube.get_ledger()) == [("node-1", START)]
    assert workers[0].reserve("node-2", policy, key="uid-2") is None
    refused = workers[1].reserve("node-3", policy, key="uid-3")
    assert refused is not None and str(refused.reason) == "RateLimited"
    assert json.loads(kube.get_ledger()["data"]["starts"])[0] == ["node-1", START, "uid-1"]


def test_a_refusal_seen_by_every_worker_is_reported_once_between_them(world: WorldFactory) -> None:
    """Two webhook processes over one API server each see alice approve her own forced
    request: one Event, one log line, one count between them, whichever saw it first."""
    w = world()
    config = w.svc.settings
    other_metrics = WebhookMetrics()
    other = create_app(config, w.kube, w.clock, policy=w.svc.policy, credentials=load_credentials(config),
                       metrics=other_metrics)
    try:
        w.kube.create_remediation(kubectl_body("node-2", force=True))
        decided(w, "node-2", "AwaitingApproval")
        w.kube.annotate("node-2", {"nodewarden.io/approved-by": "alice"})
        counted = 0.0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            counted = sum(r.get_sample_value("nodewarden_webhook_decisions_total",
                                             {"verdict": "rejected", "reason": "SelfApproval"}) or 0.0
                          for r in (w.metrics.registry, other_metrics.registry))
            if counted:
                break
            time.sleep(0.01)
        time.sleep(0.3)  # the slower process has seen the annotation by now
        w.settle()
        assert reasons(w, "node-2").count("SelfApproval") == 1
        assert counted == 1
        assert sum(r.get_sample_value("nodewarden_webhook_decisions_total",
                                      {"verdict": "rejected", "reason": "SelfApproval"}) or 0.0
                   for r in (w.metrics.registry, other_metrics.registry)) == 1
    finally:
        other.extensions["nodewarden"].stop()
