"""Events are one stored resource served in two versions, as in a real cluster:
core/v1 `Event` (the storage form) and `events.k8s.io/v1` `Event`. These functions
convert between them, field for field."""

from __future__ import annotations

from typing import Any

# events.k8s.io/v1 field -> core/v1 field
_RENAMES = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_BACK = {v: k for k, v in _RENAMES.items()}

# Field selector labels of events.k8s.io/v1, mapped onto the stored core/v1 form.
FIELD_LABELS = {
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "reportingController": "reportingComponent",
}


def to_core(event: dict[str, Any]) -> dict[str, Any]:
    out = {_RENAMES.get(k, k): v for k, v in event.items()}
    out["apiVersion"] = "v1"
    return out


def from_core(event: dict[str, Any]) -> dict[str, Any]:
    out = {_BACK.get(k, k): v for k, v in event.items()}
    out["apiVersion"] = "events.k8s.io/v1"
    return out


def required_causes(event: dict[str, Any]) -> list[dict[str, str]]:
    """events.k8s.io/v1 requires what the old API left optional."""
    causes = []
    for key in ("eventTime", "reportingController", "reportingInstance", "action", "reason"):
        if not event.get(key):
            causes.append({"reason": "FieldValueRequired", "field": key,
                           "message": "Required value"})
    return causes
