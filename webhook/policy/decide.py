"""Policy verdicts: pure functions from facts to a `Verdict` with an enumerated `Reason`.

No I/O and no clock: the caller gathers the facts (from the watch-fed cache) and passes
`now`. Checks run in a fixed order, so every request gets exactly one reason:

firing alert / operator request (`decide_firing`)
  1. an active remediation exists         -> duplicate AlreadyActive
  2. a finished one is still cooling down -> rejected Cooldown (never after a dry run)
  3. node unknown                         -> rejected NodeNotFound
  4. paused (policy file or switch)       -> rejected Paused
  5. opt-out label                        -> rejected NodeOptedOut
  6. control-plane node, not enabled      -> rejected ControlPlaneExcluded
  7. not matched by nodes.selector        -> rejected NodeNotSelected
  8. node Ready, no `force`               -> rejected NodeReady (with `force`: accepted,
                                             but always AwaitingApproval by a second
                                             person: ForceNeedsApproval)
  9. too many unhealthy nodes             -> rejected StormProtection
 10. too many recent remediations         -> rejected RateLimited (dry runs do not count;
                                             the shared ledger is checked after this)
 11. otherwise                            -> accepted (Accepted | AcceptedDryRun |
                                             AwaitingApproval), with a `Plan`

resolved alert (`decide_resolved`) and operator cancel (`decide_cancel`): a remediation
may be cancelled only while no fence order has been issued; after that it is recorded.
A resolved alert cancels only what Alertmanager started, only when it resolves an alert
the remediation recorded firing (same fingerprint and startsAt: a late resolution of an
earlier incident is ignored), and only when no other alert about the node still fires.

approval (`decide_approve`): only while AwaitingApproval, only once, and — under four-eyes
(the group's `fourEyes`, and always for a forced request) — never by the person who asked
(rejected SelfApproval). A request nobody has decided on yet cannot be approved
(rejected NotDecided).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core import names
from core.remediation import COOLDOWN_PHASES, TERMINAL_PHASES, Escalation, Phase, Strategy
from webhook.policy.model import Policy

# Always used with fullmatch: `$` would let "node-1\n" pass.
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RECORDED = "recorded"
    IGNORED = "ignored"


class Reason(enum.StrEnum):
    # accepted
    ACCEPTED = "Accepted"
    ACCEPTED_DRY_RUN = "AcceptedDryRun"
    AWAITING_APPROVAL = "AwaitingApproval"
    # duplicate
    ALREADY_ACTIVE = "AlreadyActive"
    # rejected
    INVALID_ALERT = "InvalidAlert"
    ALERT_NOT_HANDLED = "AlertNotHandled"
    NO_NODE_LABEL = "NoNodeLabel"
    INVALID_NODE_NAME = "InvalidNodeName"
    INVALID_REQUEST = "InvalidRequest"  # a kubectl request without its requester annotation
    COOLDOWN = "Cooldown"
    NODE_NOT_FOUND = "NodeNotFound"
    PAUSED = "Paused"
    NODE_OPTED_OUT = "NodeOptedOut"
    CONTROL_PLANE_EXCLUDED = "ControlPlaneExcluded"
    NODE_NOT_SELECTED = "NodeNotSelected"
    NODE_READY = "NodeReady"
    STORM_PROTECTION = "StormProtection"
    RATE_LIMITED = "RateLimited"
    # accepted: a forced request on a Ready node, waiting for a second person
    FORCE_NEEDS_APPROVAL = "ForceNeedsApproval"
    # resolved / cancel
    ALERT_RESOLVED = "AlertResolved"
    OPERATOR_CANCELLED = "OperatorCancelled"
    FENCE_IN_PROGRESS = "FenceInProgress"
    OTHER_ALERTS_FIRING = "OtherAlertsFiring"
    OPERATOR_TRIGGERED = "OperatorTriggered"
    UNRELATED_ALERT = "UnrelatedAlert"
    NO_REMEDIATION = "NoRemediation"
    ALREADY_FINISHED = "AlreadyFinished"
    # approve
    APPROVED = "Approved"
    ALREADY_APPROVED = "AlreadyApproved"
    NOT_AWAITING_APPROVAL = "NotAwaitingApproval"
    SELF_APPROVAL = "SelfApproval"
    NOT_DECIDED = "NotDecided"
    # the API server refused a write for a reason other than being unreachable
    API_ERROR = "ApiError"


class Source(enum.StrEnum):
    ALERTMANAGER = "alertmanager"
    OPERATOR = "operator"
    KUBECTL = "kubectl"  # a NodeRemediation a person created with their own credentials


@dataclass(frozen=True)
class Request:
    source: Source
    node: str
    dry_run: bool = False
    force: bool = False  # remediate even though the node reports Ready (needs a 2nd person)


@dataclass(frozen=True)
class NodeFacts:
    name: str
    labels: Mapping[str, str]
    ready: str | None  # the Ready condition's status: "True", "False", "Unknown" or None


@dataclass(frozen=True)
class ExistingFacts:
    """The node's current NodeRemediation, as the cache sees it."""

    phase: str | None  # None: created, status not yet written
    phase_since: float | None
    fence_issued: bool  # status.fence.issuedAt is set
    source: str = "alertmanager"  # spec.trigger.source
    approval_required: bool = False  # spec.approvalRequired
    approved_at: float | None = None  # status.approval.approvedAt
    dry_run: bool = False  # spec.dryRun: decided and recorded only, so no cooldown
    requested_by: str = ""  # the person who asked ("" for an alert)
    four_eyes: bool = False  # the approver must not be `requested_by`
    decided: bool = True  # False: a person's request the webhook has not decided on yet
    # fingerprint -> (status, startsAt) of the newest status.alerts entry for that alert
    alerts: Mapping[str, tuple[str, float | None]] = field(default_factory=dict)

    @property
    def firing_fingerprints(self) -> frozenset[str]:
        return frozenset(fp for fp, (status, _) in self.alerts.items() if status == "firing")

    @property
    def active(self) -> bool:
        return self.phase not in TERMINAL_PHASES

    @property
    def effective_phase(self) -> str:
        """The phase, or the one creation was about to write if status is still empty."""
        if self.phase:
            return self.phase
        return Phase.AWAITING_APPROVAL if self.approval_required else Phase.PENDING


