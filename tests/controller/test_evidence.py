"""The fence-evidence rules, row by row: when a node counts as fenced, and when never."""

from __future__ import annotations

import pytest

from controller.evidence import Verdict, evaluate, order_lifetime_ok
from controller.model import (
    Acknowledgement,
    AgentInfo,
    EvidenceRule,
    FenceRecord,
    Reason,
    format_time,
    parse_time,
)
from tests.controller.builders import BOOT, NEW_BOOT, T0, TIMING, agent, fence_status, remediation


def fence(**kw: object) -> FenceRecord:
    rec = remediation("Fencing", fence=fence_status(**kw)).fence  # type: ignore[arg-type]
    assert rec is not None
    return rec


ACK = {"at": format_time(T0 + 1), "via": "direct", "lastFeedAt": format_time(T0 + 0.5),
       "watchdogTimeoutSeconds": 60}


def test_acknowledged_waits_two_watchdog_timeouts_plus_margin_and_skew() -> None:
    deadline = T0 + 0.5 + 2 * 60 + 10 + 5
    before = evaluate(agent(), BOOT, fence(ack=ACK), None, TIMING, deadline - 0.01, False, delivered=True)
    assert before.verdict is Verdict.WAITING and before.rule is EvidenceRule.ACKNOWLEDGED_WATCHDOG
    assert before.deadline == pytest.approx(deadline)
    after = evaluate(agent(), BOOT, fence(ack=ACK), None, TIMING, deadline, False, delivered=True)
    assert after.verdict is Verdict.SATISFIED and after.reason is Reason.FENCE_PROVEN
    record = after.record(deadline)
    assert record["rule"] == "AcknowledgedWatchdog"
    assert record["inputs"]["watchdogTimeoutSeconds"] == 60
    assert parse_time(record["inputs"]["deadBy"]) == pytest.approx(T0 + 0.5 + 60 + 5)


def test_acknowledgement_uses_the_larger_of_the_acknowledged_and_published_timeouts() -> None:
    ev = evaluate(agent(watchdog=90.0), BOOT, fence(ack=ACK), None, TIMING, T0 + 190, False, delivered=True)
    assert ev.verdict is Verdict.WAITING
    assert ev.deadline == pytest.approx(T0 + 0.5 + 180 + 15)


def test_the_agents_own_report_counts_as_an_acknowledgement() -> None:
    report = Acknowledgement(T0 + 3, "agentReport", T0 + 2, 60.0)  # checked by controller.proof first
    ev = evaluate(agent(), BOOT, fence(), report, TIMING, T0 + 2 + 135, False, delivered=True)
    assert ev.verdict is Verdict.SATISFIED and ev.inputs["acknowledgedVia"] == "agentReport"


@pytest.mark.parametrize("reason", ["Rejected/BadSignature", "Rejected/NotYetValid", "Rejected/Expired",
                                    "CannotFence/NoWatchdog"])
def test_a_refused_order_escalates_and_is_never_proven_by_a_stale_heartbeat(reason: str) -> None:
    refused = fence(refusal={"reason": reason})
    ev = evaluate(agent(heartbeat=T0 - 3600), BOOT, refused, None, TIMING, T0 + 10_000, False, delivered=True)
    assert ev.verdict is Verdict.ESCALATE and ev.reason is Reason.ORDER_REFUSED
    assert reason in ev.message


def test_an_acknowledgement_after_a_refusal_still_counts() -> None:
    # An agent whose clock was behind refuses an order as NotYetValid, then takes it.
    late = fence(refusal={"reason": "Rejected/NotYetValid"}, ack=ACK)
    assert evaluate(agent(), BOOT, late, None, TIMING, T0 + 1000, False, delivered=True).verdict is Verdict.SATISFIED


def test_silence_counts_only_once_this_controller_has_sent_the_order() -> None:
    # Sent, an agent's refusal would be on record; not sent (a restart), it might have been lost.
    ev = evaluate(agent(heartbeat=T0 - 3600), BOOT, fence(), None, TIMING, T0 + 10_000, False, delivered=False)
    assert ev.verdict is Verdict.WAITING and ev.reason is Reason.FENCE_ORDERED


def test_stale_heartbeat_counts_from_the_later_of_heartbeat_and_order() -> None:
    # Heartbeat stale since T0-60, the order stored at T0: count from T0.
    deadline = T0 + 97 + 120 + 10 + 5
    ev = evaluate(agent(heartbeat=T0 - 60), BOOT, fence(), None, TIMING, deadline - 1, False, delivered=True)
    assert ev.verdict is Verdict.WAITING and ev.rule is EvidenceRule.AGENT_HEARTBEAT_STALE
    assert ev.deadline == pytest.approx(deadline)
    assert evaluate(agent(heartbeat=T0 - 60), BOOT, fence(), None, TIMING, deadline, False, delivered=True).verdict is Verdict.SATISFIED


def test_stale_heartbeat_often_already_past_when_the_order_was_issued_late() -> None:
    # The agent lost the API long ago; the order was stored later: still counts from the order.
    ev = evaluate(agent(heartbeat=T0 - 3600), BOOT, fence(issued_at=T0), None, TIMING, T0 + 1, False, delivered=True)
    assert ev.verdict is Verdict.WAITING
    assert ev.deadline == pytest.approx(T0 + 232)


