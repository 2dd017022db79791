"""Remediation history: the record shape (core.history), the archive step of a new start
(webhook.history through the writer), the rule "no record stored, nothing deleted", and
retention."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core import history
from core.clock import FakeClock
from core.kube import Forbidden, NotFound, Unavailable
from tests.webhook.conftest import START, World, WorldFactory
from tests.webhook.fake_kube import FakeWebhookKube
from webhook.history import ArchiveRefused, HistoryArchive

BASE = "/api/v1/remediations"


# -- the record's shape -----------------------------------------------------------------


def _remediation(node: str = "node-1", uid: str = "0123abcd-0000-4000-8000-000000000000",
                 created: str = "2023-11-14T22:00:00Z", phase: str = "Cancelled") -> dict[str, Any]:
    return {
        "metadata": {"name": node, "uid": uid, "creationTimestamp": created,
                     "annotations": {"nodewarden.io/requested-by": "alice", "other.io/x": "y"}},
        "spec": {"nodeName": node, "trigger": {"source": "operator", "reason": "disk"}},
        "status": {"phase": phase, "history": [{"phase": "Pending", "reason": "Accepted"},
                                               {"phase": phase, "reason": "OperatorCancelled"}]},
    }


def test_a_record_holds_the_final_spec_status_and_audit_annotations() -> None:
    body = history.record_body(_remediation(), START)
    assert body["kind"] == "NodeRemediationRecord"
    assert body["metadata"] == {"name": "node-1-0123abcd", "labels": {"nodewarden.io/node": "node-1"}}
    rec = body["remediation"]
    assert (rec["nodeName"], rec["uid"], rec["phase"]) == (
        "node-1", "0123abcd-0000-4000-8000-000000000000", "Cancelled")
    assert rec["createdAt"] == "2023-11-14T22:00:00Z"
    assert rec["archivedAt"] == "2023-11-14T22:13:20Z"
    assert rec["annotations"] == {"nodewarden.io/requested-by": "alice"}  # ours only
    assert rec["status"]["history"][-1]["reason"] == "OperatorCancelled"


def test_a_long_node_name_gets_a_valid_name_and_a_hashed_label() -> None:
    node = "n" * 100 + ".example.com"
    assert history.node_label_value(node).startswith("sha256-")
    assert len(history.node_label_value(node)) <= 63
    assert history.node_label_value(node) == history.node_label_value(node)
    assert history.node_label_value("node-1") == "node-1"
    assert history.node_selector(node) == f"nodewarden.io/node={history.node_label_value(node)}"
    name = history.record_name("x" * 253, "ABCDEF12-rest")
    assert len(name) == 253 and name.endswith("-abcdef12")


def test_retention_keeps_the_newest_remediations_whatever_order_they_were_archived_in() -> None:
    recs = [history.record_body(_remediation(uid=f"{i:08x}", created=f"2023-11-14T22:0{i}:00Z"), START - i)
            for i in (3, 1, 4, 2, 5)]
    gone = history.beyond_retention(recs, 2)
    assert sorted(r["remediation"]["uid"] for r in gone) == ["00000001", "00000002", "00000003"]
    with pytest.raises(ValueError):
        history.beyond_retention(recs, 0)


# -- the archive step of a new start ----------------------------------------------------


def _cycle(w: World, node: str, reason: str) -> dict[str, Any]:
    """Ask for a remediation of `node` and cancel it: a finished remediation."""
    response = w.op("POST", BASE, {"node": node, "reason": reason})
    assert response.status_code == 201, response.get_json()
    assert w.op("POST", f"{BASE}/{node}/cancel", {"reason": f"undo {reason}"}).status_code == 200
    rem = w.remediation(node)
    assert rem is not None and rem["status"]["phase"] == "Cancelled"
    return rem


def _world(world: WorldFactory, **settings: Any) -> World:
    w = world(policy={"rateLimit": {"maxRemediations": 100, "window": "15m"}}, **settings)
    w.kube.set_ready("node-3", "False")
    w.settle()
    return w


def test_a_new_remediation_archives_the_finished_one_before_deleting_it(world: WorldFactory) -> None:
    w = _world(world)
    first = _cycle(w, "node-3", "first")
    assert w.kube.records == {}  # nothing replaced yet: the live object is the history
    assert w.op("POST", BASE, {"node": "node-3", "reason": "second"}).status_code == 201

    (record,) = w.kube.records.values()
    assert record["metadata"]["name"] == f"node-3-{first['metadata']['uid'][:8]}"
    assert record["metadata"]["labels"] == {"nodewarden.io/node": "node-3"}
    assert record["remediation"]["uid"] == first["metadata"]["uid"]
    assert record["remediation"]["status"] == first["status"]  # the whole trail, as it ended
    assert record["remediation"]["status"]["cancellation"]["requestedBy"] == "alice"
    assert record["remediation"]["spec"]["trigger"]["reason"] == "first"
    live = w.remediation("node-3")
    assert live is not None and live["metadata"]["uid"] != first["metadata"]["uid"]


@pytest.mark.parametrize("error,code", [
    (Forbidden(403, "Forbidden", "noderemediationrecords is forbidden"), 502),
    (NotFound(404, "NotFound", "the server could not find the requested resource"), 502),
    (Unavailable(0, "ConnectionRefused", "connection refused"), 503),
])
def test_no_record_stored_means_the_finished_remediation_stays_and_nothing_starts(
        world: WorldFactory, error: Exception, code: int) -> None:
    w = _world(world)
    first = _cycle(w, "node-3", "first")
    w.kube.refuse_records = error

    response = w.op("POST", BASE, {"node": "node-3", "reason": "second"})

    assert response.status_code == code
    if code == 502:
        assert response.get_json()["reason"] == "ApiError"
        assert "history record node-3-" in str(response.get_json())
    kept = w.remediation("node-3")
    assert kept is not None and kept["metadata"]["uid"] == first["metadata"]["uid"]
    assert w.kube.calls["delete_remediation"] == 0
    assert w.kube.calls["create_remediation"] == 1
    assert w.sample("nodewarden_webhook_kube_errors_total", operation="archive",
                    error=type(error).__name__) == 1
    # Once the archive works again, the next request starts and the history is complete.
    w.kube.refuse_records = None
    assert w.op("POST", BASE, {"node": "node-3", "reason": "third"}).status_code == 201
    (record,) = w.kube.records.values()
    assert record["remediation"]["uid"] == first["metadata"]["uid"]


def test_history_is_pruned_to_the_newest_n_per_node(world: WorldFactory) -> None:
    w = _world(world, history_per_node=2)
    w.kube.set_ready("node-4", "False")
    w.settle()
    uids = []
    for i in range(4):
        uids.append(_cycle(w, "node-3", f"cycle {i}")["metadata"]["uid"])
        w.clock.advance(60)
    other = _cycle(w, "node-4", "another node")
    assert w.op("POST", BASE, {"node": "node-4", "reason": "again"}).status_code == 201
    assert w.op("POST", BASE, {"node": "node-3", "reason": "last"}).status_code == 201

    def kept(node: str) -> list[str]:
        return sorted(r["remediation"]["uid"] for r in w.kube.records.values()
                      if r["remediation"]["nodeName"] == node)

    assert kept("node-3") == sorted(uids[2:])  # cycles 2 and 3; 0 and 1 pruned
    assert kept("node-4") == [other["metadata"]["uid"]]  # another node's are its own


def test_a_prune_that_fails_loses_nothing_and_does_not_block(world: WorldFactory) -> None:
    kube = FakeWebhookKube(FakeClock(START))
    errors: list[str] = []
    archive = HistoryArchive(kube, kube.clock, keep_per_node=1, on_error=lambda op, exc: errors.append(op))  # type: ignore[arg-type]
    archive.keep(_remediation(uid="aaaaaaaa-1", created="2023-11-14T22:01:00Z"))
    archive.keep(_remediation(uid="bbbbbbbb-2", created="2023-11-14T22:02:00Z"))
    kube.refuse_records = Forbidden(403, "Forbidden", "no delete")
    assert archive.prune("node-1") == 0
    assert errors == ["prune"] and len(kube.records) == 2
    kube.refuse_records = None
    assert archive.prune("node-1") == 1
    assert [r["remediation"]["uid"] for r in kube.records.values()] == ["bbbbbbbb-2"]


def test_a_record_taken_from_an_older_read_is_replaced_by_the_state_being_deleted() -> None:
    kube = FakeWebhookKube(FakeClock(START))
    archive = HistoryArchive(kube, kube.clock)  # type: ignore[arg-type]
    older = _remediation(uid="beef0000-1")
    newer = _remediation(uid="beef0000-1")
    newer["metadata"]["annotations"]["nodewarden.io/acknowledged"] = "bob: checked the disk"
    archive.keep(older)
    kube.clock.advance(5)  # type: ignore[attr-defined]
    archive.keep(older)  # the same state again: nothing rewritten
    assert kube.calls["delete_record"] == 0
    archive.keep(newer)
    (record,) = kube.records.values()
    assert record["remediation"]["annotations"]["nodewarden.io/acknowledged"] == "bob: checked the disk"


def test_archiving_again_is_idempotent_but_a_name_taken_by_another_remediation_is_refused() -> None:
    kube = FakeWebhookKube(FakeClock(START))
    archive = HistoryArchive(kube, kube.clock)  # type: ignore[arg-type]
    rem = _remediation(uid="cafe0000-1")
    assert archive.keep(rem) == archive.keep(rem) == "node-1-cafe0000"
    assert len(kube.records) == 1
    with pytest.raises(ArchiveRefused, match="archives remediation cafe0000-1"):
        archive.keep(_remediation(uid="cafe0000-2"))  # same 8-character prefix
    assert kube.records["node-1-cafe0000"]["remediation"]["uid"] == "cafe0000-1"



def _deleted_by_hand(w: World, node: str) -> dict[str, Any]:
    """A person deletes the finished remediation with kubectl (the admission policy lets
    them, once it finished): the webhook sees only the watch's DELETED event."""
    rem = w.remediation(node)
    assert rem is not None
    w.kube.delete_remediation(node, rem["metadata"]["uid"], rem["metadata"]["resourceVersion"])
    return rem


