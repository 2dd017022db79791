"""The typed shape of a NodeRemediation's `status`: one frozen dataclass per part.

docs/noderemediation.md is the contract; this module spells it once. Every writer builds
the parts it writes with these shapes and stores `to_json()`; every reader goes through
`parse_status(obj)`.

- `from_json(value)` is tolerant: the status is a record that anyone allowed to write
  `noderemediations/status` could have edited, so a field of the wrong type, a time that
  is not RFC 3339, a list longer than the CRD's bound or a part that is not an object
  reads as absent (None), and nothing raises. Items of a list that are not of its shape
  are skipped. Strings are kept as they are.
- `to_json()` gives the exact JSON the writers store: fields that are None are left out,
  so a part also serves as a merge patch of the fields it sets, and
  `to_json(from_json(x)) == x` for whatever a writer wrote. Times keep their stored text
  (`Stamp`), so the webhook's second-precision and the controller's microsecond times
  both survive the round trip.
- Each field names its JSON key; `status_fields()` lists every path the shapes know, which
  a test compares with the CRD's schema. The machinery (`Part`, `Stamp`, the field
  helpers) is `core.status_json`.
"""

# The field helpers (`text`, `time`, `part`, ...) return `dataclasses.field`s; ruff cannot
# see that, so its rule against calls in dataclass defaults is off for this file.
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from core.remediation import Phase
from core.status_json import (
    JSON,
    Part,
    Stamp,
    field_of,
    flag,
    free_object,
    integer,
    number,
    part,
    parts,
    stamp_ts,
    text,
    texts,
    time,
)

__all__ = [
    "JSON",
    "MAX_ALERTS",
    "MAX_CONDITIONS",
    "MAX_DELIVERED_VIA",
    "MAX_HISTORY",
    "MAX_RUNS",
    "AckRecord",
    "AgentReport",
    "AlertRecord",
    "Approval",
    "Cancellation",
    "Condition",
    "EscalationStatus",
    "EvidenceRecord",
    "FenceStatus",
    "HistoryEntry",
    "KubeletRestart",
    "LastAnswer",
    "Part",
    "PeerSilence",
    "PlanRecord",
    "RecoveryStatus",
    "Refusal",
    "RemediationStatus",
    "Stamp",
    "parse_status",
    "stamp_ts",
    "status_fields",
]

MAX_HISTORY = 50
MAX_ALERTS = 20
MAX_DELIVERED_VIA = 20
MAX_RUNS = 50
MAX_CONDITIONS = 20


# -- the parts --------------------------------------------------------------------------


