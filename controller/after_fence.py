"""The state machine after the fence: Fenced, Recovering, AwaitingNodeReady, and the
finished phases.

Pure functions of (remediation, observations, config). Recovery (the out-of-service taint,
or deleting the node's pods and VolumeAttachments) acts only on a proof derived again at
that moment from trusted inputs; a stored status claiming a fence is a record, not a proof.
A node whose kubelet renews its Lease on the fenced boot was not fenced: no taint, or the
taint stays and the remediation fails (FenceNotObserved). The taint is removed only once the
node is Ready with a new boot; finished remediations only ever remove a taint left behind.

A proof says the fenced boot is dead; it does not say the machine is still down. A node
reset by its watchdog reboots, and a kubelet that comes back before its Lease renewal is
seen reads its pods from the API and starts the old ones, while the out-of-service taint
lets their replacements run elsewhere (chaos seed 116). So recovery also needs
nodewarden's own NoExecute taint (`nodewarden.io/fencing`, put on once the fence is
proven): a returning kubelet refuses at admission every pod that does not tolerate it. It
protects only kubelets that read their pods after it was there; one that read them before
renews its Lease within 10 s, which the alive check sees. Hence recovery waits until the
taint has been on the node for `fencing_taint_settle_s` (plus the clock skew) by its
`timeAdded`, and adds it again if someone removed it. Not before the proof: a NoExecute
taint evicts the node's pods at once, and a node that comes back by itself before
recovery (NodeRebooted) should start them again where they were (chaos seed 126, second
run: evicted at the order, the pods had to move, and a volume the restarted attach/detach
controller still counted as mounted kept them from starting anywhere).
"""

from __future__ import annotations

from typing import Any

from controller.decision import Action, ActionKind, Decision, MachineConfig, elapsed, stay
from controller.evidence import Verdict
from controller.fencing import agent_evidence, rebooted
from controller.model import (
    Escalation,
    FenceRecord,
    NodeObs,
    Observations,
    Phase,
    Reason,
    RemediationView,
    Strategy,
    format_time,
    parse_time,
)
from controller.proof import Refusal, operator_confirmed, trusted_fence, witness_for
from core.remediation import TERMINAL_PHASES


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
        return stay(rem, Reason.AWAITING_NODE,
                     "workloads recovered; the node still shows Ready from before it was fenced (its kubelet "
                     "has not renewed its Lease since): waiting for it to come back",
                     requeue_s=min(5.0, cfg.node_not_back_after_s))
    since = _reason_since(rem)
    if rem.reason == Reason.NODE_ALIVE_AFTER_FENCE and since is not None and obs.now - since > cfg.alive_grace_s:
        return not_observed
    return stay(rem, Reason.NODE_ALIVE_AFTER_FENCE,
                 "the node's kubelet renewed its Lease after the node must have been reset, and the Node "
                 "still shows the fenced boot: waiting for its new boot before deciding; the taint stays",
                 requeue_s=2.0)