@dataclass(frozen=True)
class ClusterFacts:
    total_nodes: int
    unhealthy_nodes: int  # nodes not Ready, plus nodes with an active remediation
    recent_starts: Sequence[float]  # trigger.receivedAt of remediations not cancelled
    paused: bool  # the pause switch (the policy file's `paused` is checked as well)
    pause_reason: str = ""


@dataclass(frozen=True)
class Plan:
    """What an accepted remediation is created with (its `spec`, resolved from policy)."""

    group: str
    strategy: Strategy
    escalation: Escalation
    approval_required: bool
    dry_run: bool
    four_eyes: bool = False
    force: bool = False


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: Reason
    message: str
    plan: Plan | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


def _reject(reason: Reason, message: str) -> Verdict:
    return Verdict(Outcome.REJECTED, reason, message)


def valid_node_name(name: str) -> bool:
    return 0 < len(name) <= 253 and _NODE_NAME.fullmatch(name) is not None


def alert_target(alert_name: str, labels: Mapping[str, str], policy: Policy) -> str | Verdict:
    """The node a firing or resolved alert is about, or why it is not ours to handle."""
    if alert_name not in policy.alerts.names:
        return _reject(
            Reason.ALERT_NOT_HANDLED, f"alert {alert_name!r} does not trigger remediation"
        )
    for key, value in policy.alerts.match_labels:
        if labels.get(key) != value:
            return _reject(
                Reason.ALERT_NOT_HANDLED,
                f"alert label {key}={labels.get(key)!r}, policy wants {value!r}",
            )
    for key in policy.alerts.node_labels:
        node = labels.get(key)
        if node:
            if not valid_node_name(node):
                return _reject(
                    Reason.INVALID_NODE_NAME, f"label {key}={node[:80]!r} is not a node name"
                )
            return node
    keys = ", ".join(policy.alerts.node_labels)
    return _reject(Reason.NO_NODE_LABEL, f"the alert has none of the node labels {keys}")


