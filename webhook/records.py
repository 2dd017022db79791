"""The NodeRemediation fields the webhook writes, built as plain JSON (pure functions).

The stored contract is docs/noderemediation.md; this module is the webhook's side of it:
- `remediation_body`: metadata + `spec` (written once at creation, never changed);
- `initial_status`: `phase` Pending or AwaitingApproval, `reason`, `message`,
  `phaseSince`, `history[0]` and the first `alerts[]` entry;
- `with_alert`: `alerts[]` entries keyed by (fingerprint, status, startsAt), each with a
  delivery `count` and the last `receivedAt`, newest last, at most 20;
- `cancelled_status`: `phase` Cancelled + `cancellation` + a history entry;
- `approval_status`: `approval`;
- `plan_json` / `rejected_status`: what a person's kubectl request is decided with
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
from webhook.policy import Plan, Source, Verdict

MAX_HISTORY = 50
MAX_ALERTS = 20
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


def plan_json(plan: Plan) -> JSON:
    """`status.plan`: what policy decided for a person's kubectl request, whose spec is theirs."""
    return {
        "policyGroup": plan.group,
        "strategy": str(plan.strategy),
        "escalation": str(plan.escalation),
        "approvalRequired": plan.approval_required,
        "fourEyes": plan.four_eyes,
        "dryRun": plan.dry_run,
        "force": plan.force,
    }


def rejected_status(verdict: Verdict, requested_by: str, now: float) -> JSON:
    """The status of a person's kubectl request that policy refused (terminal, no cooldown)."""
    return {
        "phase": Phase.REJECTED,
        "reason": str(verdict.reason),
        "message": verdict.message[:MAX_TEXT],
        "phaseSince": rfc3339(now),
        "requestedBy": requested_by[:253],
        "history": [history_entry(Phase.REJECTED, str(verdict.reason), verdict.message, now)],
    }


def history_entry(phase: str, reason: str, message: str, at: float) -> JSON:
    return {"phase": phase, "reason": reason, "message": message[:MAX_TEXT], "at": rfc3339(at)}


def initial_phase(spec: JSON) -> str:
    return Phase.AWAITING_APPROVAL if spec.get("approvalRequired") else Phase.PENDING


def initial_status(
    spec: JSON, verdict: Verdict, now: float, alert: AlertEntry | None, note: str = ""
) -> JSON:
    """The status a new remediation starts with (written through /status after create)."""
    phase = initial_phase(spec)
    message = verdict.message + (f"; {note}" if note else "")
    return {
        "phase": phase,
        "reason": str(verdict.reason),
        "message": message[:MAX_TEXT],
        "phaseSince": rfc3339(now),
        "history": [history_entry(phase, str(verdict.reason), message, now)],
        "alerts": with_alert([], alert, 1) if alert else [],
    }


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
    record: JSON = {
        "alertName": entry.alert_name[:253],
        "fingerprint": entry.fingerprint[:64],
        "status": entry.status,
        "receivedAt": rfc3339(entry.received_at),
        "count": count + deliveries,
    }
    if entry.starts_at is not None:
        record["startsAt"] = rfc3339(entry.starts_at)
    return [*kept, record][-MAX_ALERTS:]


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
    return {
        "phase": Phase.CANCELLED,
        "reason": str(verdict.reason),
        "message": verdict.message[:MAX_TEXT],
        "phaseSince": rfc3339(now),
        "history": history[-MAX_HISTORY:],
        "cancellation": {
            "requestedBy": requested_by[:253],
            "reason": reason_text[:MAX_TEXT],
            "at": rfc3339(now),
        },
    }


def approval_status(approved_by: str, now: float) -> JSON:
    return {"approval": {"approvedBy": approved_by[:253], "approvedAt": rfc3339(now)}}


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