def _wait_for_records(w: World, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(w.kube.records) < count:
        time.sleep(0.01)
    return list(w.kube.records.values())


def test_a_remediation_deleted_by_hand_is_archived_from_the_watch(world: WorldFactory) -> None:
    w = _world(world)
    _cycle(w, "node-3", "first")
    gone = _deleted_by_hand(w, "node-3")
    (record,) = _wait_for_records(w, 1)
    assert record["remediation"]["uid"] == gone["metadata"]["uid"]
    assert record["remediation"]["status"] == gone["status"]
    # The webhook's own replacement (archive, then delete) is not archived twice.
    _cycle(w, "node-3", "second")
    assert w.op("POST", BASE, {"node": "node-3", "reason": "third"}).status_code == 201
    w.settle()
    time.sleep(0.2)  # the DELETED event of the second is handled by now
    assert len(w.kube.records) == 2


def test_a_deletion_while_the_api_server_is_away_is_archived_when_it_answers(world: WorldFactory) -> None:
    w = _world(world)
    _cycle(w, "node-3", "first")
    w.kube.refuse_records = Unavailable(0, "ConnectionRefused", "connection refused")
    gone = _deleted_by_hand(w, "node-3")
    time.sleep(0.2)
    assert w.kube.records == {}
    w.kube.refuse_records = None
    requests = w.svc.kubectl_requests
    assert requests is not None
    requests._archive_again()  # the rescan's retry, without waiting for it
    (record,) = _wait_for_records(w, 1)
    assert record["remediation"]["uid"] == gone["metadata"]["uid"]
