"""The remediation state machine: a pure transition function.

    decide(remediation, observations, config) -> Decision(phase, reason, message, status, actions)

Nothing here does I/O. The loop writes the decision's status (phase, reason, history and
the intent subtrees) with the resourceVersion it read BEFORE it runs the actions, and
writes their results after; so a crash at any point resumes from the stored status
without a second fence order, a lost step or a stuck taint. Every phase's timeout and
outcome is listed in docs/fencing-protocol.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from controller.evidence import (
    Evidence,
    FenceTiming,
    Verdict,
    confirmed_power_off,
    evaluate,
    order_lifetime_ok,
)
from controller.model import (
    Escalation,
    EvidenceRule,
    FenceRecord,
    Observations,
    Phase,
    Reason,
    RemediationView,
    Strategy,
    format_time,
    parse_time,
)
from controller.proof import (
    Refusal,
    clock_skew,
    key_distrusted,
    operator_confirmed,
    trusted_fence,
    trusted_report,
    witness_for,
)
from core.fence_order import OrderKey
from core.remediation import MANUAL_SOURCES


class ActionKind(enum.StrEnum):
    ISSUE_ORDER = "IssueOrder"  # sign an order and record it (the intent), then deliver it
    DELIVER_ORDER = "DeliverOrder"  # deliver the recorded order, directly and through peers
    CHECK_PEER_SILENCE = "CheckPeerSilence"  # ask every other agent when it last said "healthy"
    RUN_FENCE_AGENT = "RunFenceAgent"  # the escalation command (attempt already recorded)
    APPLY_TAINT = "ApplyTaint"
    DELETE_RESOURCES = "DeleteResources"
    REMOVE_TAINT = "RemoveTaint"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    phase: Phase
    reason: str  # a Reason, or the stored reason of a phase another writer set
    message: str
    status: dict[str, Any] = field(default_factory=dict)  # status subtrees to set
    actions: tuple[Action, ...] = ()
    requeue_s: float | None = None  # look again at most this much later


@dataclass(frozen=True)
class MachineConfig:
    timing: FenceTiming
    order_ttl_s: float = 1800.0
    confirm_timeout_s: float = 300.0
    operator_grace_s: float = 5.0  # a person's request waits this long before its fence order
    approval_timeout_s: float = 3600.0
    kubelet_restart_first: bool = False
    kubelet_restart_wait_s: float = 60.0
    fence_timeout_s: float = 900.0
    escalation_timeout_s: float = 3600.0
    fence_agent_configured: bool = False
    fence_agent_attempts: int = 3
    recover_timeout_s: float = 120.0
    node_not_back_after_s: float = 1800.0
    alive_grace_s: float = 30.0  # a node seen alive after its fence: how long to wait for its new boot
    silence_settle_s: float = 2.0  # after the order is stored, before peers' "healthy" answers are final
    order_key: OrderKey | None = None  # this controller's public key: stored orders must verify with it


def _stay(rem: RemediationView, reason: str, message: str, status: dict[str, Any] | None = None,
          actions: tuple[Action, ...] = (), requeue_s: float | None = None) -> Decision:
    return Decision(rem.phase, reason, message, status or {}, actions, requeue_s)


def _elapsed(rem: RemediationView, now: float) -> float:
    return now - (rem.phase_since if rem.phase_since is not None else now)


def decide(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    handler = {
        Phase.PENDING: _pending,
        Phase.AWAITING_APPROVAL: _awaiting_approval,
        Phase.CONFIRMING: _confirming,
        Phase.FENCING: _fencing,
        Phase.FENCED: _fenced,
        Phase.RECOVERING: _recovering,
        Phase.AWAITING_NODE_READY: _awaiting_node_ready,
    }.get(rem.phase)
    if handler is None:
        return _terminal(rem, obs)
    if rem.fence is not None and rem.phase in (Phase.PENDING, Phase.CONFIRMING):
        # An order exists: past the point of no return, whatever the phase says.
        return Decision(Phase.FENCING, Reason.FENCE_ORDERED,
                        "a fence order is already recorded: the fence in progress completes")
    return handler(rem, obs, cfg)


# -- before fencing: nothing has been ordered yet, so cancelling is always safe -----------


def _node_recovered(rem: RemediationView, obs: Observations, skew: float) -> bool:
    if rem.force:
        return False  # forced on a Ready node: being Ready is what the person overrode
    node = obs.node
    if not node.exists or node.ready != "True" or node.lease_renewed_at is None:
        return False
    return obs.now - node.lease_renewed_at <= node.lease_duration_s + skew


def _pending(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    if rem.approval_required and not rem.approved_since(rem.phase_since):
        return Decision(Phase.AWAITING_APPROVAL, Reason.AWAITING_APPROVAL,
                        "the node's policy group needs a person's approval before fencing")
    return Decision(Phase.CONFIRMING, Reason.STARTED, "confirming that the node is down")


def _awaiting_approval(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    if rem.fence is not None:
        return _awaiting_operator_confirmation(rem, obs, cfg)
    if _node_recovered(rem, obs, cfg.timing.max_clock_skew_s):
        return Decision(Phase.CANCELLED, Reason.NODE_RECOVERED, "the node is Ready again; nothing was fenced")
    if rem.approved_since(rem.phase_since):
        return Decision(Phase.CONFIRMING, Reason.APPROVED, "approved; confirming that the node is down")
    if _elapsed(rem, obs.now) > cfg.approval_timeout_s:
        return Decision(Phase.FAILED, Reason.APPROVAL_TIMEOUT,
                        f"no approval within {cfg.approval_timeout_s:g}s; nothing was fenced")
    if rem.force:
        # The webhook's ForceNeedsApproval says what approving does (reset a machine that
        # reports Ready); waiting must not overwrite that warning with a plain one.
        return _stay(rem, Reason.FORCE_NEEDS_APPROVAL, "FORCED on a node that reports Ready: "
                     "waiting for a second person's approval", requeue_s=30.0)
    return _stay(rem, Reason.AWAITING_APPROVAL, "waiting for a person's approval "
                 f"(POST /api/v1/remediations/{rem.node}/approve)", requeue_s=30.0)


def _confirming(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    node, now, skew = obs.node, obs.now, cfg.timing.max_clock_skew_s
    if not node.exists:
        return Decision(Phase.CANCELLED, Reason.NODE_GONE,
                        "the Node object is gone; its pods are garbage-collected by Kubernetes")
    if _node_recovered(rem, obs, skew):
        return Decision(Phase.CANCELLED, Reason.NODE_RECOVERED, "the node is Ready again; nothing was fenced")
    if _elapsed(rem, now) > cfg.confirm_timeout_s:
        return Decision(Phase.FAILED, Reason.NOT_CONFIRMED,
                        f"the node could not be confirmed down within {cfg.confirm_timeout_s:g}s "
                        f"(last reason: {rem.reason}); nothing was fenced")
    if obs.paused:
        return _stay(rem, Reason.PAUSED, "remediation is paused by the operators; no fence will start")
    fence = (Action(ActionKind.ISSUE_ORDER, {"action": "fence"}),)
    if rem.trigger_source in MANUAL_SOURCES:
        left = cfg.operator_grace_s - _elapsed(rem, now)
        if left > 0:
            return _stay(rem, Reason.GRACE_WINDOW,
                         f"a person asked for this remediation: the fence order waits {left:.1f}s more "
                         "so that it can still be cancelled", requeue_s=left)
        return Decision(Phase.FENCING, Reason.CONFIRMED_BY_OPERATOR,
                        "an operator asked for this remediation: fencing", actions=fence)
    if node.ready == "True":
        return _stay(rem, Reason.AWAITING_CONFIRMATION, "the node still reports Ready", requeue_s=5.0)
    lease_age = None if node.lease_renewed_at is None else now - node.lease_renewed_at
    if lease_age is not None and lease_age <= node.lease_duration_s + skew:
        return _stay(rem, Reason.NODE_LEASE_FRESH,
                     f"the node is not Ready but its kubelet renewed its Lease {lease_age:.0f}s ago: "
                     "the machine is alive", requeue_s=5.0)
    if obs.outage_suspected:
        return _stay(rem, Reason.CONTROL_PLANE_OUTAGE,
                     "more than half of the agents' heartbeats are stale: suspecting a control-plane "
                     "outage, not a node failure; not fencing", requeue_s=5.0)
    if obs.peers is None:
        return _stay(rem, Reason.AWAITING_CONFIRMATION, "asking peers whether they reach the node's agent",
                     requeue_s=1.0)
    if obs.peers.reachable > 0:
        restart = rem.kubelet_restart
        if cfg.kubelet_restart_first and not restart.get("issuedAt"):
            return _stay(rem, Reason.KUBELET_RESTART_ORDERED,
                         "the agent is reachable: asking it to restart the kubelet first",
                         actions=(Action(ActionKind.ISSUE_ORDER, {"action": "restart-kubelet"}),),
                         requeue_s=5.0)
        issued = parse_time(restart.get("issuedAt"))
        if issued is not None and now - issued < cfg.kubelet_restart_wait_s:
            return _stay(rem, Reason.KUBELET_RESTART_ORDERED, "waiting for the restarted kubelet",
                         requeue_s=5.0)
        reason = Reason.KUBELET_RESTART_DID_NOT_HELP if issued is not None else Reason.CONFIRMED_AGENT_REACHABLE
        return Decision(Phase.FENCING, reason,
                        f"the node is down but {obs.peers.reachable} peer(s) reach its agent: fencing "
                        "(the agent will acknowledge)", actions=fence)
    return Decision(Phase.FENCING, Reason.CONFIRMED_UNREACHABLE,
                    f"the node is not Ready, its Lease is stale and none of {obs.peers.asked} peer(s) "
                    "reach its agent: fencing", actions=fence)


# -- fencing: the safety core -------------------------------------------------------------


def _rebooted(rem: RemediationView, obs: Observations) -> bool:
    node, fence = obs.node, rem.fence
    return (fence is not None and node.exists and node.ready == "True" and bool(node.boot_id)
            and bool(fence.boot_id) and node.boot_id != fence.boot_id)


def _fenced_by(evidence: Evidence, now: float) -> Decision:
    return Decision(Phase.FENCED, Reason.FENCE_PROVEN, evidence.message,
                    {"fence": {"evidence": evidence.record(now)}})


def _agent_evidence(rem: RemediationView, obs: Observations, cfg: MachineConfig,
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


def _fencing(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    now = obs.now
    if rem.fence is None:  # entered Fencing and stopped before the order was recorded
        return _stay(rem, Reason.FENCE_ORDERED, "issuing the fence order",
                     actions=(Action(ActionKind.ISSUE_ORDER, {"action": "fence"}),), requeue_s=1.0)
    trusted = trusted_fence(rem, obs, cfg.order_key)
    if isinstance(trusted, Refusal):  # not our order: no agent can be counted on to act on it
        if rem.escalation_state.get("kind"):
            return _escalation(rem, obs, cfg)
        return _escalate(rem, obs, cfg, trusted.reason, trusted.message, ())
    fence = trusted
    if _rebooted(rem, obs):
        evidence = Evidence(Verdict.SATISFIED, Reason.NODE_REBOOTED,
                            f"the node is Ready again with a new boot ({obs.node.boot_id[:8]}): it was reset",
                            EvidenceRule.NODE_REBOOTED, None,
                            {"bootIdAtFence": fence.boot_id, "bootIdNow": obs.node.boot_id})
        return Decision(Phase.SUCCEEDED, Reason.NODE_REBOOTED, evidence.message,
                        {"fence": {"evidence": evidence.record(now)}})
    if rem.escalation_state.get("kind"):
        return _escalation(rem, obs, cfg)
    evidence = _agent_evidence(rem, obs, cfg, fence)
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
        return _fenced_by(evidence, now)
    if evidence.verdict is Verdict.ESCALATE or now - fence.issued_at > cfg.fence_timeout_s:
        reason = evidence.reason if evidence.verdict is Verdict.ESCALATE else Reason.FENCE_TIMEOUT
        message = evidence.message if evidence.verdict is Verdict.ESCALATE else (
            f"no proof of fencing within {cfg.fence_timeout_s:g}s ({evidence.message})")
        return _escalate(rem, obs, cfg, reason, message, deliver)
    requeue = None if evidence.deadline is None else max(0.05, evidence.deadline - now)
    status = {"fence": {"evidence": evidence.record(None)}} if evidence.rule else {}
    return _stay(rem, evidence.reason, evidence.message, status, deliver, requeue_s=requeue)


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
        return _stay(rem, Reason.ESCALATED_TO_FENCE_AGENT,
                     f"{message}; powering the node off through its BMC (device {obs.fence_device})",
                     {"escalation": state}, (*deliver, Action(ActionKind.RUN_FENCE_AGENT, {"attempt": 1})))
    if rem.escalation is Escalation.FENCE_AGENT and cfg.fence_agent_configured:
        state.update({"kind": str(Escalation.FENCE_AGENT), "attempts": 1})
        return _stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, f"{message}; running the fence agent",
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
        return _stay(rem, rem.reason, str(rem.raw_status.get("message", "")),
                     {"escalation": {"cause": str(refused.reason), "causeMessage": refused.message[:1000]}},
                     requeue_s=1.0)
    if isinstance(trusted, FenceRecord) and (trusted.ack is not None or rem.agent_report.get("lastFeedAt")):
        # The agent acknowledged after all: its watchdog is proof enough, once due.
        evidence = _agent_evidence(rem, obs, cfg, trusted)
        if evidence.verdict is Verdict.SATISFIED and evidence.rule is EvidenceRule.ACKNOWLEDGED_WATCHDOG:
            return _fenced_by(evidence, now)
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
                return _stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, doing,
                             actions=(Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts}),))
            return _bmc_fence_result(rem, obs, state)
        if state.get("lastExitCode") == 0 and state.get("finishedAt") and succeeded_at is None:
            # A success this process did not see (written before a restart, or by someone
            # else): powering off again is harmless, trusting the record is not.
            attempts = int(state.get("attempts") or 1)
            return _stay(rem, Reason.ESCALATED_TO_FENCE_AGENT,
                         f"running the fence agent again: its recorded success (attempt {attempts}) was not "
                         "seen by this controller", actions=(Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts}),))
        if state.get("lastExitCode") == 0 and succeeded_at is not None:
            finished = succeeded_at
            evidence = Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                                f"the fence agent powered the node off (attempt {state.get('attempts')})",
                                EvidenceRule.FENCE_AGENT, finished,
                                {"attempts": state.get("attempts"), "exitCode": 0,
                                 "finishedAt": state["finishedAt"], "deadBy": state["finishedAt"]})
            return _fenced_by(evidence, now)
        attempts = int(state.get("attempts") or 0)
        finished_attempt = int(state.get("finishedAttempt") or 0)
        if finished_attempt < attempts:  # recorded but no result: it was interrupted; run it again
            return _stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, f"running the fence agent (attempt {attempts})",
                         actions=(Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts}),))
        if attempts >= cfg.fence_agent_attempts:
            return Decision(Phase.FAILED, Reason.FENCE_AGENT_FAILED,
                            f"the fence agent failed {attempts} time(s) (last exit code "
                            f"{state.get('lastExitCode')}): no taint is applied")
        return _stay(rem, Reason.ESCALATED_TO_FENCE_AGENT, f"retrying the fence agent (attempt {attempts + 1})",
                     {"escalation": {**state, "attempts": attempts + 1}},
                     (Action(ActionKind.RUN_FENCE_AGENT, {"attempt": attempts + 1}),))
    if now - started > cfg.escalation_timeout_s:
        return Decision(Phase.FAILED, Reason.ESCALATION_TIMEOUT,
                        f"no confirmation that the node is off within {cfg.escalation_timeout_s:g}s")
    return _stay(rem, Reason.AWAITING_OPERATOR_CONFIRMATION, "waiting for a person to confirm the node is off",
                 requeue_s=30.0)


_NO_SELF_FENCE = (Reason.NO_AGENT, Reason.AGENT_NOT_SELF_FENCE_CAPABLE)
_BMC_FAILURES = {"CredentialsRefused": Reason.FENCE_AGENT_REFUSED, "Unreachable": Reason.FENCE_AGENT_UNREACHABLE,
                 "TimedOut": Reason.FENCE_AGENT_TIMED_OUT, "PoweredOnAgain": Reason.FENCE_AGENT_POWERED_ON_AGAIN}


def _bmc_fence_result(rem: RemediationView, obs: Observations, state: dict[str, Any]) -> Decision:
    """An inventory fence agent has run: a confirmed power-off is proof; anything else
    ends in a person's confirmation (no taint meanwhile), with the cause named."""
    evidence = confirmed_power_off(state)
    if evidence is not None:
        return _fenced_by(evidence, obs.now)
    reason = _BMC_FAILURES.get(str(state.get("outcome")), Reason.FENCE_AGENT_FAILED)
    message = (f"{state.get('summary') or 'the fence agent did not confirm a power-off'}: the node is NOT "
               "known to be off and no taint is applied; a person must confirm it is powered off "
               f"(POST /api/v1/remediations/{rem.node}/approve)")
    escalation = {"kind": str(Escalation.OPERATOR_APPROVAL), "cause": str(reason), "causeMessage": message[:1000],
                  "startedAt": format_time(obs.now)}
    return Decision(Phase.AWAITING_APPROVAL, reason, message, {"escalation": escalation})


