"""Results of actions are facts: a status write that loses a race to another writer is
retried on the fresh object instead of being lost (an action repeated would report
nothing the second time: a pod deleted twice counts zero)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controller.model import RemediationView
from controller.reconcile import Reconciler
from controller.status import merge
from core.kube import Conflict
from tests.controller.builders import remediation


class Api:
    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.status = dict(remediation("Recovering").raw_status)
        self.status["alerts"] = [{"fingerprint": "a", "status": "firing"}]  # someone else's write
        self.writes: list[dict[str, Any]] = []

    def get_remediation(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "uid": "uid-1", "resourceVersion": "9"},
                "spec": {"nodeName": name}, "status": self.status}

    def write(self, rem: RemediationView, patch: dict[str, Any]) -> RemediationView:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict(409, "Conflict", "the object has been modified")
        self.status = merge(self.status, patch)
        self.writes.append(patch)
        return RemediationView.parse(self.get_remediation(rem.name))


def run(conflicts: int) -> Api:
    api = Api(conflicts)
    fake = SimpleNamespace(kube=api, _write=api.write)
    results = {"recovery": {"podsDeleted": 3, "volumeAttachmentsDeleted": 1}}
    Reconciler._write_results(fake, remediation("Recovering"), results)  # type: ignore[arg-type]
    return api


def test_a_lost_race_is_retried_on_the_fresh_object() -> None:
    api = run(conflicts=2)
    assert api.status["recovery"]["podsDeleted"] == 3
    assert api.status["alerts"] == [{"fingerprint": "a", "status": "firing"}]  # theirs is kept


def test_persistent_conflicts_surface() -> None:
    with pytest.raises(Conflict):
        run(conflicts=10)