def _phase(value: object) -> Phase | None:
    try:
        return Phase(value) if isinstance(value, str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class HistoryEntry(Part):
    """`history[]`: one transition (webhook and controller)."""

    phase: str | None = text("phase")
    reason: str | None = text("reason")
    message: str | None = text("message")
    at: Stamp | None = time("at")


@dataclass(frozen=True)
class AlertRecord(Part):
    """`alerts[]`: deliveries of one alert instance seen for this node (webhook)."""

    alert_name: str | None = text("alertName")
    fingerprint: str | None = text("fingerprint")
    status: str | None = text("status")
    received_at: Stamp | None = time("receivedAt")
    count: int | None = integer("count")
    starts_at: Stamp | None = time("startsAt")


@dataclass(frozen=True)
class PlanRecord(Part):
    """`plan`: what policy decided for a person's kubectl request (webhook)."""

    policy_group: str | None = text("policyGroup")
    strategy: str | None = text("strategy")
    escalation: str | None = text("escalation")
    approval_required: bool | None = flag("approvalRequired")
    four_eyes: bool | None = flag("fourEyes")
    dry_run: bool | None = flag("dryRun")
    force: bool | None = flag("force")


@dataclass(frozen=True)
class Approval(Part):
    """`approval` (webhook)."""

    approved_by: str | None = text("approvedBy")
    approved_at: Stamp | None = time("approvedAt")


@dataclass(frozen=True)
class Cancellation(Part):
    """`cancellation` (webhook)."""

    requested_by: str | None = text("requestedBy")
    reason: str | None = text("reason")
    at: Stamp | None = time("at")


@dataclass(frozen=True)
class AckRecord(Part):
    """`fence.acknowledgement`: the agent's acknowledgement as the controller received it."""

    at: Stamp | None = time("at")
    via: str | None = text("via")
    last_feed_at: Stamp | None = time("lastFeedAt")
    watchdog_timeout_s: float | None = number("watchdogTimeoutSeconds")


@dataclass(frozen=True)
class LastAnswer(Part):
    """`fence.lastAnswer`: the last answer an agent gave to the order."""

    at: Stamp | None = time("at")
    via: str | None = text("via")
    outcome: str | None = text("outcome")
    reason: str | None = text("reason")
    detail: str | None = text("detail")


@dataclass(frozen=True)
class Refusal(Part):
    """`fence.refusal`: the agent refused the order (`outcome/reason`)."""

    reason: str | None = text("reason")
    at: Stamp | None = time("at")
    via: str | None = text("via")


@dataclass(frozen=True)
class PeerSilence(Part):
    """`fence.peerSilence`: what the other agents last told this node."""

    checked_at: Stamp | None = time("checkedAt")
    asked: int | None = integer("asked")
    answered: int | None = integer("answered")
    complete: bool | None = flag("complete")
    last_healthy_answer_at: Stamp | None = time("lastHealthyAnswerAt")


@dataclass(frozen=True)
class EvidenceRecord(Part):
    """`fence.evidence`: the rule that proved the node fenced and the numbers it used."""

    rule: str | None = text("rule")
    inputs: JSON | None = free_object("inputs")
    deadline: Stamp | None = time("deadline")
    satisfied_at: Stamp | None = time("satisfiedAt")


@dataclass(frozen=True)
class FenceStatus(Part):
    """`fence` (controller)."""

    order: str | None = text("order")
    action: str | None = text("action")
    issued_at: Stamp | None = time("issuedAt")
    expires_at: Stamp | None = time("expiresAt")
    boot_id: str | None = text("bootId")
    delivered_via: tuple[str, ...] | None = texts("deliveredVia", MAX_DELIVERED_VIA)
    last_answer: LastAnswer | None = part("lastAnswer", LastAnswer)
    acknowledgement: AckRecord | None = part("acknowledgement", AckRecord)
    refusal: Refusal | None = part("refusal", Refusal)
    peer_silence: PeerSilence | None = part("peerSilence", PeerSilence)
    evidence: EvidenceRecord | None = part("evidence", EvidenceRecord)


@dataclass(frozen=True)
class EscalationStatus(Part):
    """`escalation`: the rung taken when self-fencing could not be proven (controller)."""

    kind: str | None = text("kind")
    cause: str | None = text("cause")
    cause_message: str | None = text("causeMessage")
    started_at: Stamp | None = time("startedAt")
    attempts: int | None = integer("attempts")
    finished_attempt: int | None = integer("finishedAttempt")
    last_exit_code: int | None = integer("lastExitCode")
    finished_at: Stamp | None = time("finishedAt")
    output: str | None = text("output")
    device: str | None = text("device")
    agent: str | None = text("agent")
    action: str | None = text("action")
    outcome: str | None = text("outcome")
    runs: tuple[str, ...] | None = texts("runs", MAX_RUNS)
    summary: str | None = text("summary")
    power_off_confirmed_at: Stamp | None = time("powerOffConfirmedAt")


@dataclass(frozen=True)
class RecoveryStatus(Part):
    """`recovery` (controller): `requested_at` is the intent, written before acting."""

    strategy: str | None = text("strategy")
    requested_at: Stamp | None = time("requestedAt")
    taint_applied_at: Stamp | None = time("taintAppliedAt")
    pods_deleted: int | None = integer("podsDeleted")
    volume_attachments_deleted: int | None = integer("volumeAttachmentsDeleted")
    # Why the controller did not delete the pods the taint evicts (pod GC does).
    pod_deletion_skipped: str | None = text("podDeletionSkipped")
    taint_removed_at: Stamp | None = time("taintRemovedAt")


@dataclass(frozen=True)
class KubeletRestart(Part):
    """`kubeletRestart`: the restart-kubelet order tried first (controller)."""

    order: str | None = text("order")
    issued_at: Stamp | None = time("issuedAt")
    outcome: str | None = text("outcome")
    detail: str | None = text("detail")


@dataclass(frozen=True)
class AgentReport(Part):
    """`agentReport`: written by the node's agent about its own fence."""

    fence_started_at: Stamp | None = time("fenceStartedAt")
    last_feed_at: Stamp | None = time("lastFeedAt")
    watchdog_timeout_s: float | None = number("watchdogTimeoutSeconds")
    boot_id: str | None = text("bootId")


@dataclass(frozen=True)
class Condition(Part):
    """`conditions[]` (controller)."""

    type: str | None = text("type")
    status: str | None = text("status")
    reason: str | None = text("reason")
    message: str | None = text("message")
    last_transition_time: Stamp | None = time("lastTransitionTime")
    observed_generation: int | None = integer("observedGeneration")


@dataclass(frozen=True)
class RemediationStatus(Part):
    """The whole `status`."""

    phase: Phase | None = field_of("phase", _phase, "string")
    reason: str | None = text("reason")
    message: str | None = text("message")
    phase_since: Stamp | None = time("phaseSince")
    history: tuple[HistoryEntry, ...] | None = parts("history", HistoryEntry, MAX_HISTORY)
    alerts: tuple[AlertRecord, ...] | None = parts("alerts", AlertRecord, MAX_ALERTS)
    requested_by: str | None = text("requestedBy")
    plan: PlanRecord | None = part("plan", PlanRecord)
    approval: Approval | None = part("approval", Approval)
    cancellation: Cancellation | None = part("cancellation", Cancellation)
    fence: FenceStatus | None = part("fence", FenceStatus)
    recovery: RecoveryStatus | None = part("recovery", RecoveryStatus)
    escalation: EscalationStatus | None = part("escalation", EscalationStatus)
    kubelet_restart: KubeletRestart | None = part("kubeletRestart", KubeletRestart)
    agent_report: AgentReport | None = part("agentReport", AgentReport)
    conditions: tuple[Condition, ...] | None = parts("conditions", Condition, MAX_CONDITIONS)


def parse_status(obj: object, only: frozenset[str] | None = None) -> RemediationStatus:
    """The typed status of a NodeRemediation object (every part absent when it has none);
    with `only`, just those top-level keys of it."""
    status = obj.get("status") if isinstance(obj, dict) else None
    return RemediationStatus.from_json(status, only) or RemediationStatus()


def status_fields(shape: type[Part] = RemediationStatus, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted JSON path, kind) of every field the shapes know, parts and their fields."""
    for f in dataclasses.fields(shape):
        path = prefix + f.metadata["key"]
        yield path, f.metadata["kind"]
        inner = f.metadata.get("shape")
        if inner is not None:
            yield from status_fields(inner, path + ("[]." if f.metadata["kind"] == "array" else "."))
