"""The state machine before the fence: Pending, AwaitingApproval, Confirming.

Pure functions of (remediation, observations, config). Nothing has been ordered yet, so
cancelling is always safe: a node that is Ready again cancels; a node not confirmed down
within `confirm_timeout_s` fails with nothing fenced. Confirming fences only a node that
is not Ready, whose kubelet Lease is stale, with no suspected control-plane outage and the
peers asked (or on a person's word, after `operator_grace_s`). AwaitingApproval with a
recorded order is the operator-confirmation rung of the escalation (controller.fencing).
"""

from __future__ import annotations

from controller.decision import Action, ActionKind, Decision, MachineConfig, elapsed, stay
from controller.fencing import awaiting_operator_confirmation
from controller.model import (
    Observations,
    Phase,
    Reason,
    RemediationView,
    parse_time,
)
from core.remediation import MANUAL_SOURCES


def _node_recovered(rem: RemediationView, obs: Observations, skew: float) -> bool:
    if rem.force:
        return False  # forced on a Ready node: being Ready is what the person overrode
    node = obs.node
    if not node.exists or node.ready != "True" or node.lease_renewed_at is None:
        return False
    return obs.now - node.lease_renewed_at <= node.lease_duration_s + skew


def pending(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    if rem.approval_required and not rem.approved_since(rem.phase_since):
        return Decision(Phase.AWAITING_APPROVAL, Reason.AWAITING_APPROVAL,
                        "the node's policy group needs a person's approval before fencing")
    return Decision(Phase.CONFIRMING, Reason.STARTED, "confirming that the node is down")


def awaiting_approval(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    if rem.fence is not None:
        return awaiting_operator_confirmation(rem, obs, cfg)
    if _node_recovered(rem, obs, cfg.timing.max_clock_skew_s):
        return Decision(Phase.CANCELLED, Reason.NODE_RECOVERED, "the node is Ready again; nothing was fenced")
    if rem.approved_since(rem.phase_since):
        return Decision(Phase.CONFIRMING, Reason.APPROVED, "approved; confirming that the node is down")
    if elapsed(rem, obs.now) > cfg.approval_timeout_s:
        return Decision(Phase.FAILED, Reason.APPROVAL_TIMEOUT,
                        f"no approval within {cfg.approval_timeout_s:g}s; nothing was fenced")
    if rem.force:
        # The webhook's ForceNeedsApproval says what approving does (reset a machine that
        # reports Ready); waiting must not overwrite that warning with a plain one.
        return stay(rem, Reason.FORCE_NEEDS_APPROVAL, "FORCED on a node that reports Ready: "
                     "waiting for a second person's approval", requeue_s=30.0)
    return stay(rem, Reason.AWAITING_APPROVAL, "waiting for a person's approval "
                 f"(POST /api/v1/remediations/{rem.node}/approve)", requeue_s=30.0)


def confirming(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    node, now, skew = obs.node, obs.now, cfg.timing.max_clock_skew_s
    if not node.exists:
        return Decision(Phase.CANCELLED, Reason.NODE_GONE,
                        "the Node object is gone; its pods are garbage-collected by Kubernetes")
    if _node_recovered(rem, obs, skew):
        return Decision(Phase.CANCELLED, Reason.NODE_RECOVERED, "the node is Ready again; nothing was fenced")
    if elapsed(rem, now) > cfg.confirm_timeout_s:
        return Decision(Phase.FAILED, Reason.NOT_CONFIRMED,
                        f"the node could not be confirmed down within {cfg.confirm_timeout_s:g}s "
                        f"(last reason: {rem.reason}); nothing was fenced")
    if obs.paused:
        return stay(rem, Reason.PAUSED, "remediation is paused by the operators; no fence will start")
    fence = (Action(ActionKind.ISSUE_ORDER, {"action": "fence"}),)
    if rem.trigger_source in MANUAL_SOURCES:
        left = cfg.operator_grace_s - elapsed(rem, now)
        if left > 0:
            return stay(rem, Reason.GRACE_WINDOW,
                         f"a person asked for this remediation: the fence order waits {left:.1f}s more "
                         "so that it can still be cancelled", requeue_s=left)
        return Decision(Phase.FENCING, Reason.CONFIRMED_BY_OPERATOR,
                        "an operator asked for this remediation: fencing", actions=fence)
    if node.ready == "True":
        return stay(rem, Reason.AWAITING_CONFIRMATION, "the node still reports Ready", requeue_s=5.0)
    lease_age = None if node.lease_renewed_at is None else now - node.lease_renewed_at
    if lease_age is not None and lease_age <= node.lease_duration_s + skew:
        return stay(rem, Reason.NODE_LEASE_FRESH,
                     f"the node is not Ready but its kubelet renewed its Lease {lease_age:.0f}s ago: "
                     "the machine is alive", requeue_s=5.0)
    if obs.outage_suspected:
        return stay(rem, Reason.CONTROL_PLANE_OUTAGE,
                     "more than half of the agents' heartbeats are stale: suspecting a control-plane "
                     "outage, not a node failure; not fencing", requeue_s=5.0)
    if obs.peers is None:
        return stay(rem, Reason.AWAITING_CONFIRMATION, "asking peers whether they reach the node's agent",
                     requeue_s=1.0)
    if obs.peers.reachable > 0:
        restart = rem.kubelet_restart
        if cfg.kubelet_restart_first and not restart.get("issuedAt"):
            return stay(rem, Reason.KUBELET_RESTART_ORDERED,
                         "the agent is reachable: asking it to restart the kubelet first",
                         actions=(Action(ActionKind.ISSUE_ORDER, {"action": "restart-kubelet"}),),
                         requeue_s=5.0)
        issued = parse_time(restart.get("issuedAt"))
        if issued is not None and now - issued < cfg.kubelet_restart_wait_s:
            return stay(rem, Reason.KUBELET_RESTART_ORDERED, "waiting for the restarted kubelet",
                         requeue_s=5.0)
        reason = Reason.KUBELET_RESTART_DID_NOT_HELP if issued is not None else Reason.CONFIRMED_AGENT_REACHABLE
        return Decision(Phase.FENCING, reason,
                        f"the node is down but {obs.peers.reachable} peer(s) reach its agent: fencing "
                        "(the agent will acknowledge)", actions=fence)
    return Decision(Phase.FENCING, Reason.CONFIRMED_UNREACHABLE,
                    f"the node is not Ready, its Lease is stale and none of {obs.peers.asked} peer(s) "
                    "reach its agent: fencing", actions=fence)
