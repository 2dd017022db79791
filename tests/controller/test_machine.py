"""The remediation state machine, transition by transition (one test per row of the table
in docs/fencing-protocol.md), plus safety properties over generated states."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.machine import ActionKind, Decision, decide
from controller.model import AgentInfo, PeerObs, RemediationView, format_time
from controller.status import decision_patch
from core.kube import merge_patch
from node_agent.kube import order_token_of
from tests.controller.builders import (
    BOOT,
    CFG,
    NEW_BOOT,
    T0,
    TIMING,
    agent,
    fence_status,
    node,
    observe,
    order_token,
    remediation,
    seen,
)

ACK = {"at": format_time(T0 + 1), "via": "direct", "lastFeedAt": format_time(T0 + 0.5),
       "watchdogTimeoutSeconds": 60}


def kinds(d: Decision) -> list[str]:
    return [str(a.kind) for a in d.actions]


def check(d: Decision, phase: str, reason: str, actions: list[str] | None = None) -> None:
    assert (str(d.phase), str(d.reason)) == (phase, reason), d.message
    if actions is not None:
        assert kinds(d) == actions


# -- Pending and approval ------------------------------------------------------------------

def test_pending_goes_to_confirming() -> None:
    check(decide(remediation("Pending"), observe(T0), CFG), "Confirming", "Started", [])


def test_pending_needing_approval_waits_for_it() -> None:
    check(decide(remediation("Pending", approval_required=True), observe(T0), CFG),
          "AwaitingApproval", "AwaitingApproval", [])


def test_a_missing_phase_reads_as_the_phase_being_created() -> None:
    check(decide(remediation(None), observe(T0), CFG), "Confirming", "Started")


def test_approval_after_the_wait_began_moves_on() -> None:
    rem = remediation("AwaitingApproval", approval={"approvedBy": "ops", "approvedAt": format_time(T0 + 5)})
    check(decide(rem, observe(T0 + 6), CFG), "Confirming", "Approved", [])


def test_an_earlier_approval_does_not_count() -> None:
    rem = remediation("AwaitingApproval", phase_since=T0 + 10,
                      approval={"approvedBy": "ops", "approvedAt": format_time(T0 + 5)})
    check(decide(rem, observe(T0 + 11), CFG), "AwaitingApproval", "AwaitingApproval", [])


def test_a_node_that_recovered_while_awaiting_approval_is_cancelled() -> None:
    obs = observe(T0 + 5, node("True", lease=T0 + 4))
    check(decide(remediation("AwaitingApproval"), obs, CFG), "Cancelled", "NodeRecovered", [])


def test_approval_times_out() -> None:
    check(decide(remediation("AwaitingApproval"), observe(T0 + 3601), CFG), "Failed", "ApprovalTimeout", [])


# -- Confirming ----------------------------------------------------------------------------

def test_node_object_gone_cancels() -> None:
    check(decide(remediation(), observe(T0 + 1, node(exists=False)), CFG), "Cancelled", "NodeGone", [])


def test_node_recovered_cancels() -> None:
    check(decide(remediation(), observe(T0 + 1, node("True", lease=T0)), CFG), "Cancelled", "NodeRecovered", [])


def test_confirmation_times_out_without_fencing() -> None:
    check(decide(remediation(), observe(T0 + 301, node(lease=T0 + 290)), CFG), "Failed", "NotConfirmed", [])


def test_pause_switch_stops_new_fencing() -> None:
    check(decide(remediation(), observe(T0 + 1, paused=True), CFG), "Confirming", "Paused", [])


def test_operator_trigger_fences_without_confirmation_after_the_grace_window() -> None:
    obs = observe(T0 + CFG.operator_grace_s + 1, node("True", lease=T0 - 100), peers=None)
    check(decide(remediation(source="operator"), obs, CFG), "Fencing", "ConfirmedByOperator", ["IssueOrder"])


@pytest.mark.parametrize("source", ["operator", "kubectl"])
def test_a_persons_request_issues_no_fence_order_inside_the_grace_window(source: str) -> None:
    obs = observe(T0 + CFG.operator_grace_s - 0.5, node("Unknown", lease=T0 - 100), peers=None)
    d = decide(remediation(source=source), obs, CFG)
    check(d, "Confirming", "OperatorGraceWindow", [])
    assert d.requeue_s is not None and 0 < d.requeue_s <= 0.5 + 1e-9
    later = observe(T0 + CFG.operator_grace_s, node("Unknown", lease=T0 - 100), peers=None)
    check(decide(remediation(source=source), later, CFG), "Fencing", "ConfirmedByOperator", ["IssueOrder"])


def test_a_node_still_reporting_ready_is_not_confirmed() -> None:
    check(decide(remediation(), observe(T0 + 1, node("True", lease=T0 - 100)), CFG),
          "Confirming", "AwaitingConfirmation", [])


def test_a_fresh_node_lease_means_the_machine_is_alive() -> None:
    check(decide(remediation(), observe(T0 + 1, node("Unknown", lease=T0 - 10)), CFG),
          "Confirming", "NodeLeaseFresh", [])


def test_a_suspected_control_plane_outage_fences_nobody() -> None:
    check(decide(remediation(), observe(T0 + 1, outage_suspected=True), CFG),
          "Confirming", "ControlPlaneOutageSuspected", [])


def test_peers_are_asked_before_deciding() -> None:
    check(decide(remediation(), observe(T0 + 1, peers=None), CFG), "Confirming", "AwaitingConfirmation", [])


def test_nobody_reaches_the_agent_confirms_and_orders_a_fence() -> None:
    check(decide(remediation(), observe(T0 + 1), CFG), "Fencing", "ConfirmedUnreachable", ["IssueOrder"])
    assert decide(remediation(), observe(T0 + 1), CFG).actions[0].detail == {"action": "fence"}


def test_a_reachable_agent_is_fenced_with_acknowledgement() -> None:
    obs = observe(T0 + 1, peers=PeerObs(3, 1, 2, 0))
    check(decide(remediation(), obs, CFG), "Fencing", "ConfirmedAgentReachable", ["IssueOrder"])


def test_restart_kubelet_first_when_configured_and_reachable() -> None:
    cfg = replace(CFG, kubelet_restart_first=True)
    obs = observe(T0 + 1, peers=PeerObs(3, 1, 2, 0))
    d = decide(remediation(), obs, cfg)
    check(d, "Confirming", "KubeletRestartOrdered", ["IssueOrder"])
    assert d.actions[0].detail == {"action": "restart-kubelet"}
    issued = remediation(kubeletRestart={"issuedAt": format_time(T0 + 1)})
    check(decide(issued, observe(T0 + 30, peers=PeerObs(3, 1, 2, 0)), cfg), "Confirming", "KubeletRestartOrdered", [])
    check(decide(issued, observe(T0 + 62, peers=PeerObs(3, 1, 2, 0)), cfg),
          "Fencing", "KubeletRestartDidNotHelp", ["IssueOrder"])


# -- Fencing -------------------------------------------------------------------------------

def fencing(**fence: Any) -> Any:
    return remediation("Fencing", fence=fence_status(**fence))


def test_fencing_without_a_recorded_order_issues_one() -> None:
    check(decide(remediation("Fencing"), observe(T0 + 1), CFG), "Fencing", "FenceOrdered", ["IssueOrder"])


def test_a_recorded_order_is_never_issued_again_but_delivered() -> None:
    d = decide(fencing(), observe(T0 + 5), CFG)
    check(d, "Fencing", "AwaitingFenceDeadline", ["DeliverOrder", "CheckPeerSilence"])
    assert d.status["fence"]["evidence"]["rule"] == "AgentHeartbeatStale"


def test_acknowledged_fence_waits_for_the_deadline_then_is_proven() -> None:
    d = decide(fencing(ack=ACK), observe(T0 + 100, witness=seen(ack=ACK)), CFG)
    check(d, "Fencing", "AwaitingFenceDeadline", [])
    done = decide(fencing(ack=ACK), observe(T0 + 136, witness=seen(ack=ACK)), CFG)
    check(done, "Fenced", "FenceProven", [])
    assert done.status["fence"]["evidence"]["rule"] == "AcknowledgedWatchdog"
    assert done.status["fence"]["evidence"]["satisfiedAt"]


def test_an_acknowledgement_only_in_the_status_proves_nothing() -> None:
    # Anyone allowed to write the status could have written it: only the answer this
    # controller received counts (here the agent's heartbeat is fresh: it must answer).
    obs = observe(T0 + 136, node(agent_info=agent(heartbeat=T0 + 130)))
    d = decide(fencing(ack=ACK), obs, CFG)
    check(d, "AwaitingApproval", "AwaitingOperatorConfirmation", ["DeliverOrder"])
    assert d.status["escalation"]["cause"] == "AgentAliveNotAcknowledging"


def test_a_refused_order_escalates_naming_the_agents_reason() -> None:
    obs = observe(T0 + 5, witness=seen(refusal="Rejected/BadSignature"))
    d = decide(fencing(), obs, CFG)
    check(d, "AwaitingApproval", "AwaitingOperatorConfirmation", ["DeliverOrder"])
    assert d.status["escalation"]["cause"] == "OrderRefused"
    assert "BadSignature" in d.status["escalation"]["causeMessage"]
    # and never proven later by the agent's silence
    later = remediation("AwaitingApproval", phase_since=T0 + 5, fence=fence_status(),
                        escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5),
                                    "cause": "OrderRefused"})
    check(decide(later, observe(T0 + 5000, witness=seen(refusal="Rejected/BadSignature")), CFG),
          "Failed", "EscalationTimeout", [])


def test_a_refusal_heard_after_the_escalation_becomes_its_cause() -> None:
    rem = remediation("AwaitingApproval", phase_since=T0 + 5, reason="AwaitingOperatorConfirmation",
                      fence=fence_status(),
                      escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5),
                                  "cause": "AgentDistrustsKey"})
    d = decide(rem, observe(T0 + 10, witness=seen(refusal="Rejected/BadSignature")), CFG)
    check(d, "AwaitingApproval", "AwaitingOperatorConfirmation", [])
    assert d.status["escalation"]["cause"] == "OrderRefused"
    assert "BadSignature" in d.status["escalation"]["causeMessage"]


def refused_and_escalated(**fence: Any) -> RemediationView:
    return remediation("AwaitingApproval", phase_since=T0 + 5, reason="AwaitingOperatorConfirmation",
                       fence=fence_status(refusal={"reason": "Rejected/UntrustedKey", "at": format_time(T0 + 1)},
                                          **fence),
                       escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5),
                                   "cause": "OrderRefused"})


def test_a_node_back_on_the_same_boot_after_a_refused_order_ends_and_the_order_is_withdrawn() -> None:
    """Chaos seed 138: the agent refused the order (a key it did not trust), the controller
    turned to a person, and the kubelet came back on the same boot: nothing fenced the node,
    so the remediation ends, and the order is withdrawn so that no agent carries it out
    later (once it trusts the key) with nothing following it."""
    rem = refused_and_escalated()
    obs = observe(T0 + 60, node("True", lease=T0 + 58))
    d = decide(rem, obs, CFG)
    check(d, "Cancelled", "NodeRecovered", [])
    assert "no taint" in d.message
    patch = decision_patch(rem, d, T0 + 60)
    assert patch["fence"]["order"] is None  # a merge patch: null deletes the order
    assert "order" not in merge_patch(rem.raw_status, patch)["fence"]
    assert order_token_of({"status": merge_patch(rem.raw_status, patch)}) is None


@pytest.mark.parametrize("why, rem, obs", [
    ("Ready=True left from before the escalation (the Lease not renewed since)",
     refused_and_escalated(), observe(T0 + 60, node("True", lease=T0 + 4))),
    ("the Lease renewed since but no longer fresh", refused_and_escalated(), observe(T0 + 200, node("True", lease=T0 + 58))),
    ("not Ready", refused_and_escalated(), observe(T0 + 60, node("Unknown", lease=T0 + 58))),
    ("the agent acknowledged: it took the order (a fence not observed is a person's to judge)",
     remediation("AwaitingApproval", phase_since=T0 + 5, reason="AwaitingOperatorConfirmation", fence=fence_status(ack=ACK),
                 escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5), "cause": "FenceTimeout"}),
     observe(T0 + 60, node("True", lease=T0 + 58))),
    ("the agent reported feeding its watchdog for the order",
     refused_and_escalated(), observe(T0 + 60, node("True", lease=T0 + 58))),
    ("a person FORCED it on a Ready node", replace(refused_and_escalated(), force=True),
     observe(T0 + 60, node("True", lease=T0 + 58))),
])
def test_a_refused_order_is_not_withdrawn_unless_the_node_is_plainly_back(why: str, rem: RemediationView,
                                                                          obs: Any) -> None:
    if why.startswith("the agent reported"):
        rem = replace(rem, agent_report={"lastFeedAt": format_time(T0 + 2)})
    d = decide(rem, obs, CFG)
    assert str(d.phase) == "AwaitingApproval", (why, d.message)
    assert "order" not in (d.status.get("fence") or {}), why


def test_a_refusal_recorded_in_the_status_also_counts() -> None:
    rem = fencing(refusal={"reason": "Rejected/NotYetValid", "at": format_time(T0 + 1)})
    d = decide(rem, observe(T0 + 5000), CFG)
    assert d.status["escalation"]["cause"] == "OrderRefused"


def test_an_order_this_controller_did_not_sign_escalates() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    fence = fence_status()
    fence["order"] = order_token(key=other)
    d = decide(remediation("Fencing", fence=fence), observe(T0 + 5000, witness=seen(fence)), CFG)
    check(d, "AwaitingApproval", "AwaitingOperatorConfirmation", [])
    assert d.status["escalation"]["cause"] == "OrderNotOurs"


def test_the_signed_order_times_count_not_the_status_fields() -> None:
    # issuedAt rewritten an hour earlier in the status: the deadline still counts from the signed time.
    forged = fence_status()
    forged["issuedAt"] = format_time(T0 - 3600)
    d = decide(remediation("Fencing", fence=forged), observe(T0 + 5), CFG)
    check(d, "Fencing", "AwaitingFenceDeadline")
    assert d.status["fence"]["evidence"]["inputs"]["orderStoredAt"] == format_time(T0)


def test_stale_heartbeat_proves_the_fence_at_its_deadline() -> None:
    check(decide(fencing(), observe(T0 + 232), CFG), "Fenced", "FenceProven", [])


def test_a_node_back_with_a_new_boot_while_fencing_succeeds_without_taint() -> None:
    obs = observe(T0 + 50, node("True", lease=T0 + 49, boot=NEW_BOOT, agent_info=agent(boot=NEW_BOOT)))
    d = decide(fencing(), obs, CFG)
    check(d, "Succeeded", "NodeRebooted", [])
    assert d.status["fence"]["evidence"]["rule"] == "NodeRebooted"


def test_an_order_too_short_lived_for_the_agent_escalates() -> None:
    obs = observe(T0 + 5, witness=seen(fence_status(ttl=200.0)))
    check(decide(fencing(ttl=200.0), obs, CFG), "AwaitingApproval", "AwaitingOperatorConfirmation",
          ["DeliverOrder"])


def no_agent_obs(now: float) -> Any:
    return observe(now, node(agent_info=AgentInfo()))


def test_no_agent_escalates_to_an_operator() -> None:
    d = decide(fencing(), no_agent_obs(T0 + 5), CFG)
    check(d, "AwaitingApproval", "AwaitingOperatorConfirmation", ["DeliverOrder"])
    assert d.status["escalation"]["kind"] == "OperatorApproval"
    assert d.status["escalation"]["cause"] == "NoAgent"


def test_no_agent_escalates_to_the_fence_agent() -> None:
    rem = remediation("Fencing", on_unproven="FenceAgent", fence=fence_status())
    d = decide(rem, no_agent_obs(T0 + 5), CFG)
    check(d, "Fencing", "EscalatedToFenceAgent", ["DeliverOrder", "RunFenceAgent"])
    assert d.status["escalation"]["attempts"] == 1


def test_fence_agent_escalation_without_a_command_fails_safe() -> None:
    rem = remediation("Fencing", on_unproven="FenceAgent", fence=fence_status())
    check(decide(rem, no_agent_obs(T0 + 5), replace(CFG, fence_agent_configured=False)),
          "Failed", "FenceNotProven", [])


def test_no_escalation_fails_safe() -> None:
    rem = remediation("Fencing", on_unproven="None", fence=fence_status())
    d = decide(rem, no_agent_obs(T0 + 5), CFG)
    check(d, "Failed", "FenceNotProven", [])
    assert "no taint" in d.message


def test_fence_timeout_escalates() -> None:
    d = decide(fencing(), observe(T0 + 901, outage_suspected=True), CFG)
    check(d, "AwaitingApproval", "AwaitingOperatorConfirmation", ["DeliverOrder"])
    assert d.status["escalation"]["cause"] == "FenceTimeout"


def test_an_order_recorded_before_the_phase_moved_completes_the_fence() -> None:
    for phase in ("Pending", "Confirming"):
        rem = remediation(phase, fence=fence_status())
        check(decide(rem, observe(T0 + 1, node("True", lease=T0)), CFG), "Fencing", "FenceOrdered", [])


def test_dry_run_never_escalates() -> None:
    rem = remediation("Fencing", dry_run=True, on_unproven="FenceAgent", fence=fence_status())
    check(decide(rem, no_agent_obs(T0 + 5), CFG), "Succeeded", "DryRunComplete", [])


def test_dry_run_never_delivers() -> None:
    rem = remediation("Fencing", dry_run=True, fence=fence_status())
    check(decide(rem, observe(T0 + 5), CFG), "Fencing", "AwaitingFenceDeadline", [])


# -- escalations ---------------------------------------------------------------------------

def fence_agent_state(**state: Any) -> Any:
    return remediation("Fencing", on_unproven="FenceAgent", fence=fence_status(),
                       escalation={"kind": "FenceAgent", "startedAt": format_time(T0 + 5), **state})


def test_fence_agent_success_proves_the_fence() -> None:
    rem = fence_agent_state(attempts=1, finishedAttempt=1, lastExitCode=0, finishedAt=format_time(T0 + 9))
    obs = replace(no_agent_obs(T0 + 10), witness=seen(fence_agent_ok_at=T0 + 9))
    d = decide(rem, obs, CFG)
    check(d, "Fenced", "FenceProven", [])
    assert d.status["fence"]["evidence"]["rule"] == "FenceAgent"


def test_a_fence_agent_success_only_in_the_status_runs_the_fence_agent_again() -> None:
    rem = fence_agent_state(attempts=1, finishedAttempt=1, lastExitCode=0, finishedAt=format_time(T0 + 9))
    d = decide(rem, no_agent_obs(T0 + 10), CFG)
    check(d, "Fencing", "EscalatedToFenceAgent", ["RunFenceAgent"])


def test_an_interrupted_fence_agent_run_is_run_again() -> None:
    d = decide(fence_agent_state(attempts=2, finishedAttempt=1, lastExitCode=1), no_agent_obs(T0 + 10), CFG)
    check(d, "Fencing", "EscalatedToFenceAgent", ["RunFenceAgent"])
    assert d.actions[0].detail == {"attempt": 2}


def test_a_failed_fence_agent_is_retried_then_fails() -> None:
    retry = decide(fence_agent_state(attempts=1, finishedAttempt=1, lastExitCode=1), no_agent_obs(T0 + 10), CFG)
    check(retry, "Fencing", "EscalatedToFenceAgent", ["RunFenceAgent"])
    assert retry.status["escalation"]["attempts"] == 2
    check(decide(fence_agent_state(attempts=3, finishedAttempt=3, lastExitCode=1), no_agent_obs(T0 + 10), CFG),
          "Failed", "FenceAgentFailed", [])


def operator_wait(**status: Any) -> Any:
    return remediation("AwaitingApproval", phase_since=T0 + 5, fence=fence_status(),
                       escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5)}, **status)


def test_an_operators_confirmation_proves_the_fence() -> None:
    rem = operator_wait(approval={"approvedBy": "alice", "approvedAt": format_time(T0 + 60)})
    d = decide(rem, no_agent_obs(T0 + 61), CFG)
    check(d, "Fenced", "FenceProven", [])
    assert d.status["fence"]["evidence"]["rule"] == "OperatorConfirmedOff"
    assert d.status["fence"]["evidence"]["inputs"]["approvedBy"] == "alice"


def test_operator_confirmation_times_out() -> None:
    check(decide(operator_wait(), no_agent_obs(T0 + 3606), CFG), "Failed", "EscalationTimeout", [])


def test_a_late_acknowledgement_ends_the_escalation_once_due() -> None:
    rem = remediation("AwaitingApproval", phase_since=T0 + 5, fence=fence_status(ack=ACK),
                      escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5)})
    check(decide(rem, replace(no_agent_obs(T0 + 200), witness=seen(ack=ACK)), CFG), "Fenced", "FenceProven", [])
    check(decide(rem, no_agent_obs(T0 + 200), CFG), "AwaitingApproval", "AwaitingOperatorConfirmation", [])


# -- Fenced and Recovering -----------------------------------------------------------------

def fenced(dead_by: float = T0 + 100, **status: Any) -> Any:
    evidence = {"rule": "AgentHeartbeatStale", "inputs": {"deadBy": format_time(dead_by)},
                "satisfiedAt": format_time(T0 + 232)}
    return remediation("Fenced", fence=fence_status(evidence=evidence), **status)


def test_fenced_starts_recovery_with_the_taint() -> None:
    d = decide(fenced(), observe(T0 + 233), CFG)
    check(d, "Recovering", "RecoveryStarted", ["ApplyTaint"])
    assert d.status["recovery"]["strategy"] == "OutOfServiceTaint"


# The fencing taint (controller/after_fence.py): a node reset by its watchdog reboots, and a
# kubelet back on a new boot that read its pods before the taint was there would start the
# old pods while the out-of-service taint lets their replacements start elsewhere.

SETTLED = CFG.fencing_taint_settle_s + CFG.timing.max_clock_skew_s


def test_no_recovery_without_the_fencing_taint_it_is_added_first() -> None:
    for rem in (fenced(), recovering(recovery={"strategy": "OutOfServiceTaint"}),
                recovering(recovery={"strategy": "ResourceDeletion"})):
        d = decide(rem, observe(T0 + 233, node(fencing=None)), CFG)
        check(d, rem.phase, "AwaitingFencingTaint", ["AddFencingTaint"])
        assert "not on the node" in d.message


def test_recovery_waits_until_the_fencing_taint_has_settled() -> None:
    added = T0 + 230
    early = decide(fenced(), observe(added + SETTLED - 0.5, node(fencing=added)), CFG)
    check(early, "Fenced", "AwaitingFencingTaint", [])
    assert early.requeue_s == pytest.approx(0.5)
    for strategy, action in (("OutOfServiceTaint", "ApplyTaint"), ("ResourceDeletion", "DeleteResources")):
        rem = recovering(recovery={"strategy": strategy})
        check(decide(rem, observe(added + SETTLED - 0.5, node(fencing=added)), CFG),
              "Recovering", "AwaitingFencingTaint", [])
        check(decide(rem, observe(added + SETTLED, node(fencing=added)), CFG), "Recovering", "RecoveryStarted", [action])
    check(decide(fenced(), observe(added + SETTLED, node(fencing=added)), CFG), "Recovering", "RecoveryStarted",
          ["ApplyTaint"])


def test_a_fencing_taint_with_no_time_or_a_future_time_does_not_count_as_settled() -> None:
    untimed = replace(node(), fencing_taint_added_at=None)  # on the node, added by hand without timeAdded
    check(decide(fenced(), observe(T0 + 233, untimed), CFG), "Fenced", "AwaitingFencingTaint", ["AddFencingTaint"])
    ahead = node(fencing=T0 + 600)  # a writer's clock far ahead: waits for it, never less
    check(decide(fenced(), observe(T0 + 233, ahead), CFG), "Fenced", "AwaitingFencingTaint", [])


def test_a_kubelet_seen_renewing_during_the_settle_stops_the_recovery() -> None:
    """Chaos seed 116: a node reset while cut off comes back when the partition heals, its
    kubelet reads its pods and renews its Lease seconds later: no taint, whatever the proof."""
    added = T0 + 230
    back = node(fencing=added, lease=added + 3)  # renewed after the node must have been dead
    d = decide(fenced(), observe(added + SETTLED + 1, back), CFG)
    check(d, "Fenced", "NodeAliveAfterFence", [])
    assert "no taint" in d.message


def test_dry_runs_need_no_fencing_taint() -> None:
    rem = fenced(dry_run=True)
    check(decide(rem, observe(T0 + 233, node(fencing=None)), CFG), "Recovering", "RecoveryStarted", [])


def test_old_servers_fall_back_to_resource_deletion() -> None:
    d = decide(fenced(), observe(T0 + 233, oos_taint_supported=False), CFG)
    check(d, "Recovering", "RecoveryStarted", ["DeleteResources"])
    assert d.status["recovery"]["strategy"] == "ResourceDeletion"


def test_dry_run_recovery_acts_on_nothing() -> None:
    rem = fenced(dry_run=True)
    check(decide(rem, observe(T0 + 233), CFG), "Recovering", "RecoveryStarted", [])


FORGED_EVIDENCE = {"rule": "AcknowledgedWatchdog", "inputs": {"deadBy": format_time(T0 + 100)},
                   "satisfiedAt": format_time(T0 + 150)}


def test_a_status_claiming_fenced_is_refused_unless_the_proof_is_derived_again() -> None:
    for phase in ("Fenced", "Recovering"):
        # No order at all: nothing to derive a proof from.
        check(decide(remediation(phase, phase_since=T0 + 230), observe(T0 + 233), CFG), "Failed",
              "FenceNotProven", [])
        # Hand-written evidence, but the agent's heartbeat is fresh and it never acknowledged.
        rem = remediation(phase, phase_since=T0 + 230, fence=fence_status(ack=ACK, evidence=FORGED_EVIDENCE),
                          recovery={"strategy": "OutOfServiceTaint"})
        alive = observe(T0 + 233, node(agent_info=agent(heartbeat=T0 + 230)))
        check(decide(rem, alive, CFG), "Fencing", "ProofNotRederived", [])
        # This controller never sent the order (a forged status, or a restart): not yet.
        check(decide(rem, observe(T0 + 233, witness=seen(delivered=False)), CFG), "Fencing",
              "ProofNotRederived", [])
        # The order was not signed with this controller's key.
        other = fence_status(evidence=FORGED_EVIDENCE)
        other["order"] = order_token(key=Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
        d = decide(remediation(phase, phase_since=T0 + 230, fence=other, recovery={"strategy": "OutOfServiceTaint"}),
                   observe(T0 + 233, witness=seen(other)), CFG)
        check(d, "Failed", "FenceNotProven", [])
        assert "does not verify" in d.message


def test_a_proof_derived_again_from_observations_recovers() -> None:
    # The same Fenced status, with the heartbeat stale past its deadline and the order sent by
    # this controller: the fence is proven from observations, whatever the record says.
    rem = remediation("Fenced", fence=fence_status())
    check(decide(rem, observe(T0 + 233), CFG), "Recovering", "RecoveryStarted", ["ApplyTaint"])


def test_a_node_alive_after_its_fence_gets_no_taint_and_fails_loudly() -> None:
    alive = observe(T0 + 233, node("Unknown", lease=T0 + 200))  # renewed after deadBy + skew
    first = decide(fenced(), alive, CFG)
    check(first, "Fenced", "NodeAliveAfterFence", [])
    waited = fenced(reason="NodeAliveAfterFence", phase_since=T0 + 233)
    check(decide(waited, observe(T0 + 264, node("Unknown", lease=T0 + 260)), CFG),
          "Failed", "FenceNotObserved", [])


def test_a_node_already_back_with_a_new_boot_needs_no_recovery() -> None:
    obs = observe(T0 + 233, node("True", lease=T0 + 230, boot=NEW_BOOT))
    check(decide(fenced(), obs, CFG), "Succeeded", "NodeRebooted", [])


def recovering(**kw: Any) -> Any:
    evidence = {"rule": "AgentHeartbeatStale", "inputs": {"deadBy": format_time(T0 + 100)},
                "satisfiedAt": format_time(T0 + 232)}
    return remediation("Recovering", phase_since=T0 + 233, fence=fence_status(evidence=evidence), **kw)


def test_recovering_applies_the_taint_until_it_is_there() -> None:
    rem = recovering(recovery={"strategy": "OutOfServiceTaint"})
    check(decide(rem, observe(T0 + 234), CFG), "Recovering", "RecoveryStarted", ["ApplyTaint"])
    d = decide(rem, observe(T0 + 235, node(oos=True)), replace(CFG, delete_pods_after_taint=False))  # pod GC deletes
    check(d, "AwaitingNodeReady", "OutOfServiceTaintApplied", [])
    assert d.status["recovery"]["taintAppliedAt"]


DELETING = replace(CFG, delete_pods_after_taint=True)


def test_with_the_taint_on_the_pods_it_evicts_are_deleted_once_then_recovery_waits() -> None:
    rem = recovering(recovery={"strategy": "OutOfServiceTaint"})
    d = decide(rem, observe(T0 + 235, node(oos=True)), DELETING)
    check(d, "Recovering", "RecoveryStarted", ["DeleteEvictedPods"])
    assert d.status["recovery"]["taintAppliedAt"]  # recorded with the intent to delete
    done = recovering(recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235),
                                "podsDeleted": 2})
    d = decide(done, observe(T0 + 236, node(oos=True)), DELETING)
    check(d, "AwaitingNodeReady", "OutOfServiceTaintApplied", [])
    assert "2 pod(s)" in d.message


def test_pod_gcs_rule_needs_a_node_that_is_not_ready() -> None:
    rem = recovering(recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235)})
    d = decide(rem, observe(T0 + 236, node("True", oos=True)), DELETING)
    check(d, "AwaitingNodeReady", "OutOfServiceTaintApplied", [])
    assert "the node is Ready" in d.status["recovery"]["podDeletionSkipped"]


def test_a_deletion_that_cannot_be_made_never_fails_a_tainted_remediation() -> None:
    """The taint is on: Kubernetes recovers the workloads with or without the deletion."""
    skipped = recovering(recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235),
                                   "podDeletionSkipped": "Forbidden: no RBAC"})
    d = decide(skipped, observe(T0 + 236, node(oos=True)), DELETING)
    check(d, "AwaitingNodeReady", "OutOfServiceTaintApplied", [])
    assert "pod GC" in d.message
    pending = recovering(recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235)})
    d = decide(pending, observe(T0 + 233 + CFG.recover_timeout_s + 1, node(oos=True)), DELETING)
    check(d, "AwaitingNodeReady", "OutOfServiceTaintApplied", [])
    assert d.status["recovery"]["podDeletionSkipped"]


def test_no_pod_is_deleted_once_the_node_is_seen_alive_or_the_proof_is_gone() -> None:
    """Deleting is the moment of recovery too: the checks made before the taint are made
    again before the deletion."""
    rem = recovering(recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235)})
    alive = decide(rem, observe(T0 + 236, node("Unknown", lease=T0 + 235, oos=True)), DELETING)
    assert "DeleteEvictedPods" not in kinds(alive), alive
    forged = remediation("Recovering", phase_since=T0 + 233, fence=fence_status(evidence=FORGED_EVIDENCE),
                         recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235)})
    refused = decide(forged, observe(T0 + 236, node(oos=True), witness=seen(delivered=False)), DELETING)
    assert "DeleteEvictedPods" not in kinds(refused), refused


def test_resource_deletion_completes_when_recorded() -> None:
    rem = recovering(strategy="ResourceDeletion", recovery={"strategy": "ResourceDeletion"})
    check(decide(rem, observe(T0 + 234), CFG), "Recovering", "RecoveryStarted", ["DeleteResources"])
    done = recovering(strategy="ResourceDeletion", recovery={"strategy": "ResourceDeletion", "podsDeleted": 3})
    check(decide(done, observe(T0 + 235), CFG), "AwaitingNodeReady", "ResourcesDeleted", [])


def test_recovery_times_out() -> None:
    rem = recovering(recovery={"strategy": "OutOfServiceTaint"})
    check(decide(rem, observe(T0 + 233 + 121), CFG), "Failed", "RecoveryFailed", [])


# -- returning to service ------------------------------------------------------------------

def awaiting(**kw: Any) -> Any:
    return remediation("AwaitingNodeReady", phase_since=T0 + 240, fence=fence_status(),
                       recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235)}, **kw)


def test_node_back_with_a_new_boot_gets_its_taint_removed_then_succeeds() -> None:
    back = node("True", lease=T0 + 400, boot=NEW_BOOT, oos=True)
    check(decide(awaiting(), observe(T0 + 401, back), CFG), "AwaitingNodeReady", "NodeReturned", ["RemoveTaint"])
    d = decide(awaiting(), observe(T0 + 402, replace(back, has_oos_taint=False, has_fencing_taint=False)), CFG)
    check(d, "Succeeded", "NodeReturned", [])
    assert d.status["recovery"]["taintRemovedAt"]


def test_node_back_with_a_new_boot_gets_its_fencing_taint_removed_too() -> None:
    back = node("True", lease=T0 + 400, boot=NEW_BOOT, oos=False)  # the fencing taint alone is left
    check(decide(awaiting(), observe(T0 + 401, back), CFG), "AwaitingNodeReady", "NodeReturned", ["RemoveTaint"])


def test_node_ready_on_the_same_boot_keeps_the_taint_and_fails() -> None:
    same = node("True", lease=T0 + 400, boot=BOOT, oos=True)
    d = decide(awaiting(), observe(T0 + 401, same), CFG)
    check(d, "Failed", "FenceNotObserved", [])
    assert "taint stays" in d.message


def awaiting_with_evidence(**kw: Any) -> Any:
    evidence = {"rule": "AcknowledgedWatchdog", "inputs": {"deadBy": format_time(T0 + 100)},
                "satisfiedAt": format_time(T0 + 232)}
    return remediation("AwaitingNodeReady", phase_since=T0 + 240, fence=fence_status(evidence=evidence),
                       recovery={"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235)}, **kw)


def test_ready_from_before_the_fence_is_not_a_node_that_survived_it() -> None:
    # Found by the chaos suite: the kubelet came back just after the order and posted Ready,
    # then the agent's fence reset the machine. The Node keeps Ready=True on the old boot for a
    # grace period after the last heartbeat; that is no reason to call the fence not observed.
    stale = node("True", lease=T0 + 90, boot=BOOT, oos=True)  # last renewed before deadBy
    d = decide(awaiting_with_evidence(), observe(T0 + 241, stale), CFG)
    check(d, "AwaitingNodeReady", "AwaitingNode", [])  # the taint stays, nothing removed
    back = node("True", lease=T0 + 400, boot=NEW_BOOT, oos=True)
    check(decide(awaiting_with_evidence(), observe(T0 + 401, back), CFG), "AwaitingNodeReady", "NodeReturned",
          ["RemoveTaint"])


def test_ready_on_the_same_boot_with_a_lease_renewed_after_the_fence_fails_after_a_grace() -> None:
    alive = node("True", lease=T0 + 300, boot=BOOT, oos=True)  # renewed after deadBy + skew
    first = decide(awaiting_with_evidence(), observe(T0 + 301, alive), CFG)
    # A node that rebooted fast may renew its Lease before it posts its new boot: wait a grace.
    check(first, "AwaitingNodeReady", "NodeAliveAfterFence", [])
    seen = [{"phase": "AwaitingNodeReady", "reason": "NodeAliveAfterFence", "at": format_time(T0 + 301)}]
    waiting = awaiting_with_evidence(reason="NodeAliveAfterFence", history=seen)
    check(decide(waiting, observe(T0 + 310, alive), CFG), "AwaitingNodeReady", "NodeAliveAfterFence", [])
    rebooted = replace(alive, boot_id=NEW_BOOT)
    check(decide(waiting, observe(T0 + 310, rebooted), CFG), "AwaitingNodeReady", "NodeReturned", ["RemoveTaint"])
    late = T0 + 301 + CFG.alive_grace_s + 1
    check(decide(waiting, observe(late, replace(alive, lease_renewed_at=late - 1)), CFG),
          "Failed", "FenceNotObserved", [])


def test_a_node_that_does_not_come_back_is_reported_and_keeps_its_taint() -> None:
    d = decide(awaiting(), observe(T0 + 240 + 1801, node(oos=True)), CFG)
    check(d, "AwaitingNodeReady", "NodeNotBack", [])


def test_dry_run_completes_when_the_node_is_ready() -> None:
    rem = remediation("AwaitingNodeReady", dry_run=True)
    check(decide(rem, observe(T0 + 9, node("True", lease=T0 + 8)), CFG), "Succeeded", "DryRunComplete", [])


# -- finished remediations -----------------------------------------------------------------

def test_a_failed_remediation_still_removes_its_taint_when_the_node_returns() -> None:
    rem = remediation("Failed", reason="RecoveryFailed", fence=fence_status(),
                      recovery={"taintAppliedAt": format_time(T0 + 235)})
    check(decide(rem, observe(T0 + 500, node("True", lease=T0 + 499, boot=NEW_BOOT, oos=True)), CFG),
          "Failed", "RecoveryFailed", ["RemoveTaint"])


def test_a_remediation_that_ended_rebooted_after_its_taint_removes_it_when_the_node_returns() -> None:
    """Chaos seed 126: the taint went on, the proof was then refused (the agent republished
    on its new boot), and the remediation ended Succeeded/NodeRebooted with the node Ready
    on that boot: the out-of-service taint stayed on a healthy node (stale-taint)."""
    back = node("True", lease=T0 + 499, boot=NEW_BOOT, oos=True)
    for recovery in ({"taintAppliedAt": format_time(T0 + 235)},
                     {"strategy": "OutOfServiceTaint", "requestedAt": format_time(T0 + 234)}):  # not yet recorded
        rem = remediation("Succeeded", reason="NodeRebooted", fence=fence_status(), recovery=recovery)
        check(decide(rem, observe(T0 + 500, back), CFG), "Succeeded", "NodeRebooted", ["RemoveTaint"])
    cancelled = remediation("Cancelled", reason="Cancelled", fence=fence_status(),
                            recovery={"taintAppliedAt": format_time(T0 + 235)})
    check(decide(cancelled, observe(T0 + 500, back), CFG), "Cancelled", "Cancelled", ["RemoveTaint"])
    # Not before the node is back on a new boot.
    rem = remediation("Succeeded", reason="NodeRebooted", fence=fence_status(),
                      recovery={"taintAppliedAt": format_time(T0 + 235)})
    check(decide(rem, observe(T0 + 500, node("Unknown", boot=NEW_BOOT, oos=True)), CFG), "Succeeded", "NodeRebooted", [])


def test_fence_not_observed_keeps_the_taint_for_a_person() -> None:
    rem = remediation("Failed", reason="FenceNotObserved", fence=fence_status(),
                      recovery={"taintAppliedAt": format_time(T0 + 235)})
    check(decide(rem, observe(T0 + 500, node("True", lease=T0 + 499, boot=NEW_BOOT, oos=True)), CFG),
          "Failed", "FenceNotObserved", [])


def test_cancelled_keeps_its_own_reason() -> None:
    check(decide(remediation("Cancelled", reason="AlertResolved"), observe(T0), CFG),
          "Cancelled", "AlertResolved", [])


# -- safety properties over generated states -----------------------------------------------

phases = st.sampled_from(["Pending", "AwaitingApproval", "Confirming", "Fencing", "Fenced", "Recovering",
                          "AwaitingNodeReady", "Succeeded", "Cancelled", "Failed"])


@settings(max_examples=500, deadline=None)
@given(phase=phases, has_order=st.booleans(), has_ack=st.booleans(), since=st.floats(0, 5000),
       now=st.floats(0, 10_000), ready=st.sampled_from(["True", "False", "Unknown"]),
       lease=st.none() | st.floats(-500, 10_000), heartbeat=st.none() | st.floats(-500, 10_000),
       new_boot=st.booleans(), capable=st.booleans(), outage=st.booleans(), oos=st.booleans(),
       reachable=st.integers(0, 3), escalation=st.sampled_from(["None", "FenceAgent", "OperatorApproval"]),
       evidence=st.booleans(), dry_run=st.booleans())
def test_safety_properties(phase: str, has_order: bool, has_ack: bool, since: float, now: float, ready: str,
                           lease: float | None, heartbeat: float | None, new_boot: bool, capable: bool,
                           outage: bool, oos: bool, reachable: int, escalation: str, evidence: bool,
                           dry_run: bool) -> None:
    status: dict[str, Any] = {}
    if has_order:
        ev = {"rule": "AgentHeartbeatStale", "inputs": {"deadBy": format_time(T0 + 100)},
              "satisfiedAt": format_time(T0 + 232)} if evidence else None
        status["fence"] = fence_status(ack=ACK if has_ack else None, evidence=ev)
    rem = remediation(phase, phase_since=T0 + since, on_unproven=escalation, dry_run=dry_run, **status)
    info = agent(heartbeat=None if heartbeat is None else T0 + heartbeat, capable=capable)
    obs = observe(T0 + now, node(ready, lease=None if lease is None else T0 + lease,
                                 boot=NEW_BOOT if new_boot else BOOT, oos=oos, agent_info=info),
                  peers=PeerObs(3, reachable, 3 - reachable, 0), outage_suspected=outage)
    d = decide(rem, obs, CFG)
    acts = kinds(d)
    # 1. Exactly one fence: once an order is recorded, no second one is ever issued.
    if has_order:
        assert not any(a.kind is ActionKind.ISSUE_ORDER and a.detail.get("action") == "fence" for a in d.actions)
    # 2. Recovery only after proof derived again from observations: the witness here holds no
    #    acknowledgement, so only a capable agent's stale heartbeat, outside an outage, proves it
    #    (whatever the status claims: ack, evidence).
    if "ApplyTaint" in acts or "DeleteResources" in acts:
        assert phase in ("Fenced", "Recovering") and has_order
        assert capable and heartbeat is not None and not outage
        assert T0 + now >= max(T0 + heartbeat, T0) + 97 + 2 * 60 + TIMING.safety_margin_s + TIMING.max_clock_skew_s
        assert not dry_run
    # 3. Dry run never acts on the cluster.
    if dry_run:
        assert not {"DeliverOrder", "ApplyTaint", "DeleteResources", "RunFenceAgent"} & set(acts)
    # 4. Cancelling is only possible before any order exists.
    if str(d.phase) == "Cancelled" and phase != "Cancelled":
        assert not has_order
    # 5. Finished stays finished.
    if phase in ("Succeeded", "Cancelled", "Failed"):
        assert str(d.phase) == phase
    # 6. A fence is proven only from the fencing phases.
    if str(d.phase) == "Fenced" and phase != "Fenced":
        assert phase in ("Fencing", "AwaitingApproval") and has_order


def test_peer_silence_is_checked_once_the_order_has_settled() -> None:
    early = decide(fencing(), observe(T0 + 1), CFG)
    assert "CheckPeerSilence" not in kinds(early)
    settled = decide(fencing(), observe(T0 + 3), CFG)
    assert kinds(settled) == ["DeliverOrder", "CheckPeerSilence"]
    done = remediation("Fencing", fence=fence_status(peerSilence={"complete": True}))
    assert "CheckPeerSilence" not in kinds(decide(done, observe(T0 + 3, witness=seen(silence={"complete": True})),
                                                  CFG))
    # A completeness only claimed in the status is not this controller's: it asks again.
    assert "CheckPeerSilence" in kinds(decide(done, observe(T0 + 3), CFG))


# -- a person's kubectl request: the plan the webhook decided, never the requester's spec --


def kubectl_request(phase: str | None, plan: dict[str, Any] | None, **spec: Any) -> RemediationView:
    status: dict[str, Any] = {}
    if phase is not None:
        status = {"phase": phase, "reason": "Accepted", "phaseSince": format_time(T0)}
    if plan is not None:
        status["plan"] = plan
    return RemediationView.parse({
        "metadata": {"name": "node-1", "uid": "uid-1", "resourceVersion": "7",
                     "creationTimestamp": format_time(T0),
                     "annotations": {"nodewarden.io/requested-by": "alice"}},
        "spec": {"nodeName": "node-1", "trigger": {"source": "kubectl"}, **spec}, "status": status})


def test_a_kubectl_requests_spec_counts_for_nothing_only_the_decided_plan_does() -> None:
    # alice wrote "no approval needed, force"; policy decided approval is required and no force.
    rem = kubectl_request("Pending", {"approvalRequired": True, "strategy": "OutOfServiceTaint",
                                      "escalation": "OperatorApproval", "force": False},
                          approvalRequired=False, force=True, strategy="ResourceDeletion")
    assert rem.approval_required and not rem.force and str(rem.strategy) == "OutOfServiceTaint"
    assert rem.received_at == T0  # from creationTimestamp, not a field alice wrote
    check(decide(rem, observe(T0 + 1, node("Unknown", lease=T0 - 100)), CFG), "AwaitingApproval",
          "AwaitingApproval", [])


def test_a_forced_request_is_not_cancelled_because_the_node_is_ready() -> None:
    plan = {"approvalRequired": True, "fourEyes": True, "force": True}
    ready = node("True", lease=T0)
    waiting = kubectl_request("AwaitingApproval", plan)
    # Still waiting, and still saying why this one is dangerous (the webhook's reason).
    check(decide(waiting, observe(T0 + 1, ready), CFG), "AwaitingApproval", "ForceNeedsApproval", [])
    confirming = kubectl_request("Confirming", plan)
    check(decide(confirming, observe(T0 + 1, ready), CFG), "Confirming", "OperatorGraceWindow", [])
    check(decide(confirming, observe(T0 + CFG.operator_grace_s + 1, ready, peers=None), CFG),
          "Fencing", "ConfirmedByOperator", ["IssueOrder"])


# -- the fencing taints nothing needs ---------------------------------------------------------

def _rem(name: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase}}


def test_fencing_taints_nobody_needs_are_removed_and_the_others_kept() -> None:
    from controller.after_fence import fencing_taints_to_remove
    nodes = {"done": node(fencing=T0), "deleted": node(fencing=T0), "active": node(fencing=T0),
             "with-oos": node(fencing=T0, oos=True), "young": node(fencing=T0 + 95),
             "untimed": replace(node(), fencing_taint_added_at=None), "odd-phase": node(fencing=T0),
             "clean": node(fencing=None)}
    rems = [_rem("done", "Succeeded"), _rem("active", "Fencing"), _rem("with-oos", "Failed"),
            _rem("young", "Cancelled"), _rem("untimed", "Failed"), _rem("odd-phase", "Whatever")]
    assert fencing_taints_to_remove(nodes, rems, T0 + 100, grace_s=10) == ["deleted", "done", "untimed"]


def test_the_deletion_looks_again_for_one_pod_gc_period_when_nothing_was_terminating_yet() -> None:
    """Pod GC runs every 20 s; the controller's deletion (its rule, sooner) looks again once a
    second for as long, for pods the taint-eviction controller had not marked yet."""
    rec = {"strategy": "OutOfServiceTaint", "taintAppliedAt": format_time(T0 + 235), "podsDeleted": 0}
    again = decide(recovering(recovery=rec), observe(T0 + 236, node(oos=True)), DELETING)
    check(again, "Recovering", "RecoveryStarted", ["DeleteEvictedPods"])
    later = decide(recovering(recovery=rec), observe(T0 + 235 + DELETING.pod_gc_period_s, node(oos=True)), DELETING)
    check(later, "AwaitingNodeReady", "OutOfServiceTaintApplied", [])
