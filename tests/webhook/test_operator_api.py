"""The operator API: request, list, read, approve, cancel."""

from __future__ import annotations

from tests.webhook.conftest import AM_TOKEN, WorldFactory, alert, message

BASE = "/api/v1/remediations"


def test_operator_requests_a_remediation(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-3", "False")
    w.settle()

    response = w.op("POST", BASE, {"node": "node-3", "reason": "disk controller hung"})

    assert response.status_code == 201
    body = response.get_json()
    assert (body["outcome"], body["reason"]) == ("accepted", "Accepted")
    spec = w.remediation("node-3")["spec"]  # type: ignore[index]
    assert spec["trigger"] == {
        "source": "operator",
        "receivedAt": "2023-11-14T22:13:20Z",
        "requestedBy": "alice",
        "reason": "disk controller hung",
    }
    assert body["remediation"]["metadata"]["name"] == "node-3"
    assert w.events_for("node-3")[0]["note"].endswith("[operator alice]")


def test_operator_request_goes_through_policy(world: WorldFactory) -> None:
    w = world()
    response = w.op("POST", BASE, {"node": "node-3"})  # node-3 is Ready
    assert response.status_code == 409
    assert response.get_json()["reason"] == "NodeReady"
    w.kube.set_pause(True)
    w.kube.set_ready("node-3", "False")
    w.settle()
    assert w.op("POST", BASE, {"node": "node-3"}).get_json()["reason"] == "Paused"


def test_operator_request_twice_is_idempotent(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-3", "False")
    w.settle()
    assert w.op("POST", BASE, {"node": "node-3"}).status_code == 201
    again = w.op("POST", BASE, {"node": "node-3"})
    assert again.status_code == 200
    assert again.get_json()["outcome"] == "duplicate"
    assert w.kube.calls["create_remediation"] == 1


def test_operator_dry_run(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-3", "False")
    w.settle()
    response = w.op("POST", BASE, {"node": "node-3", "dryRun": True})
    assert response.get_json()["reason"] == "AcceptedDryRun"
    assert w.remediation("node-3")["spec"]["dryRun"] is True  # type: ignore[index]


def test_request_body_validation(world: WorldFactory) -> None:
    w = world()
    cases = [
        ({}, "node"),
        ({"node": 5}, "node"),
        ({"node": "Not A Node"}, "node"),
        ({"node": "node-1", "dryRun": "yes"}, "dryRun"),
        ({"node": "node-1", "dryrun": True}, "dryrun"),
        ({"node": "node-1", "reason": "x" * 2000}, "reason"),
        (["node-1"], "(body)"),
    ]
    for body, field in cases:
        response = w.op("POST", BASE, body)
        assert response.status_code == 400, body
        assert response.get_json()["field"] == field, body


def test_list_and_get(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.kube.set_ready("node-2", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1"), alert("node-2")))
    w.post_alerts(message(alert("node-2", status="resolved")))

    items = w.op("GET", BASE).get_json()["items"]
    assert [(i["name"], i["phase"]) for i in items] == [
        ("node-1", "Pending"),
        ("node-2", "Cancelled"),
    ]
    assert items[0]["trigger"]["alertName"] == "NodeNotReady"
    only = w.op("GET", BASE + "?phase=Cancelled").get_json()["items"]
    assert [i["name"] for i in only] == ["node-2"]

    one = w.op("GET", BASE + "/node-1").get_json()
    assert one["summary"]["phase"] == "Pending"
    assert one["remediation"]["spec"]["nodeName"] == "node-1"
    missing = w.op("GET", BASE + "/node-5")
    assert missing.status_code == 404
    assert missing.get_json()["reason"] == "NoRemediation"


def test_approve(world: WorldFactory) -> None:
    policy = {"defaults": {"approvalRequired": True}}
    w = world(policy)
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1")))
    w.clock.advance(30)

    response = w.op("POST", BASE + "/node-1/approve")

    assert response.status_code == 200
    assert response.get_json()["reason"] == "Approved"
    approval = w.remediation("node-1")["status"]["approval"]  # type: ignore[index]
    assert approval == {"approvedBy": "alice", "approvedAt": "2023-11-14T22:13:50Z"}
    again = w.op("POST", BASE + "/node-1/approve")
    assert (again.status_code, again.get_json()["reason"]) == (200, "AlreadyApproved")
    assert [e["reason"] for e in w.events_for("node-1")][-2:] == ["Approved", "AlreadyApproved"]


def test_approve_something_not_waiting(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1")))
    response = w.op("POST", BASE + "/node-1/approve")
    assert response.status_code == 409
    assert response.get_json()["reason"] == "NotAwaitingApproval"
    assert w.op("POST", BASE + "/node-4/approve").status_code == 404


def test_cancel(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1")))
    response = w.op("POST", BASE + "/node-1/cancel", {"reason": "false alarm, switch reset"})
    assert response.status_code == 200
    status = w.remediation("node-1")["status"]  # type: ignore[index]
    assert (status["phase"], status["reason"]) == ("Cancelled", "OperatorCancelled")
    assert status["cancellation"]["requestedBy"] == "alice"
    assert status["cancellation"]["reason"] == "false alarm, switch reset"


def test_cancel_after_a_fence_order_is_refused(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1")))
    w.kube.put_status("node-1", {"phase": "Fenced", "fence": {"issuedAt": "2023-11-14T22:14:00Z"}})
    w.settle()
    response = w.op("POST", BASE + "/node-1/cancel")
    assert response.status_code == 409
    assert response.get_json()["reason"] == "FenceInProgress"
    assert w.remediation("node-1")["status"]["phase"] == "Fenced"  # type: ignore[index]


def test_alertmanager_credential_cannot_use_the_operator_api(world: WorldFactory) -> None:
    w = world()
    for method, path in [
        ("GET", BASE),
        ("POST", BASE),
        ("GET", BASE + "/node-1"),
        ("POST", BASE + "/node-1/approve"),
        ("POST", BASE + "/node-1/cancel"),
    ]:
        response = w.op(
            method, path, {"node": "node-1"} if method == "POST" else None, token=AM_TOKEN
        )
        assert response.status_code == 403, path
        assert response.get_json()["reason"] == "Forbidden"


def test_operator_credential_cannot_post_alerts(world: WorldFactory) -> None:
    from tests.webhook.conftest import OPERATOR_TOKEN

    w = world()
    response = w.post_alerts(message(alert("node-1")), token=OPERATOR_TOKEN)
    assert response.status_code == 403