def is_control_plane(labels: Mapping[str, str]) -> bool:
    return names.LABEL_CONTROL_PLANE in labels or "node-role.kubernetes.io/master" in labels


def decide_firing(
    request: Request,
    node: NodeFacts | None,
    existing: ExistingFacts | None,
    cluster: ClusterFacts,
    policy: Policy,
    now: float,
) -> Verdict:
    """Whether a new remediation of `request.node` may start. See the module docstring."""
    if existing is not None and existing.active:
        return Verdict(
            Outcome.DUPLICATE,
            Reason.ALREADY_ACTIVE,
            f"remediation of {request.node} already in phase {existing.effective_phase}",
        )
    if (
        existing is not None
        and not existing.dry_run
        and existing.phase in COOLDOWN_PHASES
        and existing.phase_since is not None
        and now < existing.phase_since + policy.cooldown_s
    ):
        left = existing.phase_since + policy.cooldown_s - now
        return _reject(
            Reason.COOLDOWN,
            f"last remediation of {request.node} ended {existing.phase}; cooldown for {left:.0f}s more",
        )
    if node is None:
        return _reject(Reason.NODE_NOT_FOUND, f"no node named {request.node}")
    if policy.paused or cluster.paused:
        why = "the policy file" if policy.paused else "the pause switch"
        extra = f": {cluster.pause_reason}" if cluster.pause_reason and not policy.paused else ""
        return _reject(Reason.PAUSED, f"remediation is paused by {why}{extra}")
    if node.labels.get(names.LABEL_OPT_OUT) == "disabled":
        return _reject(Reason.NODE_OPTED_OUT, f"node has label {names.LABEL_OPT_OUT}=disabled")
    if is_control_plane(node.labels) and not policy.nodes.include_control_plane:
        return _reject(
            Reason.CONTROL_PLANE_EXCLUDED,
            "control-plane nodes are excluded (nodes.includeControlPlane)",
        )
    if not policy.nodes.selector.matches(node.labels):
        return _reject(Reason.NODE_NOT_SELECTED, "node does not match the policy's nodes.selector")
    forced = request.force and node.ready == "True"
    if node.ready == "True" and not forced:
        return _reject(
            Reason.NODE_READY, "node is Ready; nothing to recover (force needs a second person)"
        )
    limit = policy.max_unhealthy.limit(cluster.total_nodes)
    if cluster.unhealthy_nodes > limit:
        return _reject(
            Reason.STORM_PROTECTION,
            f"{cluster.unhealthy_nodes} of {cluster.total_nodes} nodes unhealthy, more than "
            f"maxUnhealthy {policy.max_unhealthy} ({limit}); no new remediation starts",
        )
    window = policy.rate_limit.window_s
    recent = sum(1 for t in cluster.recent_starts if t > now - window)
    if recent >= policy.rate_limit.max_remediations:
        return _reject(
            Reason.RATE_LIMITED,
            f"{recent} remediations started in the last {window:g}s "
            f"(limit {policy.rate_limit.max_remediations})",
        )
    group = policy.group_for(node.labels)
    dry_run = policy.dry_run or request.dry_run
    plan = Plan(
        group=group.name,
        strategy=group.strategy,
        escalation=group.escalation,
        approval_required=group.approval_required or forced,
        dry_run=dry_run,
        four_eyes=group.four_eyes or forced,
        force=forced,
    )
    if forced:
        reason, text = (
            Reason.FORCE_NEEDS_APPROVAL,
            f"FORCED on a node that reports Ready: fencing {request.node} resets a machine that "
            "may be running its workloads; a second person must approve",
        )
    elif group.approval_required:
        reason, text = Reason.AWAITING_APPROVAL, f"group {group.name} needs a person's approval"
    elif dry_run:
        reason, text = Reason.ACCEPTED_DRY_RUN, "accepted in dry-run mode: decide and record only"
    else:
        reason, text = Reason.ACCEPTED, f"remediation of {request.node} accepted ({group.strategy})"
    return Verdict(Outcome.ACCEPTED, reason, text, plan)


