"""The NodeRemediation fields the webhook writes (pure functions).

The stored contract is docs/noderemediation.md and its shapes `core.remediation_status`;
every status part here is built with those shapes and stored as their `to_json()`:
- `remediation_body`: metadata + `spec` (written once at creation, never changed);
- `initial_status`: `phase` Pending or AwaitingApproval, `reason`, `message`,
  `phaseSince`, `history[0]` and the first `alerts[]` entry;
- `with_alert`: `alerts[]` entries keyed by (fingerprint, status, startsAt), each with a
  delivery `count` and the last `receivedAt`, newest last, at most 20;
- `cancelled_status`: `phase` Cancelled + `cancellation` + a history entry;
- `approval_status`: `approval`;
- `plan_record` / `rejected_status`: what a person's kubectl request is decided with
  (`status.plan`), or the Rejected status when policy refuses it.
Lists are returned whole, because a JSON merge patch replaces lists.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from core import names
from core.clock import rfc3339
from core.kube import JSON
from core.remediation import Phase
from core.remediation_status import (
    MAX_ALERTS,
    MAX_HISTORY,
    AlertRecord,
    Approval,
    Cancellation,
    HistoryEntry,
    PlanRecord,
    RemediationStatus,
    Stamp,
)
from webhook.policy import Plan, Source, Verdict

MAX_TEXT = 1024
LABEL_NODE = names.ANNOTATION_PREFIX + "node"


@functools.lru_cache(maxsize=4096)
def _starts_text(starts_at: float) -> str:
    """`rfc3339(starts_at)`, memoized: every repeat of an alert carries the same startsAt."""
    return rfc3339(starts_at)


@functools.lru_cache(maxsize=64)
def _second_text(second: int) -> str:
    return rfc3339(second)


def second_text(ts: float) -> str:
    """`rfc3339(ts)`, memoized per second. datetime rounds a timestamp to microseconds
    before it shows the second, so this rounds the same way."""
    second = math.floor(ts)
    if round((ts - second) * 1_000_000) >= 1_000_000:
        second += 1
    return _second_text(second)


@dataclass(frozen=True)
class Trigger:
    """Who asked for a remediation (becomes `spec.trigger`)."""

    source: Source
    received_at: float
    alert_name: str = ""
    fingerprint: str = ""
    starts_at: float | None = None
    requested_by: str = ""
    reason: str = ""

    def to_json(self) -> JSON:
        out: JSON = {"source": str(self.source), "receivedAt": rfc3339(self.received_at)}
        if self.source is Source.ALERTMANAGER:
            out["alertName"] = self.alert_name[:253]
            out["fingerprint"] = self.fingerprint[:64]
            if self.starts_at is not None:
                out["startsAt"] = rfc3339(self.starts_at)
        else:
            out["requestedBy"] = self.requested_by[:253]
            out["reason"] = self.reason[:MAX_TEXT]
        return out


@dataclass(frozen=True)
class AlertEntry:
    """One delivery of an alert about the node (an entry of `status.alerts`)."""

    alert_name: str
    fingerprint: str
    status: str
    starts_at: float | None
    received_at: float
    _key: tuple[str, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = _starts_text(self.starts_at) if self.starts_at is not None else ""
        object.__setattr__(self, "_key", (self.fingerprint, self.status, starts))

    def key(self) -> tuple[str, str, str]:
        """(fingerprint, status, startsAt as stored): which alert instance this is."""
        return self._key


def _entry_key(entry: JSON) -> tuple[str, str, str]:
    return (
        str(entry.get("fingerprint")),
        str(entry.get("status")),
        str(entry.get("startsAt") or ""),
    )


def remediation_body(node: str, trigger: Trigger, plan: Plan) -> JSON:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": node, "labels": {LABEL_NODE: node}},
        "spec": {
            "nodeName": node,
            "trigger": trigger.to_json(),
            "dryRun": plan.dry_run,
            "approvalRequired": plan.approval_required,
            "policyGroup": plan.group,
            "strategy": str(plan.strategy),
            "escalation": str(plan.escalation),
            "fourEyes": plan.four_eyes,
            "force": plan.force,
        },
    }


def plan_record(plan: Plan) -> PlanRecord:
    """`status.plan`: what policy decided for a person's kubectl request, whose spec is theirs."""
    return PlanRecord(
        policy_group=plan.group,
        strategy=str(plan.strategy),
        escalation=str(plan.escalation),
        approval_required=plan.approval_required,
        four_eyes=plan.four_eyes,
        dry_run=plan.dry_run,
        force=plan.force,
    )


