"""Phases, enumerated reasons, and the typed views the pure controller core works on.

`RemediationView.parse` reads a NodeRemediation dict (the stored contract in
docs/noderemediation.md); `Observations` is what the shell saw of the world this round.
Times are unix seconds (floats) on the controller's clock unless a name says otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from core import clock as core_clock
from core.kube import dig
from core.remediation import Escalation, Phase, Strategy, is_foreign
from core.remediation_status import FenceStatus, Part, parse_status, stamp_ts


class Reason(enum.StrEnum):
    # Pending / approval / confirming
    STARTED = "Started"
    APPROVED = "Approved"
    AWAITING_APPROVAL = "AwaitingApproval"
    FORCE_NEEDS_APPROVAL = "ForceNeedsApproval"  # the webhook's reason for a forced request, kept
    APPROVAL_TIMEOUT = "ApprovalTimeout"
    NODE_RECOVERED = "NodeRecovered"
    NODE_GONE = "NodeGone"
    AWAITING_CONFIRMATION = "AwaitingConfirmation"
    NODE_LEASE_FRESH = "NodeLeaseFresh"
    CONTROL_PLANE_OUTAGE = "ControlPlaneOutageSuspected"
    PAUSED = "Paused"
    CONFIRMED_UNREACHABLE = "ConfirmedUnreachable"
    CONFIRMED_AGENT_REACHABLE = "ConfirmedAgentReachable"
    CONFIRMED_BY_OPERATOR = "ConfirmedByOperator"
    GRACE_WINDOW = "OperatorGraceWindow"  # a person's request, before its fence order: cancel works
    KUBELET_RESTART_ORDERED = "KubeletRestartOrdered"
    KUBELET_RESTART_DID_NOT_HELP = "KubeletRestartDidNotHelp"
    NOT_CONFIRMED = "NotConfirmed"
    # Fencing
    FENCE_ORDERED = "FenceOrdered"
    AWAITING_ACKNOWLEDGEMENT = "AwaitingAcknowledgement"
    AWAITING_FENCE_DEADLINE = "AwaitingFenceDeadline"
    NO_AGENT = "NoAgent"
    AGENT_NOT_SELF_FENCE_CAPABLE = "AgentNotSelfFenceCapable"
    AGENT_ALIVE_NOT_ACKNOWLEDGING = "AgentAliveNotAcknowledging"
    ORDER_EXPIRES_TOO_SOON = "OrderExpiresTooSoon"
    ESCALATED_TO_FENCE_AGENT = "EscalatedToFenceAgent"
    FENCE_AGENT_FAILED = "FenceAgentFailed"
    FENCE_AGENT_REFUSED = "FenceAgentCredentialsRefused"  # the BMC refused the login
    FENCE_AGENT_UNREACHABLE = "FenceAgentBmcUnreachable"
    FENCE_AGENT_TIMED_OUT = "FenceAgentTimedOut"
    FENCE_AGENT_POWERED_ON_AGAIN = "FenceAgentPowerOffDidNotHold"  # Off, then On again at once
    AWAITING_OPERATOR_CONFIRMATION = "AwaitingOperatorConfirmation"
    ESCALATION_TIMEOUT = "EscalationTimeout"
    FENCE_NOT_PROVEN = "FenceNotProven"
    FENCE_TIMEOUT = "FenceTimeout"
    NODE_REBOOTED = "NodeRebooted"
    ORDER_REFUSED = "OrderRefused"  # the agent refused the order (reason in the message)
    # Evidence refused: an input to the proof is not one the controller can trust
    ORDER_NOT_OURS = "OrderNotOurs"  # the stored order is not one this controller's key signed
    PROOF_NOT_REDERIVED = "ProofNotRederived"  # the status claims a fence the controller cannot re-derive
    AGENT_REPORT_WITHOUT_BOOT = "AgentReportWithoutBoot"
    AGENT_WRITES_UNRESTRICTED = "AgentWritesUnrestricted"
    AGENT_DISTRUSTS_KEY = "AgentDistrustsKey"
    CLOCK_SKEW_TOO_LARGE = "ClockSkewTooLarge"
    CLOCK_SKEW_UNMEASURED = "ClockSkewUnmeasured"
    # Fenced / recovering
    FENCE_PROVEN = "FenceProven"
    RECOVERY_STARTED = "RecoveryStarted"
    AWAITING_FENCING_TAINT = "AwaitingFencingTaint"  # recovery waits until the fencing taint has settled
    TAINT_APPLIED = "OutOfServiceTaintApplied"
    RESOURCES_DELETED = "ResourcesDeleted"
    RECOVERY_FAILED = "RecoveryFailed"
    FENCE_NOT_OBSERVED = "FenceNotObserved"
    NODE_ALIVE_AFTER_FENCE = "NodeAliveAfterFence"
    # Awaiting node ready / done
    AWAITING_NODE = "AwaitingNode"
    NODE_NOT_BACK = "NodeNotBack"
    NODE_RETURNED = "NodeReturned"
    DRY_RUN_COMPLETE = "DryRunComplete"


class EvidenceRule(enum.StrEnum):
    ACKNOWLEDGED_WATCHDOG = "AcknowledgedWatchdog"
    AGENT_HEARTBEAT_STALE = "AgentHeartbeatStale"
    FENCE_AGENT = "FenceAgent"
    BMC_POWER_OFF_CONFIRMED = "BmcPowerOffConfirmed"  # an inventory fence agent: off, then status Off
    OPERATOR_CONFIRMED_OFF = "OperatorConfirmedOff"
    NODE_REBOOTED = "NodeRebooted"


# -- time helpers (one pair for the whole product: core.clock) ---------------------------

parse_time = core_clock.parse_time
format_time = core_clock.format_time
_get = dig


# -- the stored remediation --------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledgement:
    at: float
    via: str
    last_feed_at: float
    watchdog_timeout_s: float


@dataclass(frozen=True)
class FenceRecord:
    order: str
    action: str
    issued_at: float
    expires_at: float
    boot_id: str
    delivered_via: tuple[str, ...] = ()
    ack: Acknowledgement | None = None
    evidence: dict[str, Any] | None = None
    peer_silence: dict[str, Any] = field(default_factory=dict)
    refusal_reason: str = ""  # the agent refused this order, with this reason


@dataclass(frozen=True)
class RemediationView:
    name: str
    uid: str
    resource_version: str
    phase: Phase
    reason: str
    phase_since: float | None
    dry_run: bool
    approval_required: bool
    approved_at: float | None
    strategy: Strategy
    escalation: Escalation
    trigger_source: str
    received_at: float | None
    fence: FenceRecord | None
    agent_report: dict[str, Any]
    recovery: dict[str, Any]
    escalation_state: dict[str, Any]
    kubelet_restart: dict[str, Any]
    raw_status: dict[str, Any] = field(repr=False, default_factory=dict)
    # A person forced this on a node that reported Ready (a second person approved it):
    # the node being Ready is not a reason to stop.
    force: bool = False

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> RemediationView:
        """The view of a stored object, its status read through `core.remediation_status`
        (a malformed part reads as absent). A phase that is none of ours raises ValueError:
        the controller does not act on an object it cannot place."""
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        typed = parse_status(obj)
        # A person's kubectl request: its spec is theirs; what counts is the plan the
        # webhook decided (status.plan). The trigger stays theirs (source, reason).
        trigger = (obj.get("spec") or {}).get("trigger") or {}
        plan = typed.plan.to_json() if typed.plan else {}
        spec = {**plan, "trigger": trigger} if is_foreign(obj) else obj.get("spec") or {}
        if typed.phase is not None:
            phase = typed.phase
        elif status.get("phase"):
            raise ValueError(f"status.phase {str(status.get('phase'))[:64]!r} is not a phase")
        else:  # creation is two writes: treat a missing phase as the one being written
            phase = Phase.AWAITING_APPROVAL if spec.get("approvalRequired") else Phase.PENDING
        try:
            strategy = Strategy(spec.get("strategy", Strategy.OUT_OF_SERVICE_TAINT))
        except ValueError:
            strategy = Strategy.OUT_OF_SERVICE_TAINT
        try:
            escalation = Escalation(spec.get("escalation", Escalation.NONE))
        except ValueError:
            escalation = Escalation.NONE
        return cls(
            name=str(meta.get("name", "")), uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            phase=phase, reason=typed.reason or "",
            phase_since=stamp_ts(typed.phase_since),
            dry_run=bool(spec.get("dryRun")), approval_required=bool(spec.get("approvalRequired")),
            approved_at=stamp_ts(typed.approval.approved_at) if typed.approval else None,
            strategy=strategy, escalation=escalation,
            trigger_source=str(_get(spec, "trigger", "source") or ""),
            received_at=parse_time(meta.get("creationTimestamp") if is_foreign(obj)
                                   else _get(spec, "trigger", "receivedAt")),
            fence=_fence_record(typed.fence),
            agent_report=_json(typed.agent_report),
            recovery=_json(typed.recovery),
            escalation_state=_json(typed.escalation),
            kubelet_restart=_json(typed.kubelet_restart),
            raw_status=status,
            force=bool(spec.get("force")),
        )

    @property
    def node(self) -> str:
        return self.name

    def approved_since(self, since: float | None) -> bool:
        return self.approved_at is not None and (since is None or self.approved_at >= since)


def _json(value: Part | None) -> dict[str, Any]:
    return value.to_json() if value is not None else {}


def _fence_record(f: FenceStatus | None) -> FenceRecord | None:
    """The recorded order, when there is one (an order token and its issue time)."""
    if f is None or not f.order or f.issued_at is None:
        return None
    ack = None
    a = f.acknowledgement
    if a is not None and a.last_feed_at is not None and a.watchdog_timeout_s is not None:
        ack = Acknowledgement(stamp_ts(a.at) or 0.0, a.via or "", a.last_feed_at.ts, float(a.watchdog_timeout_s))
    return FenceRecord(
        order=f.order, action="fence" if f.action is None else f.action, issued_at=f.issued_at.ts,
        expires_at=stamp_ts(f.expires_at) or 0.0, boot_id=f.boot_id or "",
        delivered_via=f.delivered_via or (), ack=ack,
        evidence=f.evidence.to_json() if f.evidence is not None else None,
        peer_silence=_json(f.peer_silence),
        refusal_reason=(f.refusal.reason or "") if f.refusal else "")


# -- what the shell observed -------------------------------------------------------------


@dataclass(frozen=True)
class AgentInfo:
    """The node's agent as it published itself (annotations) and its heartbeat Lease."""

    present: bool = False  # the agent ever published on this node
    self_fence_capable: bool = False
    watchdog_timeout_s: float | None = None
    isolation_detect_s: float | None = None
    boot_id: str = ""  # the node bootID the agent published under
    peer_endpoint: str = ""
    heartbeat_renewed_at: float | None = None  # the agent's Lease renewTime (agent clock)
    heartbeat_duration_s: float | None = None
    # Published on the heartbeat Lease: the order keys it trusts (None: never published) and
    # its clock's offset against the API server's Date, with the half-width of that measure.
    key_fingerprints: tuple[str, ...] | None = None
    clock_offset_s: float | None = None
    clock_offset_error_s: float | None = None


