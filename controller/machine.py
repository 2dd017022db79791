"""The remediation state machine: a pure transition function.

    decide(remediation, observations, config) -> Decision(phase, reason, message, status, actions)

Nothing here does I/O. The loop writes the decision's status (phase, reason, history and
the intent subtrees) with the resourceVersion it read BEFORE it runs the actions, and
writes their results after; so a crash at any point resumes from the stored status
without a second fence order, a lost step or a stuck taint. Every phase's timeout and
outcome is listed in docs/fencing-protocol.md.

The phase handlers live in modules named for what they decide: controller.before_fence
(Pending, AwaitingApproval, Confirming), controller.fencing (Fencing and its escalation),
controller.after_fence (Fenced, Recovering, AwaitingNodeReady, the finished phases). The
types (Decision, Action, ActionKind, MachineConfig) are in controller.decision and
re-exported here.
"""

from __future__ import annotations

from controller.after_fence import awaiting_node_ready, fenced, recovering, terminal
from controller.before_fence import awaiting_approval, confirming, pending
from controller.decision import Action, ActionKind, Decision, MachineConfig
from controller.fencing import fencing
from controller.model import Observations, Phase, Reason, RemediationView

__all__ = ["Action", "ActionKind", "Decision", "MachineConfig", "decide"]


def decide(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    handler = {
        Phase.PENDING: pending,
        Phase.AWAITING_APPROVAL: awaiting_approval,
        Phase.CONFIRMING: confirming,
        Phase.FENCING: fencing,
        Phase.FENCED: fenced,
        Phase.RECOVERING: recovering,
        Phase.AWAITING_NODE_READY: awaiting_node_ready,
    }.get(rem.phase)
    if handler is None:
        return terminal(rem, obs)
    if rem.fence is not None and rem.phase in (Phase.PENDING, Phase.CONFIRMING):
        # An order exists: past the point of no return, whatever the phase says.
        return Decision(Phase.FENCING, Reason.FENCE_ORDERED,
                        "a fence order is already recorded: the fence in progress completes")
    return handler(rem, obs, cfg)
