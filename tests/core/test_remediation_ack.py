"""A FenceNotObserved needs a person's acknowledgement; nothing else does."""

from __future__ import annotations

from typing import Any

from core.remediation import ACKNOWLEDGED_ANNOTATION, needs_acknowledgement


def rem(phase: str, reason: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "n1", "annotations": annotations or {}},
            "status": {"phase": phase, "reason": reason}}


def test_a_fence_not_observed_needs_an_acknowledgement_until_a_person_gives_one() -> None:
    assert needs_acknowledgement(rem("Failed", "FenceNotObserved"))
    assert needs_acknowledgement(rem("Failed", "FenceNotObserved", {ACKNOWLEDGED_ANNOTATION: "  "}))
    assert not needs_acknowledgement(rem("Failed", "FenceNotObserved", {ACKNOWLEDGED_ANNOTATION: "jane: checked"}))


def test_other_outcomes_need_none() -> None:
    assert not needs_acknowledgement(rem("Failed", "RecoveryFailed"))
    assert not needs_acknowledgement(rem("Succeeded", "NodeReturned"))
    assert not needs_acknowledgement({"metadata": {"name": "n1"}})
