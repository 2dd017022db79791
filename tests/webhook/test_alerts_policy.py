"""Intake under policy: resolved alerts, storm protection, rate limit, cooldown, pause,
dry-run and approval groups, end to end through POST /api/v1/alerts."""

from __future__ import annotations

from typing import Any

from core.kube import Forbidden
from tests.webhook.conftest import AM_TOKEN, START, World, WorldFactory, alert, message
from webhook.kube import Resource


def not_ready(w, *nodes: str) -> None:  # type: ignore[no-untyped-def]
    for node in nodes:
        w.kube.set_ready(node, "Unknown")
    w.settle()


def outcome(response) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    a = response.get_json()["alerts"][0]
    return a["outcome"], a["reason"]


# Resolved ---------------------------------------------------------------------------


def test_resolved_before_a_fence_order_cancels(world: WorldFactory) -> None:
    w = world()
    not_ready(w, "node-1")
    w.post_alerts(message(alert("node-1")))
    w.clock.advance(20)

    response = w.post_alerts(message(alert("node-1", status="resolved")))

    assert outcome(response) == ("cancelled", "AlertResolved")
    status = w.remediation("node-1")["status"]  # type: ignore[index]
    assert status["phase"] == "Cancelled"
    assert status["reason"] == "AlertResolved"
    assert status["cancellation"]["requestedBy"] == "alertmanager"
    assert "NodeNotReady resolved" in status["cancellation"]["reason"]
    assert [h["phase"] for h in status["history"]] == ["Pending", "Cancelled"]
    assert [a["status"] for a in status["alerts"]] == ["firing", "resolved"]


def test_resolved_after_a_fence_order_is_only_recorded(world: WorldFactory) -> None:
    w = world()
    not_ready(w, "node-1")
    w.post_alerts(message(alert("node-1")))
    w.kube.put_status("node-1", {"phase": "Fencing", "fence": {"issuedAt": "2023-11-14T22:14:00Z"}})
    w.settle()

    response = w.post_alerts(message(alert("node-1", status="resolved")))

    assert outcome(response) == ("recorded", "FenceInProgress")
    status = w.remediation("node-1")["status"]  # type: ignore[index]
    assert status["phase"] == "Fencing"
    assert "cancellation" not in status
    assert status["alerts"][-1]["status"] == "resolved"


def test_cancel_loses_the_race_against_a_fence_order(world: WorldFactory) -> None:
    """The cache still shows no fence order, but the controller issued one meanwhile:
    the resourceVersion precondition makes the cancel fail, and the decision taken again
    on the stored object records the resolution instead."""
    w = world()
    not_ready(w, "node-1")
    w.post_alerts(message(alert("node-1")))
    w.svc.watcher.stop()  # this replica's view goes stale
    w.kube.put_status("node-1", {"phase": "Fencing", "fence": {"issuedAt": "2023-11-14T22:14:00Z"}})

    response = w.client.post(
        "/api/v1/alerts",
        json=message(alert("node-1", status="resolved")),
        headers={"Authorization": "Bearer am-token-0123456789"},
    )

    assert outcome(response) == ("recorded", "FenceInProgress")
    assert w.remediation("node-1")["status"]["phase"] == "Fencing"  # type: ignore[index]


def test_resolved_without_a_remediation_is_ignored(world: WorldFactory) -> None:
    w = world()
    response = w.post_alerts(message(alert("node-3", status="resolved")))
    assert outcome(response) == ("ignored", "NoRemediation")
    assert w.kube.calls["patch_remediation_status"] == 0


def test_repeated_resolved_notifications_are_harmless(world: WorldFactory) -> None:
    w = world()
    not_ready(w, "node-1")
    w.post_alerts(message(alert("node-1")))
    first = w.post_alerts(message(alert("node-1", status="resolved")))
    second = w.post_alerts(message(alert("node-1", status="resolved")))
    assert outcome(first) == ("cancelled", "AlertResolved")
    assert outcome(second) == ("ignored", "AlreadyFinished")


def test_firing_again_after_cancellation_starts_a_new_remediation(world: WorldFactory) -> None:
    w = world()
    not_ready(w, "node-1")
    w.post_alerts(message(alert("node-1")))
    old_uid = w.remediation("node-1")["metadata"]["uid"]  # type: ignore[index]
    w.post_alerts(message(alert("node-1", status="resolved")))
    w.clock.advance(120)

    response = w.post_alerts(message(alert("node-1", starts_at=START + 60)))

    assert outcome(response) == ("accepted", "Accepted")
    new = w.remediation("node-1")
    assert new["metadata"]["uid"] != old_uid  # type: ignore[index]
    assert old_uid in new["status"]["history"][0]["message"]  # type: ignore[index]
    assert w.kube.calls["delete_remediation"] == 1


