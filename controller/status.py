"""Building the `/status` merge patch for a decision: phase, reason, message, phaseSince,
history and conditions, plus the decision's own subtrees, and nothing when nothing
changes (so a steady remediation does not write at every look)."""

from __future__ import annotations

import copy
from typing import Any

from controller.machine import Decision
from controller.model import Phase, RemediationView
from core.kube import merge_patch
from core.remediation import ConditionType
from core.remediation_status import Condition, HistoryEntry, Stamp

HISTORY_LIMIT = 50
REPLACED_SUBTREES = (("fence", "evidence"),)  # written whole: stale keys are removed

_CONDITIONS = {  # entering a phase sets these conditions
    Phase.FENCED: [(ConditionType.FENCED, "True")],
    Phase.AWAITING_NODE_READY: [(ConditionType.RECOVERED, "True")],
    Phase.SUCCEEDED: [(ConditionType.NODE_READY, "True")],
}


merge = merge_patch


def _combine(first: Any, second: Any) -> Any:
    """Two merge patches as one: like `merge`, but a null (a deletion) is kept."""
    if not isinstance(first, dict) or not isinstance(second, dict):
        return copy.deepcopy(second)
    out = dict(first)
    for key, value in second.items():
        out[key] = _combine(out[key], value) if key in out else copy.deepcopy(value)
    return out


def _replace(current: Any, new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that turns `current` into exactly `new`."""
    patch: dict[str, Any] = dict(new)
    if isinstance(current, dict):
        for key, value in current.items():
            if key not in new:
                patch[key] = None
            elif isinstance(value, dict) and isinstance(new[key], dict):
                patch[key] = _replace(value, new[key])
    return patch


def decision_patch(rem: RemediationView, decision: Decision, now: float,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    status = rem.raw_status
    patch: dict[str, Any] = {}
    phase_changed = decision.phase != rem.phase or not status.get("phase")
    if phase_changed or decision.reason != rem.reason:
        patch.update({"phase": str(decision.phase), "reason": str(decision.reason),
                      "message": decision.message[:1024]})
        if phase_changed:
            patch["phaseSince"] = Stamp.at(now).text
        history = list(status.get("history") or [])
        history.append(HistoryEntry(phase=str(decision.phase), reason=str(decision.reason),
                                    message=decision.message[:1024], at=Stamp.at(now)).to_json())
        patch["history"] = history[-HISTORY_LIMIT:]
        if phase_changed and decision.phase in _CONDITIONS:
            conditions = {c.get("type"): c for c in status.get("conditions") or []}
            for ctype, value in _CONDITIONS[decision.phase]:
                conditions[str(ctype)] = Condition(type=str(ctype), status=value, reason=str(decision.reason),
                                                   message=decision.message[:1024],
                                                   last_transition_time=Stamp.at(now)).to_json()
            patch["conditions"] = list(conditions.values())
    for subtree in (decision.status, extra or {}):
        for key, value in subtree.items():
            patch[key] = _combine(patch[key], value) if key in patch else copy.deepcopy(value)
    for outer, inner in REPLACED_SUBTREES:
        new = (patch.get(outer) or {}).get(inner)
        if isinstance(new, dict):
            patch[outer][inner] = _replace((status.get(outer) or {}).get(inner), new)
    if merge(status, patch) == status:
        return {}
    return patch
