"""The state machine at the fence: Fencing and its escalation (the safety core).

Pure functions of (remediation, observations, config). Fencing issues the signed order,
has it delivered, and proves the fence only from evidence this controller can trust
(controller.proof, controller.evidence). Without proof within `fence_timeout_s`, or on a
failed agent-side assumption, it escalates by the remediation's rung: the node's BMC from
the fence inventory, the configured fence agent, or a person's confirmation that the node
is off; with no rung left it fails and no taint is ever applied.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.decision import Action, ActionKind, Decision, MachineConfig, stay
from controller.evidence import Evidence, Verdict, confirmed_power_off, evaluate, order_lifetime_ok
from controller.model import (
    Escalation,
    EvidenceRule,
    FenceRecord,
    Observations,
    Phase,
    Reason,
    RemediationView,
    format_time,
    parse_time,
)
from controller.proof import (
    Refusal,
    clock_skew,
    key_distrusted,
    trusted_fence,
    trusted_report,
    witness_for,
)


def rebooted(rem: RemediationView, obs: Observations) -> bool:
    node, fence = obs.node, rem.fence
    return (fence is not None and node.exists and node.ready == "True" and bool(node.boot_id)
            and bool(fence.boot_id) and node.boot_id != fence.boot_id)


def fenced_by(evidence: Evidence, now: float) -> Decision:
    return Decision(Phase.FENCED, Reason.FENCE_PROVEN, evidence.message,
                    {"fence": {"evidence": evidence.record(now)}})


def agent_evidence(rem: RemediationView, obs: Observations, cfg: MachineConfig,
                    fence: FenceRecord) -> Evidence:
    """The self-fencing rules, on trusted inputs only (see controller.proof), once the
    agent-side assumptions are checked. A failed assumption escalates, but only once this
    controller has sent the order and waited `ack_timeout_s` for an answer: the agent's own
    refusal, if it comes, is what the escalation names."""
    report = trusted_report(rem, obs, fence)
    timing = cfg.timing
    delivered = witness_for(obs.witness, rem).delivery_attempted
    if obs.node.agent.present and not (fence.refusal_reason and fence.ack is None):
        # An agent that acknowledged took the order: it trusts the key, whatever it published.
        distrust = None if fence.ack is not None else key_distrusted(obs.node.agent, cfg.order_key)
        skew = clock_skew(obs.node.agent, timing.max_clock_skew_s)
        problem = distrust or (skew if isinstance(skew, Refusal) else None)
        if problem is not None:
            if not delivered or obs.now - fence.issued_at <= timing.ack_timeout_s:
                return Evidence(Verdict.WAITING, Reason.FENCE_ORDERED,
                                f"{problem.message}; waiting up to {timing.ack_timeout_s:g}s for its answer to the order")
            return Evidence(Verdict.ESCALATE, problem.reason, problem.message)
        if not isinstance(skew, Refusal):
            timing = replace(timing, max_clock_skew_s=skew)
    return evaluate(obs.node.agent, obs.node.boot_id or fence.boot_id, fence,
                    None if isinstance(report, Refusal) else report, timing, obs.now,
                    obs.outage_suspected, delivered)


def fencing(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    now = obs.now
    if rem.fence is None:  # entered Fencing and stopped before the order was recorded
        return stay(rem, Reason.FENCE_ORDERED, "issuing the fence order",
                     actions=(Action(ActionKind.ISSUE_ORDER, {"action": "fence"}),), requeue_s=1.0)
    trusted = trusted_fence(rem, obs, cfg.order_key)
    if isinstance(trusted, Refusal):  # not our order: no agent can be counted on to act on it
        if rem.escalation_state.get("kind"):
            return _escalation(rem, obs, cfg)
        return _escalate(rem, obs, cfg, trusted.reason, trusted.message, ())
    fence = trusted
    if rebooted(rem, obs):
        evidence = Evidence(Verdict.SATISFIED, Reason.NODE_REBOOTED,
                            f"the node is Ready again with a new boot ({obs.node.boot_id[:8]}): it was reset",
                            EvidenceRule.NODE_REBOOTED, None,
                            {"bootIdAtFence": fence.boot_id, "bootIdNow": obs.node.boot_id})
        return Decision(Phase.SUCCEEDED, Reason.NODE_REBOOTED, evidence.message,
                        {"fence": {"evidence": evidence.record(now)}})
    if rem.escalation_state.get("kind"):
        return _escalation(rem, obs, cfg)
    evidence = agent_evidence(rem, obs, cfg, fence)
    if evidence.rule is EvidenceRule.AGENT_HEARTBEAT_STALE and not order_lifetime_ok(
            obs.node.agent, fence.issued_at, fence.expires_at, cfg.timing):
        evidence = Evidence(Verdict.ESCALATE, Reason.ORDER_EXPIRES_TOO_SOON,
                            "the order expires before a cut-off agent is certain to have learned it: "
                            "self-fencing cannot be assumed (raise order_ttl_s)")
    deliver: tuple[Action, ...] = () if rem.dry_run or fence.ack is not None else (Action(ActionKind.DELIVER_ORDER),)
    if (not rem.dry_run and evidence.rule is EvidenceRule.AGENT_HEARTBEAT_STALE
            and not fence.peer_silence.get("complete")
            and now >= fence.issued_at + cfg.silence_settle_s):
        deliver = (*deliver, Action(ActionKind.CHECK_PEER_SILENCE))
    if evidence.verdict is Verdict.SATISFIED:
        return fenced_by(evidence, now)
    if evidence.verdict is Verdict.ESCALATE or now - fence.issued_at > cfg.fence_timeout_s:
        reason = evidence.reason if evidence.verdict is Verdict.ESCALATE else Reason.FENCE_TIMEOUT
        message = evidence.message if evidence.verdict is Verdict.ESCALATE else (
            f"no proof of fencing within {cfg.fence_timeout_s:g}s ({evidence.message})")
        return _escalate(rem, obs, cfg, reason, message, deliver)
    requeue = None if evidence.deadline is None else max(0.05, evidence.deadline - now)
    status = {"fence": {"evidence": evidence.record(None)}} if evidence.rule else {}
    return stay(rem, evidence.reason, evidence.message, status, deliver, requeue_s=requeue)


def _escalate(rem: RemediationView, obs: Observations, cfg: MachineConfig, reason: str, message: str,
              deliver: tuple[Action, ...]) -> Decision:
    now = obs.now
    if rem.dry_run:
        return Decision(Phase.SUCCEEDED, Reason.DRY_RUN_COMPLETE,
                        f"dry run: {message}; would escalate ({rem.escalation})")
    state: dict[str, Any] = {"cause": str(reason), "causeMessage": message[:1000], "startedAt": format_time(now)}
    if obs.fence_device and (rem.escalation is Escalation.FENCE_AGENT or reason in _NO_SELF_FENCE):
        # The node's BMC in the fence inventory: the rung after self-fencing, and the
        # fencing of its own for a node without a watchdog-capable agent.
        state.update({"kind": str(Escalation.FENCE_AGENT), "attempts": 1, "device": obs.fence_device})
        return stay(rem, Reason.ESCALATED_TO_FENCE_AGENT,
                     f"{message}; powering the node off through its BMC (device {obs.fence_device})",
                     {"escalation": state}, (*deliver, Action(ActionKind.RUN_FENCE_AGENT, {"attempt": 1})))
    if rem.escalation is Escalation.FENCE_AGENT and cfg.fence_agent_configured:
        state.update({"kind": str(Escalation.FENCE_AGENT), "attempts": 1})
        return stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, f"{message}; running the fence agent",
                     {"escalation": state}, (*deliver, Action(ActionKind.RUN_FENCE_AGENT, {"attempt": 1})))
    if rem.escalation is Escalation.OPERATOR_APPROVAL:
        state["kind"] = str(Escalation.OPERATOR_APPROVAL)
        return Decision(Phase.AWAITING_APPROVAL, Reason.AWAITING_OPERATOR_CONFIRMATION,
                        f"{message}; a person must confirm the node is powered off "
                        f"(POST /api/v1/remediations/{rem.node}/approve)", {"escalation": state}, deliver)
    why = "no fence agent command is configured" if rem.escalation is Escalation.FENCE_AGENT else \
        "the policy allows no escalation"
    return Decision(Phase.FAILED, Reason.FENCE_NOT_PROVEN,
                    f"{message}; {why}: no taint is applied and the workloads stay where they are")


def _escalation(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    state, now = rem.escalation_state, obs.now
    started = parse_time(state.get("startedAt")) or now
    trusted = trusted_fence(rem, obs, cfg.order_key) if rem.fence is not None else None
    if (isinstance(trusted, FenceRecord) and trusted.refusal_reason and trusted.ack is None
            and state.get("cause") != Reason.ORDER_REFUSED):
        # The agent's refusal came after the escalation began: it is the better reason.
        refused = evaluate(obs.node.agent, obs.node.boot_id, trusted, None, cfg.timing, now, False, True)
        return stay(rem, rem.reason, str(rem.raw_status.get("message", "")),
                     {"escalation": {"cause": str(refused.reason), "causeMessage": refused.message[:1000]}},
                     requeue_s=1.0)
    if isinstance(trusted, FenceRecord) and (trusted.ack is not None or rem.agent_report.get("lastFeedAt")):
        # The agent acknowledged after all: its watchdog is proof enough, once due.
        evidence = agent_evidence(rem, obs, cfg, trusted)
        if evidence.verdict is Verdict.SATISFIED and evidence.rule is EvidenceRule.ACKNOWLEDGED_WATCHDOG:
            return fenced_by(evidence, now)
    if state.get("kind") == str(Escalation.FENCE_AGENT):
        succeeded_at = witness_for(obs.witness, rem).fence_agent_succeeded_at
        if state.get("device"):  # the fence inventory's BMC: one run (its retries inside), then a verdict
            attempts = int(state.get("attempts") or 1)
            # A confirmation this process did not see (written before a restart, or by someone
            # else) is not trusted: powering off again is harmless, trusting the record is not.
            unseen = state.get("lastExitCode") == 0 and succeeded_at is None
            if int(state.get("finishedAttempt") or 0) < attempts or unseen:
                doing = ("powering the node off through its BMC again: its recorded confirmation was not seen "
                         "by this controller" if unseen else "powering the node off through its BMC")
                return stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, doing,
                             actions=(Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts}),))
            return _bmc_fence_result(rem, obs, state)
        if state.get("lastExitCode") == 0 and state.get("finishedAt") and succeeded_at is None:
            # A success this process did not see (written before a restart, or by someone
            # else): powering off again is harmless, trusting the record is not.
            attempts = int(state.get("attempts") or 1)
            return stay(rem, Reason.ESCALATED_TO_FENCE_AGENT,
                         f"running the fence agent again: its recorded success (attempt {attempts}) was not "
                         "seen by this controller", actions=(Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts}),))
        if state.get("lastExitCode") == 0 and succeeded_at is not None:
            finished = succeeded_at
            evidence = Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                                f"the fence agent powered the node off (attempt {state.get('attempts')})",
                                EvidenceRule.FENCE_AGENT, finished,
                                {"attempts": state.get("attempts"), "exitCode": 0,
                                 "finishedAt": state["finishedAt"], "deadBy": state["finishedAt"]})
            return fenced_by(evidence, now)
        attempts = int(state.get("attempts") or 0)
        finished_attempt = int(state.get("finishedAttempt") or 0)
        if finished_attempt < attempts:  # recorded but no result: it was interrupted; run it again
            return stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, f"running the fence agent (attempt {attempts})",
                         actions=(Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts}),))
        if attempts >= cfg.fence_agent_attempts:
            return Decision(Phase.FAILED, Reason.FENCE_AGENT_FAILED,
                            f"the fence agent failed {attempts} time(s) (last exit code "
                            f"{state.get('lastExitCode')}): no taint is applied")
        return stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, f"retrying the fence agent (attempt {attempts + 1})",
                     {"escalation": {**state, "attempts": attempts + 1}},
                     (Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts + 1}),))
    if now - started > cfg.escalation_timeout_s:
        return Decision(Phase.FAILED, Reason.ESCALATION_TIMEOUT,
                        f"no confirmation that the node is off within {cfg.escalation_timeout_s:g}s")
    return stay(rem, Reason.AWAITING_OPERATOR_CONFIRMATION, "waiting for a person to confirm the node is off",
                 requeue_s=30.0)


_NO_SELF_FENCE = (Reason.NO_AGENT, Reason.AGENT_NOT_SELF_FENCE_CAPABLE)
_BMC_FAILURES = {"CredentialsRefused": Reason.FENCE_AGENT_REFUSED, "Unreachable": Reason.FENCE_AGENT_UNREACHABLE,
                 "TimedOut": Reason.FENCE_AGENT_TIMED_OUT, "PoweredOnAgain": Reason.FENCE_AGENT_POWERED_ON_AGAIN}


def _bmc_fence_result(rem: RemediationView, obs: Observations, state: dict[str, Any]) -> Decision:
    """An inventory fence agent has run: a confirmed power-off is proof; anything else
    ends in a person's confirmation (no taint meanwhile), with the cause named."""
    evidence = confirmed_power_off(state)
    if evidence is not None:
        return fenced_by(evidence, obs.now)
    reason = _BMC_FAILURES.get(str(state.get("outcome")), Reason.FENCE_AGENT_FAILED)
    message = (f"{state.get('summary') or 'the fence agent did not confirm a power-off'}: the node is NOT "
               "known to be off and no taint is applied; a person must confirm it is powered off "
               f"(POST /api/v1/remediations/{rem.node}/approve)")
    escalation = {"kind": str(Escalation.OPERATOR_APPROVAL), "cause": str(reason), "causeMessage": message[:1000],
                  "startedAt": format_time(obs.now)}
    return Decision(Phase.AWAITING_APPROVAL, reason, message, {"escalation": escalation})