@dataclass(frozen=True)
class NodeObs:
    exists: bool = True
    ready: str = "Unknown"  # "True" | "False" | "Unknown"
    boot_id: str = ""
    lease_renewed_at: float | None = None  # kube-node-lease renewTime (kubelet clock)
    lease_duration_s: float = 40.0
    has_oos_taint: bool = False
    has_fencing_taint: bool = False  # nodewarden's NoExecute taint (core.names.FENCING_TAINT_KEY)
    fencing_taint_added_at: float | None = None  # its timeAdded (None: absent, or added without one)
    control_plane: bool = False
    agent: AgentInfo = AgentInfo()


@dataclass(frozen=True)
class PeerObs:
    """Peers asked whether they can reach the node's agent."""

    asked: int = 0
    reachable: int = 0
    unreachable: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Witness:
    """What this controller process itself saw of one order: the answers it received and
    the commands it ran. Kept in memory, never read back from the status (which anyone
    allowed to write `noderemediations/status` could have edited), so after a restart it
    is empty and the proof is gathered again."""

    order: str = ""  # the token these facts are about
    delivery_attempted: bool = False  # this process sent the order at least once
    ack: Acknowledgement | None = None
    refusal_reason: str = ""  # the agent's reason, when it refused the order
    refusal_at: float | None = None
    peer_silence: dict[str, Any] = field(default_factory=dict)
    fence_agent_succeeded_at: float | None = None


@dataclass(frozen=True)
class Observations:
    now: float
    node: NodeObs
    peers: PeerObs | None = None
    outage_suspected: bool = False  # more than half of the agents' heartbeats are stale
    paused: bool = False  # the operators' pause switch: no new fencing starts
    oos_taint_supported: bool = True  # server version >= 1.28
    fence_device: str = ""  # the fence inventory's device for this node ("" = none)
    witness: Witness = Witness()  # what this process saw of the recorded order
    # `status.agentReport` counts as evidence only while agents can write nothing but their
    # own node's report (trust_agent_writes); otherwise this says why not.
    agent_reports_refused: str = Reason.AGENT_WRITES_UNRESTRICTED