def _awaiting_operator_confirmation(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    if _rebooted(rem, obs):
        return Decision(Phase.SUCCEEDED, Reason.NODE_REBOOTED,
                        f"the node is Ready again with a new boot ({obs.node.boot_id[:8]}): it was reset")
    if rem.approved_since(rem.phase_since):
        approval = rem.raw_status.get("approval") or {}
        evidence = Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                            f"{approval.get('approvedBy', 'an operator')} confirmed the node is powered off",
                            EvidenceRule.OPERATOR_CONFIRMED_OFF, None,
                            {"approvedBy": approval.get("approvedBy", ""), "approvedAt": approval.get("approvedAt", ""),
                             "deadBy": approval.get("approvedAt", "")})
        return _fenced_by(evidence, obs.now)
    return _escalation(rem, obs, cfg)


# -- recovery ----------------------------------------------------------------------------


def _alive_after_fence(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> bool:
    """The kubelet renewed its Lease after the node must have been dead: it was not fenced,
    or it has already rebooted and is coming back."""
    evidence = (rem.fence.evidence if rem.fence else None) or {}
    dead_by = parse_time((evidence.get("inputs") or {}).get("deadBy"))
    renewed = obs.node.lease_renewed_at
    return dead_by is not None and renewed is not None and renewed > dead_by + cfg.timing.max_clock_skew_s


def _reason_since(rem: RemediationView) -> float | None:
    """When the current reason was set (the newest history entry, if it is that one)."""
    history = rem.raw_status.get("history") or []
    if history and isinstance(history[-1], dict) and history[-1].get("reason") == rem.reason:
        return parse_time(history[-1].get("at")) or rem.phase_since
    return rem.phase_since


def _ready_on_fenced_boot(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    """The Node says Ready on the boot it had when it was fenced. That alone does not show a
    node that survived its fence: Kubernetes flips Ready to Unknown only a grace period after
    the last heartbeat, so a kubelet that came back just before the reset leaves Ready=True
    behind; and a node that rebooted quickly may renew its Lease before it posts its new
    boot. Failed/FenceNotObserved only once its kubelet renewed the Lease after the node must
    have been dead and no new boot appeared within `alive_grace_s`."""
    fence_boot = rem.fence.boot_id if rem.fence else ""
    not_observed = Decision(Phase.FAILED, Reason.FENCE_NOT_OBSERVED,
                            f"the node is Ready on the same boot ({fence_boot[:8]}) it had when it was fenced: "
                            "it was never reset. The out-of-service taint stays; investigate before removing it")
    evidence = (rem.fence.evidence if rem.fence else None) or {}
    if parse_time((evidence.get("inputs") or {}).get("deadBy")) is None:
        return not_observed  # nothing to tell a stale condition from a live node: assume the worst
    if not _alive_after_fence(rem, obs, cfg):
        return _stay(rem, Reason.AWAITING_NODE,
                     "workloads recovered; the node still shows Ready from before it was fenced (its kubelet "
                     "has not renewed its Lease since): waiting for it to come back",
                     requeue_s=min(5.0, cfg.node_not_back_after_s))
    since = _reason_since(rem)
    if rem.reason == Reason.NODE_ALIVE_AFTER_FENCE and since is not None and obs.now - since > cfg.alive_grace_s:
        return not_observed
    return _stay(rem, Reason.NODE_ALIVE_AFTER_FENCE,
                 "the node's kubelet renewed its Lease after the node must have been reset, and the Node "
                 "still shows the fenced boot: waiting for its new boot before deciding; the taint stays",
                 requeue_s=2.0)


def _node_alive_check(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision | None:
    if not _alive_after_fence(rem, obs, cfg):
        return None
    if _rebooted(rem, obs):
        return Decision(Phase.SUCCEEDED, Reason.NODE_REBOOTED,
                        f"the node came back with a new boot ({obs.node.boot_id[:8]}) before recovery "
                        "was needed: no taint is applied")
    if rem.reason == Reason.NODE_ALIVE_AFTER_FENCE and _elapsed(rem, obs.now) > cfg.alive_grace_s:
        return Decision(Phase.FAILED, Reason.FENCE_NOT_OBSERVED,
                        "the node's kubelet kept renewing its Lease on the same boot after it must have been "
                        "reset: the fence was NOT observed; no taint is applied")
    return _stay(rem, Reason.NODE_ALIVE_AFTER_FENCE,
                 "the node's kubelet renewed its Lease after the node must have been reset: waiting for its "
                 "new boot before deciding; no taint meanwhile", requeue_s=2.0)


def _unproven(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision | None:
    """Recovery acts only on a proof derived again, at that moment, from inputs the
    controller can trust (controller.proof). The stored phase and `fence.evidence` are a
    record, so a status that claims a fence (hand-written, or written by something else)
    is refused: back to fencing, where the real evidence is gathered, or Failed when no
    order of ours is recorded."""
    fence = trusted_fence(rem, obs, cfg.order_key) if rem.fence is not None else None
    if not isinstance(fence, FenceRecord):
        why = fence.message if isinstance(fence, Refusal) else "no fence order is recorded"
        return Decision(Phase.FAILED, Reason.FENCE_NOT_PROVEN,
                        f"the stored status says {rem.phase}, but {why}: refusing to recover; "
                        "no taint is applied")
    kind = rem.escalation_state.get("kind")
    if kind == str(Escalation.FENCE_AGENT) and witness_for(obs.witness, rem).fence_agent_succeeded_at is not None:
        return None
    if operator_confirmed(rem, fence):
        return None
    evidence = _agent_evidence(rem, obs, cfg, fence)
    if evidence.verdict is Verdict.SATISFIED:
        return None
    return Decision(Phase.FENCING, Reason.PROOF_NOT_REDERIVED,
                    f"the stored status says {rem.phase}, but the fence cannot be proven again from what this "
                    f"controller observed and can authenticate ({evidence.reason}: {evidence.message}); "
                    "no taint is applied")


def _fenced(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    refused = None if rem.dry_run else _unproven(rem, obs, cfg)
    if refused is not None:
        return refused
    alive = _node_alive_check(rem, obs, cfg)
    if alive is not None:
        return alive
    strategy = rem.strategy
    if strategy is Strategy.OUT_OF_SERVICE_TAINT and not obs.oos_taint_supported:
        strategy = Strategy.RESOURCE_DELETION
    recovery = {"strategy": str(strategy), "requestedAt": format_time(obs.now)}
    if rem.dry_run:
        return Decision(Phase.RECOVERING, Reason.RECOVERY_STARTED,
                        f"dry run: would recover with {strategy}", {"recovery": recovery})
    kind = ActionKind.APPLY_TAINT if strategy is Strategy.OUT_OF_SERVICE_TAINT else ActionKind.DELETE_RESOURCES
    note = "" if strategy is rem.strategy else " (the server is older than 1.28: falling back)"
    return Decision(Phase.RECOVERING, Reason.RECOVERY_STARTED, f"recovering with {strategy}{note}",
                    {"recovery": recovery}, (Action(kind),))


def _recovering(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    rec = rem.recovery
    if not obs.node.exists:
        return Decision(Phase.SUCCEEDED, Reason.NODE_GONE, "the Node object is gone")
    if rem.dry_run:
        return Decision(Phase.AWAITING_NODE_READY, Reason.AWAITING_NODE,
                        f"dry run: {rec.get('strategy')} would have been applied; waiting for the node")
    strategy = Strategy(rec.get("strategy") or rem.strategy)
    if strategy is Strategy.OUT_OF_SERVICE_TAINT:
        if obs.node.has_oos_taint:
            status = {} if rec.get("taintAppliedAt") else {"recovery": {"taintAppliedAt": format_time(obs.now)}}
            return Decision(Phase.AWAITING_NODE_READY, Reason.TAINT_APPLIED,
                            "the out-of-service taint is on the node: Kubernetes moves its workloads", status)
        action = Action(ActionKind.APPLY_TAINT)
    else:
        if rec.get("podsDeleted") is not None:
            return Decision(Phase.AWAITING_NODE_READY, Reason.RESOURCES_DELETED,
                            f"deleted {rec.get('podsDeleted')} pod(s) and {rec.get('volumeAttachmentsDeleted', 0)} "
                            "VolumeAttachment(s) of the node")
        action = Action(ActionKind.DELETE_RESOURCES)
    if _elapsed(rem, obs.now) > cfg.recover_timeout_s:
        return Decision(Phase.FAILED, Reason.RECOVERY_FAILED,
                        f"recovery with {strategy} did not complete within {cfg.recover_timeout_s:g}s "
                        f"(last: {rem.reason})")
    alive = _node_alive_check(rem, obs, cfg)
    if alive is not None:
        return alive
    refused = _unproven(rem, obs, cfg)  # the moment of tainting (or deleting)
    if refused is not None:
        return refused
    return _stay(rem, Reason.RECOVERY_STARTED, f"recovering with {strategy}", actions=(action,), requeue_s=1.0)


def _awaiting_node_ready(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    node = obs.node
    if not node.exists:
        return Decision(Phase.SUCCEEDED, Reason.NODE_GONE, "the Node object is gone")
    if node.ready == "True":
        if rem.dry_run:
            return Decision(Phase.SUCCEEDED, Reason.DRY_RUN_COMPLETE, "dry run complete: the node is Ready")
        fence_boot = rem.fence.boot_id if rem.fence else ""
        if fence_boot and node.boot_id == fence_boot:
            return _ready_on_fenced_boot(rem, obs, cfg)
        if node.has_oos_taint:
            return _stay(rem, Reason.NODE_RETURNED, "the node is back with a new boot: removing the taint",
                         actions=(Action(ActionKind.REMOVE_TAINT),), requeue_s=1.0)
        status = {} if rem.recovery.get("taintRemovedAt") or not rem.recovery.get("taintAppliedAt") else \
            {"recovery": {"taintRemovedAt": format_time(obs.now)}}
        return Decision(Phase.SUCCEEDED, Reason.NODE_RETURNED,
                        f"the node is Ready with a new boot ({node.boot_id[:8]}); nodewarden's taint is removed",
                        status)
    waited = _elapsed(rem, obs.now)
    if waited > cfg.node_not_back_after_s:
        if rem.reason != Reason.NODE_NOT_BACK:
            return _stay(rem, Reason.NODE_NOT_BACK,
                         f"the node has not come back for {waited:.0f}s; the taint stays (its workloads are "
                         "already recovered)", requeue_s=60.0)
        return _stay(rem, Reason.NODE_NOT_BACK, rem.raw_status.get("message", ""), requeue_s=60.0)
    return _stay(rem, Reason.AWAITING_NODE, "workloads recovered; waiting for the node to come back",
                 requeue_s=min(5.0, cfg.node_not_back_after_s))


def _terminal(rem: RemediationView, obs: Observations) -> Decision:
    """Finished remediations only ever remove a taint left behind on a node that came back."""
    message = str(rem.raw_status.get("message", ""))
    reason = rem.reason
    rec, node, fence = rem.recovery, obs.node, rem.fence
    if (rem.phase is Phase.FAILED and rem.reason != Reason.FENCE_NOT_OBSERVED and rec.get("taintAppliedAt")
            and not rec.get("taintRemovedAt") and fence is not None and node.exists and node.ready == "True"
            and node.boot_id and node.boot_id != fence.boot_id):
        if node.has_oos_taint:
            return Decision(rem.phase, reason, message, actions=(Action(ActionKind.REMOVE_TAINT),))
        return Decision(rem.phase, reason, message, {"recovery": {"taintRemovedAt": format_time(obs.now)}})
    return Decision(rem.phase, reason, message)