def _back_without_fence(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> bool:
    """The agent never took the order (no acknowledgement), and since the controller
    turned to a person the kubelet has renewed its Lease on the fenced boot and reports
    Ready: the node is up and nothing fenced it. Ending here applies no taint, so it is
    safe whoever wrote these inputs; a person's FORCE is not overridden."""
    node, fence, skew = obs.node, rem.fence, cfg.timing.max_clock_skew_s
    if rem.force or fence is None or fence.ack is not None or rem.agent_report.get("lastFeedAt"):
        return False
    started = parse_time(rem.escalation_state.get("startedAt"))
    renewed = node.lease_renewed_at
    return (started is not None and renewed is not None and node.exists and node.ready == "True"
            and node.boot_id == fence.boot_id and renewed > started + skew
            and obs.now - renewed <= node.lease_duration_s + skew)


def awaiting_operator_confirmation(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    if rebooted(rem, obs):
        return Decision(Phase.SUCCEEDED, Reason.NODE_REBOOTED,
                        f"the node is Ready again with a new boot ({obs.node.boot_id[:8]}): it was reset")
    if _back_without_fence(rem, obs, cfg):
        # The order is withdrawn: an agent that refused it (an untrusted key, a boot it did
        # not know yet) must not carry it out later, once nothing follows it any more.
        return Decision(Phase.CANCELLED, Reason.NODE_RECOVERED,
                        "the node is Ready again on the same boot and its agent never took the fence order: "
                        "nothing was fenced; the order is withdrawn and no taint is applied",
                        {"fence": {"order": None}})
    if rem.approved_since(rem.phase_since):
        approval = rem.raw_status.get("approval") or {}
        evidence = Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                            f"{approval.get('approvedBy', 'an operator')} confirmed the node is powered off",
                            EvidenceRule.OPERATOR_CONFIRMED_OFF, None,
                            {"approvedBy": approval.get("approvedBy", ""), "approvedAt": approval.get("approvedAt", ""),
                             "deadBy": approval.get("approvedAt", "")})
        return fenced_by(evidence, obs.now)
    return _escalation(rem, obs, cfg)