def test_fresh_heartbeat_without_acknowledgement_is_not_fenced_and_escalates_after_the_ack_timeout() -> None:
    fresh = agent(heartbeat=T0 + 30)
    waiting = evaluate(fresh, BOOT, fence(), None, TIMING, T0 + 40, False, delivered=True)
    assert waiting.verdict is Verdict.WAITING and waiting.reason is Reason.AWAITING_ACKNOWLEDGEMENT
    late = evaluate(agent(heartbeat=T0 + 61), BOOT, fence(), None, TIMING, T0 + 61, False, delivered=True)
    assert late.verdict is Verdict.ESCALATE and late.reason is Reason.AGENT_ALIVE_NOT_ACKNOWLEDGING


def test_no_agent_is_never_assumed_fenced() -> None:
    ev = evaluate(AgentInfo(), BOOT, fence(), None, TIMING, T0 + 10_000, False, delivered=True)
    assert ev.verdict is Verdict.ESCALATE and ev.reason is Reason.NO_AGENT


@pytest.mark.parametrize("info", [
    agent(capable=False), agent(watchdog=None), agent(detect=None),
    agent(boot=NEW_BOOT),  # published under another boot: unknown for this one
])
def test_an_agent_not_capable_for_this_boot_is_never_assumed_fenced(info: AgentInfo) -> None:
    ev = evaluate(info, BOOT, fence(), None, TIMING, T0 + 10_000, False, delivered=True)
    assert ev.verdict is Verdict.ESCALATE and ev.reason is Reason.AGENT_NOT_SELF_FENCE_CAPABLE


def test_missing_heartbeat_lease_is_never_assumed_fenced() -> None:
    ev = evaluate(agent(heartbeat=None), BOOT, fence(), None, TIMING, T0 + 10_000, False, delivered=True)
    assert ev.verdict is Verdict.ESCALATE and ev.reason is Reason.NO_AGENT


def test_a_suspected_control_plane_outage_stops_the_heartbeat_rule() -> None:
    ev = evaluate(agent(heartbeat=T0 - 60), BOOT, fence(), None, TIMING, T0 + 10_000, True, delivered=True)
    assert ev.verdict is Verdict.WAITING and ev.reason is Reason.CONTROL_PLANE_OUTAGE


def test_an_acknowledgement_still_counts_during_a_suspected_outage() -> None:
    ev = evaluate(agent(), BOOT, fence(ack=ACK), None, TIMING, T0 + 1000, True, delivered=True)
    assert ev.verdict is Verdict.SATISFIED


def test_order_lifetime_must_cover_the_worst_case() -> None:
    info = agent()  # 97 + 120 + 10 + 5 = 232 s needed
    assert order_lifetime_ok(info, T0, T0 + 233, TIMING)
    assert not order_lifetime_ok(info, T0, T0 + 232, TIMING)


# -- peer silence ------------------------------------------------------------------------

def silent(**silence: object) -> FenceRecord:
    rec = remediation("Fencing", fence=fence_status(issued_at=T0 + 100,
                                                    peerSilence={"complete": True, **silence})).fence
    assert rec is not None
    return rec


def test_complete_peer_silence_counts_from_the_heartbeat_not_the_order() -> None:
    # The order was stored 160 s after the last heartbeat; nobody told the node "healthy".
    ev = evaluate(agent(heartbeat=T0 - 60), BOOT, silent(), None, TIMING, T0, False, delivered=True)
    assert ev.deadline == pytest.approx(T0 - 60 + 232)
    assert ev.inputs["countedFrom"] == "heartbeat"
    assert evaluate(agent(heartbeat=T0 - 60), BOOT, silent(), None, TIMING, T0 + 172, False, delivered=True).verdict is Verdict.SATISFIED


def test_a_healthy_answer_after_the_heartbeat_counts_from_that_answer() -> None:
    f = silent(lastHealthyAnswerAt=format_time(T0 + 20))
    ev = evaluate(agent(heartbeat=T0 - 60), BOOT, f, None, TIMING, T0, False, delivered=True)
    assert ev.inputs["countedFrom"] == "lastHealthyAnswer"
    assert ev.deadline == pytest.approx(T0 + 20 + 5 + 232)


def test_a_healthy_answer_before_the_heartbeat_changes_nothing() -> None:
    f = silent(lastHealthyAnswerAt=format_time(T0 - 100))
    assert evaluate(agent(heartbeat=T0 - 60), BOOT, f, None, TIMING, T0, False, delivered=True).deadline == pytest.approx(T0 + 172)


def test_incomplete_peer_silence_counts_from_the_order() -> None:
    rec = remediation("Fencing", fence=fence_status(issued_at=T0 + 100,
                                                    peerSilence={"complete": False, "asked": 4, "answered": 3})).fence
    assert rec is not None
    ev = evaluate(agent(heartbeat=T0 - 60), BOOT, rec, None, TIMING, T0, False, delivered=True)
    assert ev.deadline == pytest.approx(T0 + 100 + 232)
    assert ev.inputs["countedFrom"] == "orderStored"