# Storm protection, rate limit, cooldown -------------------------------------------------


def test_storm_protection_rejects_new_remediations_and_says_so(world: WorldFactory) -> None:
    w = world({"stormProtection": {"maxUnhealthy": "40%"}})  # 5 nodes: at most 2
    not_ready(w, "node-1", "node-2", "node-3")

    data = w.post_alerts(message(*(alert(f"node-{i}") for i in (1, 2, 3)))).get_json()

    assert {a["reason"] for a in data["alerts"]} == {"StormProtection"}
    assert "3 of 5 nodes unhealthy" in data["alerts"][0]["message"]
    assert w.kube.calls["create_remediation"] == 0
    assert w.events_for("node-1")[0]["reason"] == "StormProtection"
    metrics = w.client.get("/metrics").get_data(as_text=True)
    assert "nodewarden_webhook_storm_protection_active 1.0" in metrics
    assert (
        w.sample("nodewarden_webhook_decisions_total", verdict="rejected", reason="StormProtection")
        == 3
    )


def test_storm_protection_counts_active_remediations(world: WorldFactory) -> None:
    w = world({"stormProtection": {"maxUnhealthy": 2}, "rateLimit": {"maxRemediations": 10}})
    not_ready(w, "node-1", "node-2")
    w.post_alerts(message(alert("node-1"), alert("node-2")))
    # both nodes come back Ready, but their remediations are still active
    w.kube.set_ready("node-1", "True")
    w.kube.set_ready("node-2", "True")
    not_ready(w, "node-3")
    assert outcome(w.post_alerts(message(alert("node-3")))) == ("rejected", "StormProtection")


def test_storm_payload_of_many_alerts_rejects_all_without_writes(world: WorldFactory) -> None:
    w = world(nodes=50)
    for i in range(1, 51):
        w.kube.set_ready(f"node-{i}", "Unknown")
    w.settle()
    alerts = [alert(f"node-{i % 50 + 1}", fingerprint=f"fp{i}") for i in range(1000)]
    data = w.post_alerts(message(*alerts)).get_json()
    assert data["summary"] == {"rejected": 1000}
    assert w.kube.calls["create_remediation"] == 0
    # one Event per node and reason, not per alert
    assert len(w.kube.events) <= 50


def test_rate_limit(world: WorldFactory) -> None:
    w = world(
        {
            "rateLimit": {"maxRemediations": 1, "window": "10m"},
            "stormProtection": {"maxUnhealthy": 5},
        }
    )
    not_ready(w, "node-1", "node-2")
    assert outcome(w.post_alerts(message(alert("node-1")))) == ("accepted", "Accepted")
    assert outcome(w.post_alerts(message(alert("node-2")))) == ("rejected", "RateLimited")
    w.clock.advance(601)
    assert outcome(w.post_alerts(message(alert("node-2")))) == ("accepted", "Accepted")


def test_cooldown_after_success_then_a_new_remediation(world: WorldFactory) -> None:
    w = world({"cooldown": "30m"})
    not_ready(w, "node-1")
    w.post_alerts(message(alert("node-1")))
    w.kube.put_status("node-1", {"phase": "Succeeded", "phaseSince": "2023-11-14T22:13:20Z"})
    w.settle()
    w.clock.advance(600)
    assert outcome(w.post_alerts(message(alert("node-1", starts_at=START + 500)))) == (
        "rejected",
        "Cooldown",
    )
    w.clock.advance(1201)
    assert outcome(w.post_alerts(message(alert("node-1", starts_at=START + 1700)))) == (
        "accepted",
        "Accepted",
    )


# Pause, dry-run, approval, opt-out, control plane ------------------------------------------


def test_pause_switch_flips_without_restart(world: WorldFactory) -> None:
    w = world()
    not_ready(w, "node-1")
    w.kube.set_pause(True, "kernel upgrade")
    w.settle()
    response = w.post_alerts(message(alert("node-1")))
    assert outcome(response) == ("rejected", "Paused")
    assert "kernel upgrade" in response.get_json()["alerts"][0]["message"]
    assert "nodewarden_webhook_paused 1.0" in w.client.get("/metrics").get_data(as_text=True)

    w.kube.set_pause(False)
    w.settle()
    assert outcome(w.post_alerts(message(alert("node-1")))) == ("accepted", "Accepted")


def test_dry_run_creates_a_dry_run_record(world: WorldFactory) -> None:
    w = world({"dryRun": True})
    not_ready(w, "node-1")
    assert outcome(w.post_alerts(message(alert("node-1")))) == ("accepted", "AcceptedDryRun")
    assert w.remediation("node-1")["spec"]["dryRun"] is True  # type: ignore[index]