def _node_alive_check(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision | None:
    if not _alive_after_fence(rem, obs, cfg):
        return None
    if rebooted(rem, obs):
        return Decision(Phase.SUCCEEDED, Reason.NODE_REBOOTED,
                        f"the node came back with a new boot ({obs.node.boot_id[:8]}) before recovery "
                        "was needed: no taint is applied")
    if rem.reason == Reason.NODE_ALIVE_AFTER_FENCE and elapsed(rem, obs.now) > cfg.alive_grace_s:
        return Decision(Phase.FAILED, Reason.FENCE_NOT_OBSERVED,
                        "the node's kubelet kept renewing its Lease on the same boot after it must have been "
                        "reset: the fence was NOT observed; no taint is applied")
    return stay(rem, Reason.NODE_ALIVE_AFTER_FENCE,
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
    evidence = agent_evidence(rem, obs, cfg, fence)
    if evidence.verdict is Verdict.SATISFIED:
        return None
    return Decision(Phase.FENCING, Reason.PROOF_NOT_REDERIVED,
                    f"the stored status says {rem.phase}, but the fence cannot be proven again from what this "
                    f"controller observed and can authenticate ({evidence.reason}: {evidence.message}); "
                    "no taint is applied")


def _fencing_taint_unsettled(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision | None:
    """Recovery waits for the fencing taint (module docstring); None when it has settled."""
    node = obs.node
    added = node.fencing_taint_added_at
    if not node.has_fencing_taint or added is None:
        why = ("the fencing taint carries no timeAdded" if node.has_fencing_taint else
               "the fencing taint is not on the node (removed by someone, or never added)")
        return stay(rem, Reason.AWAITING_FENCING_TAINT,
                    f"{why}: adding it, and no recovery until it has been on the node for "
                    f"{cfg.fencing_taint_settle_s:g}s", actions=(Action(ActionKind.ADD_FENCING_TAINT),),
                    requeue_s=1.0)
    ready_at = added + cfg.fencing_taint_settle_s + cfg.timing.max_clock_skew_s
    if obs.now < ready_at:
        return stay(rem, Reason.AWAITING_FENCING_TAINT,
                    f"the fencing taint has been on the node for {max(0.0, obs.now - added):.1f}s: recovery waits "
                    f"{ready_at - obs.now:.1f}s more, until a kubelet that read its pods before it would "
                    "have renewed its Lease", requeue_s=max(0.05, ready_at - obs.now))
    return None


def fenced(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    refused = None if rem.dry_run else _unproven(rem, obs, cfg)
    if refused is not None:
        return refused
    alive = _node_alive_check(rem, obs, cfg)
    if alive is not None:
        return alive
    unsettled = None if rem.dry_run else _fencing_taint_unsettled(rem, obs, cfg)
    if unsettled is not None:
        return unsettled
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


def recovering(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    rec = rem.recovery
    if not obs.node.exists:
        return Decision(Phase.SUCCEEDED, Reason.NODE_GONE, "the Node object is gone")
    if rem.dry_run:
        return Decision(Phase.AWAITING_NODE_READY, Reason.AWAITING_NODE,
                        f"dry run: {rec.get('strategy')} would have been applied; waiting for the node")
    strategy = Strategy(rec.get("strategy") or rem.strategy)
    status: dict[str, Any] = {}
    if strategy is Strategy.OUT_OF_SERVICE_TAINT:
        if obs.node.has_oos_taint:
            status = {} if rec.get("taintAppliedAt") else {"recovery": {"taintAppliedAt": format_time(obs.now)}}
            applied = parse_time(rec.get("taintAppliedAt")) or obs.now
            # Pod GC looks every pod_gc_period_s; so does this, once a second, for as long:
            # a pod the taint-eviction controller has not marked yet is deleted at a later
            # pass (it marks them within a second of the fencing taint, 11 s before).
            count = rec.get("podsDeleted")
            done = count is not None and (int(count or 0) > 0 or obs.now - applied >= cfg.pod_gc_period_s)
            if not cfg.delete_pods_after_taint or done or rec.get("podDeletionSkipped"):
                deleted = "" if rec.get("podsDeleted") is None else \
                    f"; {rec.get('podsDeleted')} pod(s) it evicts deleted at once"
                if rec.get("podDeletionSkipped"):
                    deleted = f"; the pods it evicts are left to pod GC ({rec.get('podDeletionSkipped')})"
                return Decision(Phase.AWAITING_NODE_READY, Reason.TAINT_APPLIED,
                                f"the out-of-service taint is on the node: Kubernetes moves its workloads{deleted}",
                                status)
            if elapsed(rem, obs.now) > cfg.recover_timeout_s:
                # The taint is on: Kubernetes recovers the workloads whatever happens to
                # the deletion; the remediation never fails for want of it.
                why = f"not deleted within {cfg.recover_timeout_s:g}s: pod GC deletes them"
                return Decision(Phase.AWAITING_NODE_READY, Reason.TAINT_APPLIED,
                                f"the out-of-service taint is on the node; the pods it evicts were {why}",
                                {"recovery": {**(status.get("recovery") or {}), "podDeletionSkipped": why}})
            if obs.node.ready == "True":
                # Pod GC's rule needs a node that is not Ready; a Ready kubelet finishes its
                # terminating pods itself (and the alive checks below judge the fence).
                why = "the node is Ready: pod GC's rule does not apply, its kubelet finishes them"
                return Decision(Phase.AWAITING_NODE_READY, Reason.TAINT_APPLIED,
                                f"the out-of-service taint is on the node; the pods it evicts were not deleted: {why}",
                                {"recovery": {**(status.get("recovery") or {}), "podDeletionSkipped": why}})
            # Pod GC's rule (the terminating pods of a NotReady out-of-service node), now
            # rather than at its next run: at the moment of deleting, the same checks as at
            # the moment of tainting.
            action = Action(ActionKind.DELETE_EVICTED_PODS)
        else:
            action = Action(ActionKind.APPLY_TAINT)
    else:
        if rec.get("podsDeleted") is not None:
            return Decision(Phase.AWAITING_NODE_READY, Reason.RESOURCES_DELETED,
                            f"deleted {rec.get('podsDeleted')} pod(s) and {rec.get('volumeAttachmentsDeleted', 0)} "
                            "VolumeAttachment(s) of the node")
        action = Action(ActionKind.DELETE_RESOURCES)
    if elapsed(rem, obs.now) > cfg.recover_timeout_s:
        return Decision(Phase.FAILED, Reason.RECOVERY_FAILED,
                        f"recovery with {strategy} did not complete within {cfg.recover_timeout_s:g}s "
                        f"(last: {rem.reason})")
    alive = _node_alive_check(rem, obs, cfg)
    if alive is not None:
        return alive
    refused = _unproven(rem, obs, cfg)  # the moment of tainting (or deleting)
    if refused is not None:
        return refused
    unsettled = _fencing_taint_unsettled(rem, obs, cfg)
    if unsettled is not None:
        return unsettled
    return stay(rem, Reason.RECOVERY_STARTED, f"recovering with {strategy}", status, actions=(action,), requeue_s=1.0)


def awaiting_node_ready(rem: RemediationView, obs: Observations, cfg: MachineConfig) -> Decision:
    node = obs.node
    if not node.exists:
        return Decision(Phase.SUCCEEDED, Reason.NODE_GONE, "the Node object is gone")
    if node.ready == "True":
        if rem.dry_run:
            return Decision(Phase.SUCCEEDED, Reason.DRY_RUN_COMPLETE, "dry run complete: the node is Ready")
        fence_boot = rem.fence.boot_id if rem.fence else ""
        if fence_boot and node.boot_id == fence_boot:
            return _ready_on_fenced_boot(rem, obs, cfg)
        if node.has_oos_taint or node.has_fencing_taint:
            return stay(rem, Reason.NODE_RETURNED, "the node is back with a new boot: removing the taints",
                         actions=(Action(ActionKind.REMOVE_TAINT),), requeue_s=1.0)
        status = {} if rem.recovery.get("taintRemovedAt") or not rem.recovery.get("taintAppliedAt") else \
            {"recovery": {"taintRemovedAt": format_time(obs.now)}}
        return Decision(Phase.SUCCEEDED, Reason.NODE_RETURNED,
                        f"the node is Ready with a new boot ({node.boot_id[:8]}); nodewarden's taint is removed",
                        status)
    waited = elapsed(rem, obs.now)
    if waited > cfg.node_not_back_after_s:
        if rem.reason != Reason.NODE_NOT_BACK:
            return stay(rem, Reason.NODE_NOT_BACK,
                         f"the node has not come back for {waited:.0f}s; the taint stays (its workloads are "
                         "already recovered)", requeue_s=60.0)
        return stay(rem, Reason.NODE_NOT_BACK, rem.raw_status.get("message", ""), requeue_s=60.0)
    return stay(rem, Reason.AWAITING_NODE, "workloads recovered; waiting for the node to come back",
                 requeue_s=min(5.0, cfg.node_not_back_after_s))


def terminal(rem: RemediationView, obs: Observations) -> Decision:
    """Finished remediations only ever remove a taint left behind on a node that came back."""
    message = str(rem.raw_status.get("message", ""))
    reason = rem.reason
    rec, node, fence = rem.recovery, obs.node, rem.fence
    # Any finished phase: a remediation can end Succeeded/NodeRebooted or Cancelled after
    # the taint went on (chaos seed 126: the taint on, the proof then refused as the agent
    # republished on its new boot, and the node Ready again with that boot).
    # The taint may be on from the moment recovery was requested (its action can run
    # before the next look records taintAppliedAt).
    tainted = rec.get("taintAppliedAt") or (rec.get("requestedAt") and rec.get("strategy") == Strategy.OUT_OF_SERVICE_TAINT)
    if (rem.reason != Reason.FENCE_NOT_OBSERVED and tainted
            and not rec.get("taintRemovedAt") and fence is not None and node.exists and node.ready == "True"
            and node.boot_id and node.boot_id != fence.boot_id):
        if node.has_oos_taint or node.has_fencing_taint:
            return Decision(rem.phase, reason, message, actions=(Action(ActionKind.REMOVE_TAINT),))
        return Decision(rem.phase, reason, message, {"recovery": {"taintRemovedAt": format_time(obs.now)}})
    return Decision(rem.phase, reason, message)


def fencing_taints_to_remove(nodes: dict[str, NodeObs], remediations: list[dict[str, Any]], now: float,
                             grace_s: float) -> list[str]:
    """Nodes (by name, as observed) whose fencing taint nothing needs any more: no
    unfinished remediation of the node (a remediation is named after its node) and no
    out-of-service taint (that one and the fencing taint go together, when the node is
    back). A taint younger than `grace_s` stays: the remediation that added it may not be
    in this view yet. A remediation with an unknown phase counts as unfinished."""
    active = {str((r.get("metadata") or {}).get("name") or "") for r in remediations
              if str((r.get("status") or {}).get("phase") or Phase.PENDING) not in TERMINAL_PHASES}
    return sorted(name for name, node in nodes.items()
                  if node.has_fencing_taint and name not in active and not node.has_oos_taint
                  and (node.fencing_taint_added_at is None or now - node.fencing_taint_added_at >= grace_s))
