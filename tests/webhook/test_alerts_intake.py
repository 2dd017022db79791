"""POST /api/v1/alerts: firing alerts become one durable NodeRemediation per node."""

from __future__ import annotations

from core.clock import rfc3339
from tests.webhook.conftest import AM_TOKEN as AM
from tests.webhook.conftest import START, WorldFactory, alert, message
from webhook.kube import Resource


def test_firing_alert_for_a_not_ready_node_creates_a_remediation(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()

    response = w.post_alerts(message(alert("node-1")))

    assert response.status_code == 200
    result = response.get_json()["alerts"][0]
    assert (result["node"], result["outcome"], result["reason"]) == (
        "node-1",
        "accepted",
        "Accepted",
    )
    stored = w.remediation("node-1")
    assert stored is not None
    assert stored["spec"]["nodeName"] == "node-1"
    assert stored["spec"]["trigger"]["source"] == "alertmanager"
    assert stored["spec"]["trigger"]["alertName"] == "NodeNotReady"
    assert stored["spec"]["trigger"]["fingerprint"] == "fp-NodeNotReady-node-1"
    assert stored["spec"]["trigger"]["startsAt"] == rfc3339(START - 600)
    assert stored["spec"]["strategy"] == "OutOfServiceTaint"
    assert stored["spec"]["escalation"] == "OperatorApproval"
    assert stored["spec"]["dryRun"] is False
    status = stored["status"]
    assert status["phase"] == "Pending"
    assert status["reason"] == "Accepted"
    assert status["phaseSince"] == rfc3339(START)
    assert [h["phase"] for h in status["history"]] == ["Pending"]
    assert status["alerts"][0]["count"] == 1
    assert result["remediation"]["uid"] == stored["metadata"]["uid"]


def test_node_label_falls_back_to_kubernetes_node(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-2", "False")
    w.settle()
    response = w.post_alerts(message(alert("node-2", label="kubernetes_node")))
    assert response.get_json()["alerts"][0]["outcome"] == "accepted"
    assert w.remediation("node-2") is not None


def test_redelivery_and_ha_pairs_never_create_a_second_remediation(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    first = w.post_alerts(message(alert("node-1")))
    uid = w.remediation("node-1")["metadata"]["uid"]  # type: ignore[index]

    outcomes = []
    for _ in range(4):  # redelivery, the HA peer, repeat intervals
        r = w.post_alerts(message(alert("node-1")))
        outcomes.append(r.get_json()["alerts"][0]["outcome"])
        w.clock.advance(40)

    assert first.get_json()["alerts"][0]["outcome"] == "accepted"
    assert outcomes == ["duplicate"] * 4
    assert w.kube.calls["create_remediation"] == 1
    stored = w.remediation("node-1")
    assert stored["metadata"]["uid"] == uid  # type: ignore[index]
    # the repeats are counted on the one record (coalesced writes included)
    entry = stored["status"]["alerts"][-1]  # type: ignore[index]
    assert entry["count"] >= 3


def test_repeats_within_the_record_interval_do_not_write(world: WorldFactory) -> None:
    w = world(alert_record_interval_s=30.0)
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1")))
    writes = w.kube.calls["patch_remediation_status"]
    for _ in range(5):
        w.post_alerts(message(alert("node-1")))
    assert w.kube.calls["patch_remediation_status"] == writes
    w.clock.advance(31)
    w.post_alerts(message(alert("node-1")))
    assert w.kube.calls["patch_remediation_status"] == writes + 1
    assert w.remediation("node-1")["status"]["alerts"][-1]["count"] == 7  # type: ignore[index]


def test_an_alert_that_started_at_the_epoch_is_one_alert_instance(world: WorldFactory) -> None:
    """startsAt 1970-01-01T00:00:00Z is a time like any other (0.0 is not "no time"):
    repeats are recognised as the same instance and not written again within the interval."""
    w = world(alert_record_interval_s=30.0)
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1", starts_at=0.0)))
    writes = w.kube.calls["patch_remediation_status"]
    for _ in range(3):
        w.post_alerts(message(alert("node-1", starts_at=0.0)))
    assert w.kube.calls["patch_remediation_status"] == writes
    w.clock.advance(31)
    w.post_alerts(message(alert("node-1", starts_at=0.0)))
    alerts = w.remediation("node-1")["status"]["alerts"]  # type: ignore[index]
    assert [(a["startsAt"], a["count"]) for a in alerts] == [("1970-01-01T00:00:00Z", 5)]


def test_two_alerts_for_one_node_in_one_message(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    body = message(alert("node-1"), alert("node-1", name="KubeNodeUnreachable"))
    results = w.post_alerts(body).get_json()["alerts"]
    assert [r["outcome"] for r in results] == ["accepted", "duplicate"]
    assert w.kube.calls["create_remediation"] == 1
    fingerprints = {a["fingerprint"] for a in w.remediation("node-1")["status"]["alerts"]}  # type: ignore[index]
    assert fingerprints == {"fp-NodeNotReady-node-1", "fp-KubeNodeUnreachable-node-1"}


def test_create_race_lost_to_another_replica_is_a_duplicate(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.svc.watcher.stop()  # freeze this replica's view: it does not see the other's write
    other = w.kube.create_remediation(
        {
            "apiVersion": "nodewarden.io/v1alpha1",
            "kind": "NodeRemediation",
            "metadata": {"name": "node-1"},
            "spec": {"nodeName": "node-1", "trigger": {"source": "alertmanager"}},
        }
    )
    w.kube.put_status("node-1", {"phase": "Confirming"})

    response = w.client.post(
        "/api/v1/alerts", json=message(alert("node-1")), headers={"Authorization": f"Bearer {AM}"}
    )

    result = response.get_json()["alerts"][0]
    assert (result["outcome"], result["reason"]) == ("duplicate", "AlreadyActive")
    assert w.remediation("node-1")["metadata"]["uid"] == other["metadata"]["uid"]  # type: ignore[index]


def test_interrupted_creation_is_completed_by_the_next_delivery(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    original = w.kube.patch_remediation_status
    calls = {"n": 0}

    def fail_first(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            from core.kube import Unavailable

            raise Unavailable(0, "ConnectionReset", "gone")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    w.kube.patch_remediation_status = fail_first  # type: ignore[method-assign]
    assert w.post_alerts(message(alert("node-1"))).status_code == 503
    assert "status" not in w.remediation("node-1")  # type: ignore[operator]

    again = w.post_alerts(message(alert("node-1")))
    assert again.get_json()["alerts"][0]["outcome"] == "duplicate"
    status = w.remediation("node-1")["status"]  # type: ignore[index]
    assert status["phase"] == "Pending"
    assert status["history"][0]["reason"] == "Resumed"


def test_response_lists_each_alert_and_a_summary(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    body = message(
        alert("node-1"),
        alert("node-2"),  # Ready: rejected
        alert("node-3", name="DiskFull"),  # not a remediation alert
        alert(None),  # no node label
    )
    data = w.post_alerts(body).get_json()
    assert [(a["index"], a["outcome"], a["reason"]) for a in data["alerts"]] == [
        (0, "accepted", "Accepted"),
        (1, "rejected", "NodeReady"),
        (2, "rejected", "AlertNotHandled"),
        (3, "rejected", "NoNodeLabel"),
    ]
    assert data["summary"] == {"accepted": 1, "rejected": 3}
    assert data["receiver"] == "nodewarden"


def test_handling_alerts_never_lists(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    lists_before = {k: v for k, v in w.kube.calls.items() if k.startswith("list")}
    for i in range(20):
        w.post_alerts(message(alert(f"node-{i % 5 + 1}")))
    lists_after = {k: v for k, v in w.kube.calls.items() if k.startswith("list")}
    assert lists_after == lists_before


def test_api_server_unreachable_answers_503_so_alertmanager_retries(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.kube.unavailable = True
    response = w.client.post(
        "/api/v1/alerts", json=message(alert("node-1")), headers={"Authorization": f"Bearer {AM}"}
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["code"] == 503
    w.kube.unavailable = False
    w.settle()
    ok = w.post_alerts(message(alert("node-1")))
    assert ok.status_code == 200
    assert ok.get_json()["alerts"][0]["outcome"] == "accepted"


def test_unsynced_view_answers_503(world: WorldFactory) -> None:
    w = world(cache_sync_wait_s=0.05)
    w.svc.watcher.stop()
    w.svc.cache.unsynced(Resource.NODES)
    response = w.client.post(
        "/api/v1/alerts", json=message(alert("node-1")), headers={"Authorization": f"Bearer {AM}"}
    )
    assert response.status_code == 503
    assert response.get_json()["reason"] == "CacheNotSynced"


def test_every_verdict_gets_an_event_on_the_node(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1"), alert("node-2")))
    accepted = w.events_for("node-1")
    rejected = w.events_for("node-2")
    assert [(e["reason"], e["type"]) for e in accepted] == [("Accepted", "Normal")]
    assert [(e["reason"], e["type"]) for e in rejected] == [("NodeReady", "Warning")]
    event = accepted[0]
    assert event["reportingController"] == "nodewarden-webhook"
    assert event["reportingInstance"] == "test-instance"
    assert event["regarding"]["kind"] == "Node"
    assert event["regarding"]["uid"]
    assert event["related"]["kind"] == "NodeRemediation"
    assert event["namespace"] == "default"


def test_metrics_count_alerts_and_decisions(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    w.post_alerts(message(alert("node-1"), alert("node-2"), alert("node-1", status="resolved")))
    assert w.sample("nodewarden_webhook_alerts_received_total", status="firing") == 2
    assert w.sample("nodewarden_webhook_alerts_received_total", status="resolved") == 1
    assert (
        w.sample("nodewarden_webhook_decisions_total", verdict="accepted", reason="Accepted") == 1
    )
    assert (
        w.sample("nodewarden_webhook_decisions_total", verdict="rejected", reason="NodeReady") == 1
    )
    assert (
        w.sample("nodewarden_webhook_decisions_total", verdict="cancelled", reason="AlertResolved")
        == 1
    )
    assert (
        w.sample(
            "nodewarden_webhook_request_duration_seconds_count",
            endpoint="/api/v1/alerts",
            method="POST",
            code="200",
        )
        == 1
    )


def test_every_answer_is_timed_by_route_method_and_code(world: WorldFactory) -> None:
    w = world()
    w.post_alerts(message(alert("node-2")), token=None)
    w.client.get("/no/such/path")
    w.client.open("/healthz", method="BREW")

    def count(endpoint: str, method: str, code: str) -> float:
        return w.sample(
            "nodewarden_webhook_request_duration_seconds_count",
            endpoint=endpoint,
            method=method,
            code=code,
        )

    assert count("/api/v1/alerts", "POST", "401") == 1
    assert count("unmatched", "GET", "404") == 1
    assert count("unmatched", "OTHER", "405") == 1


def test_decision_log_line_carries_the_reason(world: WorldFactory, caplog) -> None:  # type: ignore[no-untyped-def]
    w = world()
    with caplog.at_level("INFO", logger="webhook.decision"):
        w.post_alerts(message(alert("node-2")))
    records = [r for r in caplog.records if r.name == "webhook.decision"]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["node"] == "node-2"
    assert fields["verdict"] == "rejected"
    assert fields["reason"] == "NodeReady"
    assert fields["alert"] == "NodeNotReady"


def test_identical_decisions_are_logged_once_per_window_and_all_counted(
    world: WorldFactory, caplog
) -> None:  # type: ignore[no-untyped-def]
    """Redeliveries of one alert decide the same way: the first line goes out, the rest of
    the window is folded, and the first line after the window says how many were folded.
    A decision that differs in any field is logged at once. The metric counts all."""
    w = world(decision_log_window_s=60.0)
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    with caplog.at_level("INFO", logger="webhook.decision"):
        w.post_alerts(message(alert("node-1")))  # accepted
        for _ in range(4):
            w.post_alerts(message(alert("node-1")))  # duplicate, 1 logged + 3 folded
        w.post_alerts(message(alert("node-2")))  # another node: logged
        w.clock.advance(61.0)
        w.post_alerts(message(alert("node-1")))  # after the window: logged, says 3 folded
        w.post_alerts(message(alert("node-1")))  # folded again
    lines = [r.fields for r in caplog.records if r.name == "webhook.decision"]  # type: ignore[attr-defined]
    assert [(f["node"], f["verdict"], f.get("folded")) for f in lines] == [
        ("node-1", "accepted", None),
        ("node-1", "duplicate", None),
        ("node-2", "rejected", None),
        ("node-1", "duplicate", 3),
    ]
    assert (
        w.sample("nodewarden_webhook_decisions_total", verdict="duplicate", reason="AlreadyActive")
        == 6
    )


def test_a_zero_window_logs_every_decision(world: WorldFactory, caplog) -> None:  # type: ignore[no-untyped-def]
    w = world(decision_log_window_s=0.0)
    with caplog.at_level("INFO", logger="webhook.decision"):
        for _ in range(3):
            w.post_alerts(message(alert("node-2")))
    lines = [r for r in caplog.records if r.name == "webhook.decision"]
    assert len(lines) == 3 and all("folded" not in r.fields for r in lines)  # type: ignore[attr-defined]


def test_a_concurrent_delivery_that_initialized_the_status_is_kept(world: WorldFactory) -> None:
    """Between this request's create and its status write, another delivery (another
    thread or replica) wrote the status: the 409 makes this request read the stored
    object, keep what is there and only add its own alert."""
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    original = w.kube.create_remediation

    def create_then_race(body: dict) -> dict:  # type: ignore[type-arg]
        created = original(body)
        w.kube.put_status(
            "node-1",
            {
                "phase": "Pending",
                "reason": "Accepted",
                "alerts": [
                    {
                        "alertName": "KubeNodeUnreachable",
                        "fingerprint": "other",
                        "status": "firing",
                        "receivedAt": "2023-11-14T22:13:20Z",
                        "count": 1,
                    }
                ],
            },
        )
        return created

    w.kube.create_remediation = create_then_race  # type: ignore[method-assign]
    result = w.post_alerts(message(alert("node-1"))).get_json()["alerts"][0]

    assert result["outcome"] == "accepted"
    status = w.remediation("node-1")["status"]  # type: ignore[index]
    assert status["phase"] == "Pending"
    assert [a["fingerprint"] for a in status["alerts"]] == ["other", "fp-NodeNotReady-node-1"]
