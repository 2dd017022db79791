"""Which inputs of a fence's proof the controller trusts (controller.proof): each forgery
of a status field is tried, and each is refused with a named reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.machine import decide
from controller.model import Acknowledgement, Reason, RemediationView, format_time, parse_time
from controller.proof import Refusal, refusals, trusted_fence, trusted_report, verified_order
from tests.controller.builders import (
    BOOT,
    CFG,
    NEW_BOOT,
    T0,
    agent,
    fence_status,
    node,
    observe,
    order_token,
    remediation,
    seen,
)

REPORT = {"lastFeedAt": format_time(T0 + 2), "watchdogTimeoutSeconds": 60, "bootId": BOOT}
TRUSTED = {"agent_reports_refused": ""}  # agents' writes admission-restricted


def with_report(report: dict[str, object], phase: str = "Fencing") -> RemediationView:
    return remediation(phase, fence=fence_status(), agentReport=report)


def check_report(report: dict[str, object], **obs: Any) -> Acknowledgement | Refusal | None:
    rem = with_report(report)
    fence = trusted_fence(rem, observe(T0), CFG.order_key)
    assert not isinstance(fence, Refusal)
    return trusted_report(rem, observe(T0, **obs), fence)


def test_an_agent_report_counts_only_while_agents_writes_are_restricted() -> None:
    refused = check_report(REPORT)
    assert isinstance(refused, Refusal) and refused.reason is Reason.AGENT_WRITES_UNRESTRICTED
    ack = check_report(REPORT, **TRUSTED)
    assert isinstance(ack, Acknowledgement) and ack.via == "agentReport"


def test_a_report_without_a_boot_never_defaults_to_the_orders_boot() -> None:
    no_boot = {k: v for k, v in REPORT.items() if k != "bootId"}
    refused = check_report(no_boot, **TRUSTED)
    assert isinstance(refused, Refusal) and refused.reason is Reason.AGENT_REPORT_WITHOUT_BOOT
    other = check_report({**REPORT, "bootId": NEW_BOOT}, **TRUSTED)
    assert isinstance(other, Refusal) and other.reason is Reason.AGENT_REPORT_WITHOUT_BOOT


def test_a_forged_report_proves_nothing_and_is_reported_while_agents_writes_are_unrestricted() -> None:
    # Another node's agent writes an acknowledgement for a node whose agent is alive.
    rem = with_report(REPORT)
    obs = observe(T0 + 200, node(agent_info=agent(heartbeat=T0 + 190)))
    d = decide(rem, obs, CFG)
    assert str(d.phase) != "Fenced"
    assert [r.reason for r in refusals(rem, obs, CFG.order_key, 5.0)] == [Reason.AGENT_WRITES_UNRESTRICTED]
    trusted = decide(rem, replace(obs, agent_reports_refused=""), CFG)
    assert str(trusted.phase) == "Fenced"  # the same report, when only the node's own agent can write it


def test_the_order_must_verify_with_this_controllers_key_for_this_remediation() -> None:
    assert not isinstance(verified_order(remediation("Fencing", fence=fence_status()), CFG.order_key), Refusal)
    other_key = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
    for token in (order_token(key=other_key), order_token(uid="uid-other"), order_token(node="node-2"),
                  "nwf1.garbage.sig", ""):
        fence = fence_status()
        fence["order"] = token
        result = verified_order(remediation("Fencing", fence=fence), CFG.order_key)
        assert isinstance(result, Refusal) and result.reason is Reason.ORDER_NOT_OURS, token


def test_the_witness_of_another_order_is_not_this_orders() -> None:
    rem = remediation("Fencing", fence=fence_status())
    ack = {"at": format_time(T0 + 1), "lastFeedAt": format_time(T0 + 1), "watchdogTimeoutSeconds": 60}
    old = seen(fence_status(issued_at=T0 - 5000), ack=ack)
    fence = trusted_fence(rem, observe(T0, witness=old), CFG.order_key)
    assert not isinstance(fence, Refusal) and fence.ack is None


# -- the agent-side assumptions, checked ------------------------------------------------------

def stale_agent(**kw: Any) -> Any:
    return node(agent_info=agent(heartbeat=T0 - 3600, **kw))


@pytest.mark.parametrize(("published", "reason"), [
    ({"keys": ("0123456789abcdef",)}, "AgentDistrustsKey"),  # the key-rotation mistake
    ({"keys": None}, "AgentDistrustsKey"),  # an agent that publishes nothing
    ({"offset": None}, "ClockSkewUnmeasured"),
    ({"offset": -60.0, "offset_error": 0.5}, "ClockSkewTooLarge"),  # its clock 60 s behind
    ({"offset": 7.0, "offset_error": 1.0}, "ClockSkewTooLarge"),
])
def test_an_agent_whose_assumptions_fail_is_not_counted_on(published: dict[str, Any], reason: str) -> None:
    rem = remediation("Fencing", fence=fence_status())
    # Long past every deadline, its heartbeat stale: without the checks this would be a fence.
    d = decide(rem, observe(T0 + 500, stale_agent(**published)), CFG)
    assert (str(d.phase), d.status["escalation"]["cause"]) == ("AwaitingApproval", reason), d.message
    assert reason in [str(r.reason) for r in refusals(rem, observe(T0, stale_agent(**published)), CFG.order_key, 5.0)]
    # Before this controller has sent the order, it waits (the agent's refusal will name the problem).
    waiting = decide(rem, observe(T0 + 500, stale_agent(**published), witness=seen(delivered=False)), CFG)
    assert (str(waiting.phase), str(waiting.reason)) == ("Fencing", "FenceOrdered")


def test_a_refusal_takes_precedence_and_names_the_agents_reason() -> None:
    rem = remediation("Fencing", fence=fence_status())
    obs = observe(T0 + 10, stale_agent(keys=("0123456789abcdef",)), witness=seen(refusal="Rejected/BadSignature"))
    d = decide(rem, obs, CFG)
    assert d.status["escalation"]["cause"] == "OrderRefused" and "BadSignature" in d.status["escalation"]["causeMessage"]


def test_a_measured_skew_within_the_bound_counts_its_worst_case_in_the_deadline() -> None:
    # Bound 5 s; the agent measured +4 s ± 3 s: not provably beyond, so 7 s are counted.
    rem = remediation("Fencing", fence=fence_status())
    base = decide(rem, observe(T0 + 1, stale_agent()), CFG).status["fence"]["evidence"]
    wide = decide(rem, observe(T0 + 1, stale_agent(offset=4.0, offset_error=3.0)), CFG).status["fence"]["evidence"]
    assert wide["inputs"]["maxClockSkewSeconds"] == 7.0
    assert parse_time(wide["deadline"]) == pytest.approx(parse_time(base["deadline"]) + 2.0)  # type: ignore[operator]


def test_an_acknowledging_agent_trusts_the_key_but_its_clock_is_still_checked() -> None:
    ack = {"at": format_time(T0 + 1), "via": "direct", "lastFeedAt": format_time(T0 + 0.5),
           "watchdogTimeoutSeconds": 60}
    rem = remediation("Fencing", fence=fence_status())
    ok = decide(rem, observe(T0 + 200, stale_agent(keys=None), witness=seen(ack=ack)), CFG)
    assert str(ok.phase) == "Fenced"
    behind = decide(rem, observe(T0 + 200, stale_agent(offset=-60.0), witness=seen(ack=ack)), CFG)
    assert behind.status["escalation"]["cause"] == "ClockSkewTooLarge"


def test_an_approval_counts_only_after_the_signed_order() -> None:
    """The webhook's field: an operator's "the node is off" must postdate the order it
    answers; one copied from before (or forged with an old date) proves nothing."""
    def fenced_by_operator(approved_at: float) -> RemediationView:
        return remediation("Fenced", phase_since=T0 + 60, fence=fence_status(),
                           escalation={"kind": "OperatorApproval", "startedAt": format_time(T0 + 5)},
                           approval={"approvedBy": "alice", "approvedAt": format_time(approved_at)},
                           recovery={"strategy": "OutOfServiceTaint"})
    alive = observe(T0 + 61, node(agent_info=agent(heartbeat=T0 + 60)))  # no self-fencing proof
    assert str(decide(fenced_by_operator(T0 + 30), alive, CFG).phase) == "Recovering"
    refused = decide(fenced_by_operator(T0 - 30), alive, CFG)
    assert (str(refused.phase), str(refused.reason)) == ("Fencing", "ProofNotRederived")
