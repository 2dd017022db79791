"""The reconcile of one remediation over `FakeControllerKube`: who may write, and that the
decision is written with the resourceVersion it was taken on, so a concurrent write by
someone else (the webhook's cancel) wins and nothing is acted on a stale view. And the
Actor's recovery calls, as the API server sees them."""

from __future__ import annotations

from typing import Any

import pytest

from controller.kube import OOS, Kind
from core import names
from core.clock import FakeClock, rfc3339
from core.kube import Conflict, Forbidden
from tests.controller.builders import T0
from tests.controller.fakes import FakeControllerKube, make_reconciler, sync


def remediation(phase: str | None, **spec: Any) -> dict[str, Any]:
    status = {} if phase is None else {"phase": phase, "reason": "Accepted", "phaseSince": "2027-01-15T08:00:00Z"}
    return {"apiVersion": names.API_VERSION, "kind": names.KIND,
            "metadata": {"name": "node-1", "uid": "uid-1"},
            "spec": {"nodeName": "node-1", "strategy": "OutOfServiceTaint", "escalation": "OperatorApproval",
                     "trigger": {"source": "alertmanager", "receivedAt": "2027-01-15T08:00:00Z"}, **spec},
            "status": status}


def node(name: str = "node-1", taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": {"taints": list(taints or [])},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}


@pytest.fixture
def kube() -> FakeControllerKube:
    kube = FakeControllerKube()
    kube.put(Kind.NODES, node())
    return kube


def test_a_pending_remediation_moves_to_confirming(kube: FakeControllerKube) -> None:
    kube.put(Kind.REMEDIATIONS, remediation("Pending"))
    reconciler = make_reconciler(kube, FakeClock(T0))
    reconciler.reconcile("node-1")
    assert kube.object(Kind.REMEDIATIONS, "node-1")["status"]["phase"] == "Confirming"


def test_a_standby_replica_writes_nothing(kube: FakeControllerKube) -> None:
    kube.put(Kind.REMEDIATIONS, remediation("Pending"))
    assert make_reconciler(kube, FakeClock(T0), leading=False).reconcile("node-1") is None
    assert kube.calls["patch_remediation_status"] == 0
    assert kube.object(Kind.REMEDIATIONS, "node-1")["status"]["phase"] == "Pending"


def test_an_object_the_webhook_has_not_decided_is_not_touched(kube: FakeControllerKube) -> None:
    kube.put(Kind.REMEDIATIONS, remediation(None))
    assert make_reconciler(kube, FakeClock(T0)).reconcile("node-1") is None
    assert kube.calls["patch_remediation_status"] == 0


def test_a_cancel_written_after_the_read_wins_over_the_decision(kube: FakeControllerKube) -> None:
    kube.put(Kind.REMEDIATIONS, remediation("Pending"))
    reconciler = make_reconciler(kube, FakeClock(T0))
    kube.before_status_patch = lambda name: kube.write_status(name, {"phase": "Cancelled", "reason": "Cancelled"})
    with pytest.raises(Conflict):
        reconciler.reconcile("node-1")
    assert kube.object(Kind.REMEDIATIONS, "node-1")["status"]["phase"] == "Cancelled"
    kube.before_status_patch = None
    sync(reconciler)  # the watch delivers the cancel: a finished remediation gets no write
    assert reconciler.reconcile("node-1") is None
    assert kube.object(Kind.REMEDIATIONS, "node-1")["status"]["phase"] == "Cancelled"


def test_the_taint_is_added_once_and_removed_keeping_other_taints(kube: FakeControllerKube) -> None:
    other = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    kube.put(Kind.NODES, node(taints=[other]))
    actor = make_reconciler(kube, FakeClock(T0)).actor
    key, value, effect = OOS
    actor.apply_taint("node-1")
    actor.apply_taint("node-1")
    taints = kube.object(Kind.NODES, "node-1")["spec"]["taints"]
    assert taints == [other, {"key": key, "value": value, "effect": effect}]
    assert actor.metrics.taint_changes.labels("added")._value.get() == 1
    actor.remove_taint("node-1")
    assert kube.object(Kind.NODES, "node-1")["spec"]["taints"] == [other]


def test_no_taint_before_the_proof_and_the_fencing_taint_is_timed_and_goes_with_the_other(
        kube: FakeControllerKube) -> None:
    kube.put(Kind.REMEDIATIONS, remediation("Confirming"))
    reconciler = make_reconciler(kube, FakeClock(T0 + 0.2))
    reconciler.reconcile("node-1")
    assert kube.object(Kind.REMEDIATIONS, "node-1")["status"]["phase"] == "Fencing"
    # The order went out; nothing evicts the node's pods before the fence is proven.
    assert kube.object(Kind.NODES, "node-1")["spec"]["taints"] == []
    assert kube.calls["set_fencing_taint"] == 0
    actor = reconciler.actor
    actor.add_fencing_taint("node-1", T0 + 0.2)
    assert kube.object(Kind.NODES, "node-1")["spec"]["taints"] == [
        {"key": names.FENCING_TAINT_KEY, "value": names.FENCING_TAINT_VALUE, "effect": "NoExecute",
         "timeAdded": rfc3339(T0 + 1)}]  # rounded up to the second
    actor.apply_taint("node-1")
    actor.remove_taint("node-1")
    assert kube.object(Kind.NODES, "node-1")["spec"]["taints"] == []
    assert actor.metrics.fencing_taint_changes.labels("added")._value.get() == 1
    assert actor.metrics.fencing_taint_changes.labels("removed")._value.get() == 1


def test_a_dry_run_puts_no_fencing_taint_on_the_node(kube: FakeControllerKube) -> None:
    kube.put(Kind.REMEDIATIONS, remediation("Fencing", dryRun=True))  # its "order" is being issued
    make_reconciler(kube, FakeClock(T0)).reconcile("node-1")
    assert kube.object(Kind.REMEDIATIONS, "node-1")["status"]["fence"]  # it did decide to fence
    assert kube.object(Kind.NODES, "node-1")["spec"]["taints"] == []
    assert kube.calls["set_fencing_taint"] == 0


def test_resource_deletion_counts_only_the_nodes_pods_and_attachments(kube: FakeControllerKube) -> None:
    kube.add_pod("web-0", "node-1")
    kube.add_pod("web-1", "node-2")
    kube.add_volume_attachment("csi-a", "node-1")
    actor = make_reconciler(kube, FakeClock(T0)).actor
    assert actor.delete_resources("node-1") == {"recovery": {"podsDeleted": 1, "volumeAttachmentsDeleted": 1}}
    assert [p["metadata"]["name"] for p in kube.pods] == ["web-1"]


def test_after_the_taint_only_the_terminating_pods_are_deleted_as_pod_gc_would(kube: FakeControllerKube) -> None:
    kube.add_pod("db-0", "node-1", terminating=True)  # evicted by the taint-eviction controller
    kube.add_pod("stays", "node-1", tolerations=[{"operator": "Exists"}])  # tolerated: not evicted
    kube.add_pod("web-1", "node-2", terminating=True)  # another node's
    actor = make_reconciler(kube, FakeClock(T0)).actor
    assert actor.delete_evicted_pods("node-1") == {"recovery": {"podsDeleted": 1}}
    assert sorted(p["metadata"]["name"] for p in kube.pods) == ["stays", "web-1"]
    assert actor.metrics.pod_deletions.labels("deleted")._value.get() == 1


def test_a_controller_that_may_not_delete_pods_records_why_and_leaves_them_to_pod_gc(
        kube: FakeControllerKube, monkeypatch: pytest.MonkeyPatch) -> None:
    kube.add_pod("db-0", "node-1")
    actor = make_reconciler(kube, FakeClock(T0)).actor

    def forbidden(node: str, terminating_only: bool = False) -> int:
        raise Forbidden(403, "Forbidden", 'pods is forbidden: cannot list resource "pods"')

    monkeypatch.setattr(kube, "delete_node_pods", forbidden)
    result = actor.delete_evicted_pods("node-1")
    assert "podsDeleted" not in result["recovery"]
    assert result["recovery"]["podDeletionSkipped"].startswith("Forbidden")
    assert actor.metrics.pod_deletions.labels("forbidden")._value.get() == 1
    assert [p["metadata"]["name"] for p in kube.pods] == ["db-0"]