def decide_resolved(
    node: str, fingerprint: str, starts_at: float | None, existing: ExistingFacts | None
) -> Verdict:
    """A resolved alert cancels a remediation only until a fence order is issued, only
    if Alertmanager triggered it, and only once no other alert for the node still fires."""
    if existing is None:
        return Verdict(
            Outcome.IGNORED, Reason.NO_REMEDIATION, f"no remediation of {node} to cancel"
        )
    if not existing.active:
        return Verdict(
            Outcome.IGNORED,
            Reason.ALREADY_FINISHED,
            f"remediation of {node} already {existing.phase}",
        )
    known = existing.alerts.get(fingerprint)
    if known is None or (
        starts_at is not None and known[1] is not None and abs(starts_at - known[1]) >= 1.0
    ):
        return Verdict(
            Outcome.IGNORED,
            Reason.UNRELATED_ALERT,
            "this remediation never recorded that alert (same fingerprint and startsAt) firing",
        )
    if existing.fence_issued:
        return Verdict(
            Outcome.RECORDED,
            Reason.FENCE_IN_PROGRESS,
            "a fence order was issued; the remediation completes, the resolution is recorded",
        )
    if existing.source == Source.OPERATOR:
        return Verdict(
            Outcome.RECORDED,
            Reason.OPERATOR_TRIGGERED,
            "an operator requested this remediation; only an operator cancels it",
        )
    others = existing.firing_fingerprints - {fingerprint}
    if others:
        return Verdict(
            Outcome.RECORDED,
            Reason.OTHER_ALERTS_FIRING,
            f"{len(others)} other alert(s) for {node} still firing; not cancelled",
        )
    return Verdict(
        Outcome.CANCELLED, Reason.ALERT_RESOLVED, "the alert resolved before any fence order"
    )


def decide_cancel(node: str, existing: ExistingFacts | None) -> Verdict:
    """An operator's cancel: allowed on any active remediation without a fence order."""
    if existing is None:
        return _reject(Reason.NO_REMEDIATION, f"no remediation of {node}")
    if not existing.active:
        return _reject(Reason.ALREADY_FINISHED, f"remediation of {node} already {existing.phase}")
    if existing.fence_issued:
        return _reject(
            Reason.FENCE_IN_PROGRESS,
            "a fence order was issued; a fence in progress always completes",
        )
    return Verdict(Outcome.CANCELLED, Reason.OPERATOR_CANCELLED, "cancelled by an operator")


def decide_approve(node: str, existing: ExistingFacts | None, approver: str = "") -> Verdict:
    """A person's approval counts only while the remediation waits for one, and under
    four-eyes only when that person is not the one who asked."""
    if existing is None:
        return _reject(Reason.NO_REMEDIATION, f"no remediation of {node}")
    if not existing.decided:
        return _reject(
            Reason.NOT_DECIDED, f"the request for {node} has not been decided by policy yet"
        )
    if existing.effective_phase != Phase.AWAITING_APPROVAL:
        return _reject(
            Reason.NOT_AWAITING_APPROVAL,
            f"remediation of {node} is {existing.effective_phase}, not AwaitingApproval",
        )
    if existing.approved_at is not None and (
        existing.phase_since is None or existing.approved_at >= existing.phase_since
    ):
        return Verdict(
            Outcome.DUPLICATE, Reason.ALREADY_APPROVED, f"remediation of {node} is already approved"
        )
    if existing.four_eyes and existing.requested_by and approver == existing.requested_by:
        return _reject(
            Reason.SELF_APPROVAL,
            f"four-eyes: {approver} asked for this remediation and cannot also approve it; "
            "a second person must",
        )
    return Verdict(Outcome.ACCEPTED, Reason.APPROVED, f"remediation of {node} approved")