def test_approval_group_waits_for_a_person(world: WorldFactory) -> None:
    policy = {
        "groups": [
            {"name": "db", "selector": {"matchLabels": {"role": "db"}}, "approvalRequired": True}
        ]
    }
    w = world(policy, labels={"node-1": {"role": "db"}})
    not_ready(w, "node-1")
    assert outcome(w.post_alerts(message(alert("node-1")))) == ("accepted", "AwaitingApproval")
    stored = w.remediation("node-1")
    assert stored["spec"]["approvalRequired"] is True  # type: ignore[index]
    assert stored["spec"]["policyGroup"] == "db"  # type: ignore[index]
    assert stored["status"]["phase"] == "AwaitingApproval"  # type: ignore[index]


def test_opt_out_and_control_plane(world: WorldFactory) -> None:
    w = world(
        labels={
            "node-1": {"nodewarden.io/remediation": "disabled"},
            "node-2": {"node-role.kubernetes.io/control-plane": ""},
        }
    )
    not_ready(w, "node-1", "node-2")
    data = w.post_alerts(message(alert("node-1"), alert("node-2"))).get_json()
    assert [a["reason"] for a in data["alerts"]] == ["NodeOptedOut", "ControlPlaneExcluded"]


def test_unknown_node(world: WorldFactory) -> None:
    w = world()
    assert outcome(w.post_alerts(message(alert("node-99")))) == ("rejected", "NodeNotFound")


def test_remediations_by_phase_metric(world: WorldFactory) -> None:
    w = world()
    not_ready(w, "node-1", "node-2")
    w.post_alerts(message(alert("node-1"), alert("node-2")))
    w.post_alerts(message(alert("node-2", status="resolved")))
    text = w.client.get("/metrics").get_data(as_text=True)
    assert 'nodewarden_webhook_remediations{phase="Pending"} 1.0' in text
    assert 'nodewarden_webhook_remediations{phase="Cancelled"} 1.0' in text
    assert w.svc.cache.resource_version(Resource.REMEDIATIONS)


def post(w: World, node: str) -> Any:
    """POST one alert without waiting for the cache (its watch is stopped)."""
    return w.client.post("/api/v1/alerts", json=message(alert(node)),
                         headers={"Authorization": f"Bearer {AM_TOKEN}"})


def stale_ready_world(world: WorldFactory) -> World:
    """node-1 went NotReady in the API, and the webhook's watch has not brought it."""
    w = world()
    w.settle()
    w.svc.watcher.stop()
    w.kube.set_ready("node-1", "Unknown")
    assert w.svc.cache.facts("node-1")[0].ready == "True"  # type: ignore[union-attr]
    return w


def test_a_node_the_cache_still_shows_ready_is_read_again_before_a_rejection(
    world: WorldFactory,
) -> None:
    """A NodeReady rejection is final for Alertmanager until its repeat_interval (5 min in
    the shipped config): the webhook reads the Node itself before it rejects one."""
    w = stale_ready_world(world)
    r = post(w, "node-1")
    assert r.status_code == 200
    assert r.get_json()["alerts"][0]["reason"] == "Accepted", r.get_json()
    assert w.kube.calls["get_node"] == 1
    assert w.kube.stored(Resource.REMEDIATIONS, "node-1") is not None


def test_a_node_that_is_ready_is_rejected_and_read_at_most_once_per_window(
    world: WorldFactory,
) -> None:
    w = world()
    w.settle()
    for _ in range(5):
        r = w.post_alerts(message(alert("node-2")))
        assert r.get_json()["alerts"][0]["reason"] == "NodeReady", r.get_json()
    assert w.kube.calls["get_node"] == 1
    w.clock.advance(11.0)
    w.post_alerts(message(alert("node-2")))
    assert w.kube.calls["get_node"] == 2


def test_an_unreachable_api_server_answers_503_rather_than_reject_a_stale_ready_node(
    world: WorldFactory,
) -> None:
    w = stale_ready_world(world)
    w.kube.unavailable = True
    r = post(w, "node-1")
    assert r.status_code == 503, r.get_json()
    w.kube.unavailable = False
    r = post(w, "node-1")  # Alertmanager's retry
    assert r.get_json()["alerts"][0]["reason"] == "Accepted", r.get_json()


def test_a_refused_read_leaves_the_caches_word(world: WorldFactory) -> None:
    """A role without `get nodes` (a chart upgraded by halves): the alert is rejected for
    what the cache shows, NodeReady, not turned into an API error."""
    w = stale_ready_world(world)

    def forbidden(name: str) -> Any:
        raise Forbidden(403, "Forbidden", f'nodes "{name}" is forbidden')

    w.svc.actions.read_node = forbidden
    r = post(w, "node-1")
    assert r.status_code == 200
    assert r.get_json()["alerts"][0]["reason"] == "NodeReady", r.get_json()
