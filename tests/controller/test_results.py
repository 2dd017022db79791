"""Results of actions are facts: a status write that loses a race to another writer is
retried on the fresh object instead of being lost (an action repeated would report
nothing the second time: a pod deleted twice counts zero)."""

from __future__ import annotations

import pytest

from controller.kube import Kind
from controller.model import RemediationView
from core.clock import FakeClock
from core.kube import Conflict
from tests.controller.builders import T0, remediation
from tests.controller.fakes import FakeControllerKube, make_reconciler

RESULTS = {"recovery": {"podsDeleted": 3, "volumeAttachmentsDeleted": 1}}


def stored(kube: FakeControllerKube) -> RemediationView:
    rem = remediation("Recovering")
    obj = {"metadata": {"name": rem.name, "uid": rem.uid}, "spec": {"nodeName": rem.node},
           "status": dict(rem.raw_status)}
    return RemediationView.parse(kube.put(Kind.REMEDIATIONS, obj))


def run(others_first: int) -> FakeControllerKube:
    """Write RESULTS on a view read before another writer (an alert recorded) wrote
    `others_first` times, each just before one of the controller's writes."""
    kube = FakeControllerKube()
    rem = stored(kube)
    reconciler = make_reconciler(kube, FakeClock(T0))
    left = [others_first]

    def alert_recorded(name: str) -> None:
        if left[0]:
            left[0] -= 1
            kube.write_status(name, {"alerts": [{"fingerprint": "a", "status": "firing"}]})

    kube.before_status_patch = alert_recorded
    reconciler._write_results(rem, RESULTS)
    return kube


def test_a_lost_race_is_retried_on_the_fresh_object() -> None:
    kube = run(others_first=2)
    status = kube.object(Kind.REMEDIATIONS, "node-1")["status"]
    assert status["recovery"]["podsDeleted"] == 3
    assert status["alerts"] == [{"fingerprint": "a", "status": "firing"}]  # theirs is kept
    assert kube.calls["patch_remediation_status"] == 3  # two conflicts, then the write


def test_persistent_conflicts_surface() -> None:
    with pytest.raises(Conflict):
        run(others_first=10)
