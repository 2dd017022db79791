"""The typed status shapes: what the writers write reads back unchanged, and anything else
reads as absent without an exception (the status is a record others could have edited)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from controller.machine import Decision
from controller.model import Phase as ModelPhase
from controller.model import RemediationView
from controller.status import decision_patch
from core.clock import FakeClock, format_time, parse_time, rfc3339
from core.remediation import Escalation, Phase, Strategy
from core.remediation_status import (
    AckRecord,
    AgentReport,
    AlertRecord,
    Approval,
    Cancellation,
    Condition,
    EscalationStatus,
    EvidenceRecord,
    FenceStatus,
    HistoryEntry,
    KubeletRestart,
    LastAnswer,
    Part,
    PeerSilence,
    PlanRecord,
    RecoveryStatus,
    Refusal,
    RemediationStatus,
    Stamp,
    parse_status,
)
from node_agent.kube import order_token_of
from webhook.cache import existing_facts
from webhook.policy import Outcome, Plan, Reason, Verdict
from webhook.records import (
    AlertEntry,
    approval_status,
    cancelled_status,
    initial_status,
    plan_record,
    rejected_status,
    with_alert,
)

NOW = 1_767_225_601.25  # 2026-01-01T00:00:01.25Z
AT = Stamp.at(NOW)  # the controller's and the agent's form
SECOND = Stamp.second(NOW)  # the webhook's form

FENCE = FenceStatus(
    order="nwf1.payload.sig", action="fence", issued_at=AT, expires_at=Stamp.at(NOW + 1800),
    boot_id="boot-1", delivered_via=("direct", "peer:node-2"),
    last_answer=LastAnswer(at=AT, via="direct", outcome="Fencing", reason="", detail="fence began"),
    acknowledgement=AckRecord(at=AT, via="direct", last_feed_at=Stamp.at(NOW - 1), watchdog_timeout_s=15.0),
    refusal=Refusal(reason="Rejected/BadSignature", at=AT, via="peer:node-2"),
    peer_silence=PeerSilence(checked_at=AT, asked=4, answered=4, complete=True,
                             last_healthy_answer_at=Stamp.at(NOW - 30)),
    evidence=EvidenceRecord(rule="AcknowledgedWatchdog",
                            inputs={"lastFeedAt": format_time(NOW - 1), "watchdogTimeoutSeconds": 15.0},
                            deadline=Stamp.at(NOW + 32), satisfied_at=Stamp.at(NOW + 33)),
)
# One of every part, every field set, as its writer writes it.
FULL: list[Part] = [
    HistoryEntry(phase="Fencing", reason="FenceOrdered", message="ordered", at=AT),
    HistoryEntry(phase="Pending", reason="Accepted", message="accepted", at=SECOND),
    AlertRecord(alert_name="NodeDown", fingerprint="f1", status="firing", received_at=SECOND, count=3,
                starts_at=Stamp.second(NOW - 60)),
    PlanRecord(policy_group="default", strategy="OutOfServiceTaint", escalation="None",
               approval_required=True, four_eyes=False, dry_run=False, force=False),
    Approval(approved_by="alice", approved_at=SECOND),
    Cancellation(requested_by="bob", reason="false alarm", at=SECOND),
    FENCE,
    *(getattr(FENCE, f.name) for f in dataclasses.fields(FENCE) if isinstance(getattr(FENCE, f.name), Part)),
    EscalationStatus(kind="FenceAgent", cause="NoAgent", cause_message="no agent", started_at=AT, attempts=2,
                     finished_attempt=1, last_exit_code=0, finished_at=AT, output="ok", device="bmc-1",
                     agent="fence_ipmilan", action="off", outcome="PoweredOff", runs=("off:0", "status:Off"),
                     summary="powered off", power_off_confirmed_at=AT),
    RecoveryStatus(strategy="OutOfServiceTaint", requested_at=AT, taint_applied_at=AT, pods_deleted=0,
                   volume_attachments_deleted=0, pod_deletion_skipped="Forbidden: no RBAC", taint_removed_at=AT),
    KubeletRestart(order="nwf1.x.y", issued_at=AT, outcome="KubeletRestartSucceeded", detail="restarted"),
    AgentReport(fence_started_at=AT, last_feed_at=Stamp.at(NOW - 1), watchdog_timeout_s=15.0, boot_id="boot-1"),
    Condition(type="Fenced", status="True", reason="FenceProven", message="proven", last_transition_time=AT,
              observed_generation=1),
]
SHAPES = sorted({type(p) for p in FULL} | {RemediationStatus}, key=lambda t: t.__name__)


def test_the_samples_cover_every_part_and_every_field() -> None:
    parts = {t for t in Part.__subclasses__()}
    assert parts == set(SHAPES)
    for shape in parts - {RemediationStatus}:
        assert any(type(p) is shape and None not in dataclasses.astuple(p) for p in FULL), shape


@pytest.mark.parametrize("sample", FULL, ids=lambda p: type(p).__name__)
def test_every_part_reads_back_exactly_what_was_written(sample: Part) -> None:
    written = sample.to_json()
    read = type(sample).from_json(written)
    assert read == sample
    assert read is not None and read.to_json() == written


def test_a_whole_status_reads_back_exactly() -> None:
    status = RemediationStatus(
        phase=Phase.FENCED, reason="FenceProven", message="m", phase_since=AT,
        history=tuple(p for p in FULL if isinstance(p, HistoryEntry)),
        alerts=tuple(p for p in FULL if isinstance(p, AlertRecord)), requested_by="alice",
        plan=FULL[3], approval=FULL[4], cancellation=FULL[5], fence=FENCE,  # type: ignore[arg-type]
        recovery=next(p for p in FULL if isinstance(p, RecoveryStatus)),
        escalation=next(p for p in FULL if isinstance(p, EscalationStatus)),
        kubelet_restart=next(p for p in FULL if isinstance(p, KubeletRestart)),
        agent_report=next(p for p in FULL if isinstance(p, AgentReport)),
        conditions=tuple(p for p in FULL if isinstance(p, Condition)))
    written = status.to_json()
    assert parse_status({"status": written}) == status
    assert parse_status({"status": written}).to_json() == written


def _verdict(reason: Reason = Reason.ACCEPTED, plan: Plan | None = None) -> Verdict:
    return Verdict(Outcome.ACCEPTED, reason, "accepted for a reason", plan=plan)


def test_what_the_webhook_writes_reads_back_unchanged() -> None:
    alert = AlertEntry("NodeDown", "f1", "firing", NOW - 60, NOW)
    spec = {"approvalRequired": True}
    written = [
        initial_status(spec, _verdict(), NOW, alert, note="replaces x"),
        {**initial_status({}, _verdict(), NOW, None), "alerts": with_alert([], alert, 2)},
        cancelled_status(initial_status({}, _verdict(), NOW, alert), _verdict(Reason.OPERATOR_CANCELLED), "bob",
                         "no", NOW + 5),
        approval_status("alice", NOW),
        rejected_status(Verdict(Outcome.REJECTED, Reason.INVALID_REQUEST, "no"), "mallory", NOW),
        {"plan": plan_record(Plan(group="g", strategy=Strategy.RESOURCE_DELETION, escalation=Escalation.FENCE_AGENT,
                                  approval_required=True, dry_run=False, four_eyes=True)).to_json()},
    ]
    for status in written:
        assert parse_status({"status": status}).to_json() == status


def test_what_the_controller_writes_reads_back_unchanged() -> None:
    clock = FakeClock()
    rem = RemediationView.parse({"metadata": {"name": "n1"}, "spec": {"trigger": {"source": "alertmanager"}},
                                 "status": {"phase": "Fencing", "history": []}})
    for phase in (ModelPhase.FENCED, ModelPhase.AWAITING_NODE_READY, ModelPhase.SUCCEEDED):
        decision = Decision(phase, "FenceProven", "proven", {"fence": FENCE.to_json()})
        patch = decision_patch(rem, decision, clock.now())
        assert parse_status({"status": patch}).to_json() == patch
        clock.advance(0.5)


# -- malformed input -------------------------------------------------------------------------

BAD_BY_KIND: dict[str, list[Any]] = {
    "string": [5, 1.5, True, [], {}, ["a"]],
    "integer": ["3", 1.5, True, [], {}, float("inf")],
    "number": ["15", True, [], {}, float("nan"), float("inf")],
    "boolean": ["true", 1, 0, [], {}],
    "date-time": ["yesterday", 5, True, "2026-13-45T99:00:00Z", "", [], {}, "9" * 400, "99999-01-01T00:00:00Z"],
    "object": ["x", 5, [], True],
    "array": ["x", 5, {}, True, list(range(10_000))],
}


def _cases() -> list[tuple[type[Part], str, Any]]:
    out = []
    for shape in SHAPES:
        for f in dataclasses.fields(shape):
            for bad in BAD_BY_KIND[f.metadata["kind"]]:
                out.append((shape, f.name, bad))
    return out


@pytest.mark.parametrize(("shape", "name", "bad"), _cases(),
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v)[:20])
def test_a_malformed_field_reads_as_absent_and_leaves_the_others(shape: type[Part], name: str, bad: Any) -> None:
    sample = next((p for p in FULL if type(p) is shape), None) or RemediationStatus(phase=Phase.FENCING,
                                                                                     reason="r")
    stored = sample.to_json()
    key = next(f.metadata["key"] for f in dataclasses.fields(shape) if f.name == name)
    read = shape.from_json({**stored, key: bad})
    assert read is not None
    assert getattr(read, name) is None
    assert read == dataclasses.replace(sample, **{name: None})  # type: ignore[type-var]


@pytest.mark.parametrize("bad", [None, "x", 5, [], [{"phase": "Fenced"}], True])
def test_a_part_that_is_not_an_object_reads_as_absent(bad: Any) -> None:
    for shape in SHAPES:
        assert shape.from_json(bad) is None
    assert parse_status({"status": bad}) == RemediationStatus()
    assert parse_status(bad) == RemediationStatus()


def test_list_items_of_the_wrong_shape_are_skipped_and_overlong_lists_read_as_absent() -> None:
    entry = HistoryEntry(phase="Pending", at=SECOND).to_json()
    status = parse_status({"status": {"history": [entry, "x", 5, None, entry], "alerts": [{}] * 21,
                                      "fence": {"deliveredVia": ["direct", 7, None]}}})
    assert status.history == (HistoryEntry(phase="Pending", at=SECOND),) * 2
    assert status.alerts is None  # the CRD admits 20 at most: not something we wrote
    assert status.fence is not None and status.fence.delivered_via == ("direct",)


def test_an_unknown_phase_reads_as_absent() -> None:
    assert parse_status({"status": {"phase": "Exploded", "reason": "r"}}) == RemediationStatus(reason="r")


def test_a_deeply_nested_status_does_not_crash_a_reader() -> None:
    deep: Any = {}
    for _ in range(100_000):
        deep = {"inputs": deep}
    status = parse_status({"status": {"fence": {"evidence": {"inputs": deep, "rule": "X"}}}})
    assert status.fence is not None and status.fence.evidence is not None


MALFORMED_OBJECTS: list[Any] = [
    {"status": {"fence": "x", "agentReport": [], "recovery": 5, "escalation": {"attempts": "many"},
                "kubeletRestart": {"issuedAt": "soon"}, "approval": {"approvedAt": 12}, "alerts": "a",
                "history": [{"at": "x"}], "phaseSince": "later", "phase": "Fencing"}},
    {"status": {"phase": "Fencing", "fence": {"order": 5, "issuedAt": "x", "acknowledgement": {
        "lastFeedAt": "2026-01-01T00:00:00Z", "watchdogTimeoutSeconds": "15"}, "peerSilence": "quiet"}}},
    {"status": {"phase": "Fencing", "fence": {"order": "t", "issuedAt": "2026-01-01T00:00:00Z",
                                              "evidence": ["x"], "deliveredVia": "direct",
                                              "refusal": {"reason": 3}}}},
    {"status": {"alerts": [{"fingerprint": 5}, {"fingerprint": "f", "startsAt": "never"}], "plan": "all"},
     "metadata": {"annotations": {"nodewarden.io/requested-by": "eve"}},
     "spec": {"trigger": {"source": "kubectl"}}},
]


@pytest.mark.parametrize("obj", MALFORMED_OBJECTS)
def test_every_reader_reads_a_malformed_status_without_an_exception(obj: dict[str, Any]) -> None:
    obj = {"metadata": {"name": "n1", "uid": "u1", **obj.get("metadata", {})},
           "spec": obj.get("spec", {"trigger": {"source": "alertmanager"}}), "status": obj["status"]}
    view = RemediationView.parse(obj)
    facts = existing_facts(obj)
    token = order_token_of(obj)
    assert view.phase_since is None and facts.phase_since is None  # never a valid time here
    assert token is None or isinstance(token, str)
    assert facts.phase in (None, *Phase)
    for part in (view.agent_report, view.recovery, view.escalation_state, view.kubelet_restart):
        assert isinstance(part, dict) and all(v is not None for v in part.values())


def test_a_malformed_order_is_no_order_for_the_controller_and_no_acknowledgement() -> None:
    obj = {"metadata": {"name": "n1"}, "spec": {}, "status": MALFORMED_OBJECTS[1]["status"]}
    assert RemediationView.parse(obj).fence is None
    assert order_token_of(obj) is None


def test_a_refused_order_survives_a_malformed_neighbour() -> None:
    status = {"phase": "Fencing", "fence": {"order": "t", "issuedAt": format_time(NOW), "deliveredVia": 7,
                                             "refusal": {"reason": "Rejected/BadSignature", "at": 5}}}
    view = RemediationView.parse({"metadata": {"name": "n1"}, "spec": {}, "status": status})
    assert view.fence is not None and view.fence.refusal_reason == "Rejected/BadSignature"
    assert view.fence.delivered_via == ()


# -- one time parser ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "x", 5, 1.5, [], {}, "2026-02-30T00:00:00Z", "99999-01-01T00:00:00Z"])
def test_parse_time_never_raises(value: Any) -> None:
    assert parse_time(value) is None


def test_parse_time_reads_both_stored_forms_and_zone_less_as_utc() -> None:
    assert parse_time(rfc3339(NOW)) == math.floor(NOW)
    assert parse_time(format_time(NOW)) == NOW
    assert parse_time("2026-01-01T00:00:01") == parse_time("2026-01-01T00:00:01Z")


def test_a_reader_may_read_only_the_parts_it_needs() -> None:
    stored = {"status": {"phase": "Fencing", "fence": FENCE.to_json(), "history": "x", "alerts": [5],
                         "approval": Approval(approved_by="a", approved_at=SECOND).to_json()}}
    read = parse_status(stored, frozenset({"phase", "fence"}))
    assert read == RemediationStatus(phase=Phase.FENCING, fence=FENCE)
    assert parse_status(stored, frozenset({"history"})) == RemediationStatus()