def rejected_status(verdict: Verdict, requested_by: str, now: float) -> JSON:
    """The status of a person's kubectl request that policy refused (terminal, no cooldown)."""
    return RemediationStatus(
        phase=Phase.REJECTED,
        reason=str(verdict.reason),
        message=verdict.message[:MAX_TEXT],
        phase_since=Stamp.second(now),
        requested_by=requested_by[:253],
        history=(history_record(Phase.REJECTED, str(verdict.reason), verdict.message, now),),
    ).to_json()


def history_record(phase: str, reason: str, message: str, at: float) -> HistoryEntry:
    return HistoryEntry(phase=str(phase), reason=reason, message=message[:MAX_TEXT], at=Stamp.second(at))


def history_entry(phase: str, reason: str, message: str, at: float) -> JSON:
    return history_record(phase, reason, message, at).to_json()


def initial_phase(spec: JSON) -> Phase:
    return Phase.AWAITING_APPROVAL if spec.get("approvalRequired") else Phase.PENDING


def initial_status(
    spec: JSON, verdict: Verdict, now: float, alert: AlertEntry | None, note: str = ""
) -> JSON:
    """The status a new remediation starts with (written through /status after create)."""
    phase = initial_phase(spec)
    message = verdict.message + (f"; {note}" if note else "")
    out = RemediationStatus(
        phase=phase,
        reason=str(verdict.reason),
        message=message[:MAX_TEXT],
        phase_since=Stamp.second(now),
        history=(history_record(phase, str(verdict.reason), message, now),),
    ).to_json()
    out["alerts"] = with_alert([], alert, 1) if alert else []
    return out


def with_alert(alerts: list[Any], entry: AlertEntry, deliveries: int) -> list[JSON]:
    """`alerts` with `deliveries` more deliveries of `entry`; newest last, capped."""
    key = entry.key()
    kept: list[JSON] = []
    count = 0
    for item in alerts:
        if not isinstance(item, dict):
            continue
        if _entry_key(item) == key:
            count = int(item.get("count") or 0)
        else:
            kept.append(item)
    record = AlertRecord(
        alert_name=entry.alert_name[:253],
        fingerprint=entry.fingerprint[:64],
        status=entry.status,
        received_at=Stamp.second(entry.received_at),
        count=count + deliveries,
        starts_at=None if entry.starts_at is None else Stamp(entry.starts_at, _starts_text(entry.starts_at)),
    )
    return [*kept, record.to_json()][-MAX_ALERTS:]


def has_entry(alerts: list[Any], entry: AlertEntry) -> bool:
    """Whether `alerts` already holds an entry for `entry`'s alert instance."""
    key = entry.key()
    return any(isinstance(item, dict) and _entry_key(item) == key for item in alerts)


def recorded_recently(alerts: list[Any], entry: AlertEntry, interval_s: float) -> bool:
    """Whether `entry` was already written less than `interval_s` before its delivery."""
    key = entry.key()
    for item in alerts:
        if isinstance(item, dict) and _entry_key(item) == key:
            received = item.get("receivedAt")
            since = second_text(entry.received_at - interval_s)
            if isinstance(received, str) and received >= since:
                return True
    return False


def cancelled_status(
    status: JSON, verdict: Verdict, requested_by: str, reason_text: str, now: float
) -> JSON:
    """The status patch that moves a remediation to Cancelled."""
    history = [h for h in status.get("history") or [] if isinstance(h, dict)]
    history.append(history_entry(Phase.CANCELLED, str(verdict.reason), verdict.message, now))
    out = RemediationStatus(
        phase=Phase.CANCELLED,
        reason=str(verdict.reason),
        message=verdict.message[:MAX_TEXT],
        phase_since=Stamp.second(now),
        cancellation=Cancellation(
            requested_by=requested_by[:253], reason=reason_text[:MAX_TEXT], at=Stamp.second(now)
        ),
    ).to_json()
    # Entries already stored are kept as they are (a merge patch replaces the whole list).
    out["history"] = history[-MAX_HISTORY:]
    return out


def approval_status(approved_by: str, now: float) -> JSON:
    approval = Approval(approved_by=approved_by[:253], approved_at=Stamp.second(now))
    return RemediationStatus(approval=approval).to_json()


def summary(obj: JSON) -> JSON:
    """The short form of a remediation used in API lists."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "createdAt": meta.get("creationTimestamp"),
        "phase": status.get("phase") or initial_phase(spec),
        "reason": status.get("reason", ""),
        "message": status.get("message", ""),
        "phaseSince": status.get("phaseSince"),
        "strategy": spec.get("strategy"),
        "escalation": spec.get("escalation"),
        "dryRun": bool(spec.get("dryRun")),
        "approvalRequired": bool(spec.get("approvalRequired")),
        "approved": bool((status.get("approval") or {}).get("approvedAt")),
        "trigger": spec.get("trigger") or {},
        "evidence": ((status.get("fence") or {}).get("evidence") or {}).get("rule"),
    }
