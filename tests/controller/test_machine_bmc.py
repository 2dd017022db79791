"""The fence inventory's BMC in the state machine: the fencing of its own for a node
without a watchdog-capable agent and the rung after self-fencing; only a confirmed
power-off is evidence; every other outcome waits for a person, never taints."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from controller.machine import decide
from controller.model import AgentInfo, format_time
from tests.controller.builders import CFG, T0, agent, fence_status, node, observe, remediation, seen


def no_agent_obs(now: float, device: str = "rack-a", bmc_succeeded_at: float | None = None) -> Any:
    """`bmc_succeeded_at`: when this controller process itself saw the BMC run succeed."""
    witness = seen()
    if bmc_succeeded_at is not None:
        witness = replace(witness, fence_agent_succeeded_at=bmc_succeeded_at)
    return observe(now, node(agent_info=AgentInfo()), fence_device=device, witness=witness)


def kinds(d: Any) -> list[str]:
    return [str(a.kind) for a in d.actions]


@pytest.mark.parametrize("escalation", ["OperatorApproval", "None", "FenceAgent"])
def test_a_node_without_an_agent_is_fenced_by_its_bmc_whatever_the_escalation(escalation: str) -> None:
    rem = remediation("Fencing", on_unproven=escalation, fence=fence_status())
    d = decide(rem, no_agent_obs(T0 + 5), CFG)
    assert (str(d.phase), str(d.reason)) == ("Fencing", "EscalatedToFenceAgent")
    assert "RunFenceAgent" in kinds(d)
    assert d.status["escalation"]["device"] == "rack-a" and d.status["escalation"]["cause"] == "NoAgent"


def test_without_a_device_nothing_changes() -> None:
    rem = remediation("Fencing", on_unproven="OperatorApproval", fence=fence_status())
    d = decide(rem, no_agent_obs(T0 + 5, device=""), CFG)
    assert (str(d.phase), str(d.reason)) == ("AwaitingApproval", "AwaitingOperatorConfirmation")


def test_the_bmc_is_the_rung_after_self_fencing_only_when_the_policy_says_so() -> None:
    obs = observe(T0 + 901, node(agent_info=agent()), outage_suspected=True, fence_device="rack-a")
    rung = decide(remediation("Fencing", on_unproven="FenceAgent", fence=fence_status()), obs, CFG)
    assert str(rung.reason) == "EscalatedToFenceAgent" and rung.status["escalation"]["cause"] == "FenceTimeout"
    person = decide(remediation("Fencing", on_unproven="OperatorApproval", fence=fence_status()), obs, CFG)
    assert str(person.reason) == "AwaitingOperatorConfirmation" and "RunFenceAgent" not in kinds(person)


def bmc_state(**state: Any) -> Any:
    return remediation("Fencing", fence=fence_status(), escalation={
        "kind": "FenceAgent", "device": "rack-a", "startedAt": format_time(T0 + 5), "attempts": 1, **state})


def test_a_confirmed_power_off_is_proof_at_once() -> None:
    rem = bmc_state(finishedAttempt=1, lastExitCode=0, outcome="PoweredOff", agent="fence_ipmilan",
                    finishedAt=format_time(T0 + 9), powerOffConfirmedAt=format_time(T0 + 8.5),
                    runs=["PoweredOff", "status:Off"])
    d = decide(rem, no_agent_obs(T0 + 9.1, bmc_succeeded_at=T0 + 9), CFG)
    assert (str(d.phase), str(d.reason)) == ("Fenced", "FenceProven")
    evidence = d.status["fence"]["evidence"]
    assert evidence["rule"] == "BmcPowerOffConfirmed"
    assert evidence["inputs"]["deadBy"] == format_time(T0 + 8.5)  # no safe-time wait after it
    assert evidence["inputs"]["outcome"] == "PoweredOff"


def test_a_completed_reboot_is_proof() -> None:
    rem = bmc_state(finishedAttempt=1, lastExitCode=0, outcome="Rebooted", finishedAt=format_time(T0 + 9))
    d = decide(rem, no_agent_obs(T0 + 10, bmc_succeeded_at=T0 + 9), CFG)
    assert str(d.phase) == "Fenced" and d.status["fence"]["evidence"]["rule"] == "BmcPowerOffConfirmed"


def test_a_recorded_power_off_this_controller_did_not_see_is_run_again_never_trusted() -> None:
    """Status is a record: anyone who may write noderemediations/status could have written
    this confirmation (or it predates a restart). Powering off again is harmless."""
    rem = bmc_state(finishedAttempt=1, lastExitCode=0, outcome="PoweredOff", agent="fence_ipmilan",
                    finishedAt=format_time(T0 + 9), powerOffConfirmedAt=format_time(T0 + 8.5))
    d = decide(rem, no_agent_obs(T0 + 9.1), CFG)
    assert (str(d.phase), kinds(d)) == ("Fencing", ["RunFenceAgent"])
    assert "not seen by this controller" in d.message and "fence" not in d.status


@pytest.mark.parametrize(("outcome", "reason"), [
    ("CredentialsRefused", "FenceAgentCredentialsRefused"),
    ("Unreachable", "FenceAgentBmcUnreachable"),
    ("TimedOut", "FenceAgentTimedOut"),
    ("PoweredOnAgain", "FenceAgentPowerOffDidNotHold"),
    ("Failed", "FenceAgentFailed"),
    ("CredentialsMissing", "FenceAgentFailed"),
])
def test_every_unconfirmed_outcome_waits_for_a_person_and_never_taints(outcome: str, reason: str) -> None:
    rem = bmc_state(finishedAttempt=1, lastExitCode=1, outcome=outcome, finishedAt=format_time(T0 + 9),
                    summary=f"fence_ipmilan (device rack-a) {outcome}")
    d = decide(rem, no_agent_obs(T0 + 10), CFG)
    assert (str(d.phase), str(d.reason)) == ("AwaitingApproval", reason)
    assert d.actions == ()
    assert d.status["escalation"]["kind"] == "OperatorApproval" and d.status["escalation"]["cause"] == reason
    assert "no taint" in d.message and "fence" not in d.status


def test_a_claimed_outcome_without_a_zero_exit_is_no_proof() -> None:
    rem = bmc_state(finishedAttempt=1, lastExitCode=1, outcome="PoweredOff", finishedAt=format_time(T0 + 9),
                    powerOffConfirmedAt=format_time(T0 + 9))
    assert str(decide(rem, no_agent_obs(T0 + 10), CFG).phase) == "AwaitingApproval"


def test_an_interrupted_bmc_run_is_run_again() -> None:
    d = decide(bmc_state(), no_agent_obs(T0 + 10), CFG)
    assert (str(d.phase), kinds(d)) == ("Fencing", ["RunFenceAgent"])


def test_after_a_refusal_a_persons_confirmation_proves_the_fence() -> None:
    rem = remediation("AwaitingApproval", phase_since=T0 + 10, fence=fence_status(),
                      approval={"approvedBy": "alice", "approvedAt": format_time(T0 + 60)},
                      escalation={"kind": "OperatorApproval", "cause": "FenceAgentCredentialsRefused",
                                  "device": "rack-a", "outcome": "CredentialsRefused",
                                  "startedAt": format_time(T0 + 10)})
    d = decide(rem, no_agent_obs(T0 + 61), CFG)
    assert str(d.phase) == "Fenced" and d.status["fence"]["evidence"]["rule"] == "OperatorConfirmedOff"
    waiting = decide(remediation("AwaitingApproval", phase_since=T0 + 10, fence=fence_status(),
                                 escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 10),
                                             "device": "rack-a", "outcome": "CredentialsRefused"}),
                     no_agent_obs(T0 + 61), CFG)
    assert str(waiting.phase) == "AwaitingApproval" and waiting.actions == ()
