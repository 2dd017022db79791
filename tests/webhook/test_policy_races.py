"""The rate limit holds under concurrency across threads, workers and replicas, and a dry
run never starts a cooldown (issue 14).

Several webhook replicas (several apps, each with its own watch-fed cache) share one API
server. Their watches are stopped once synced, the worst case of a lagging watch: no
replica ever sees another's remediations, so only state in the API (the rate-limit
ledger, written with optimistic concurrency) can keep the count."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flask import Flask

from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, World, WorldFactory, alert, message
from webhook.app import create_app
from webhook.auth import load_credentials
from webhook.metrics import WebhookMetrics
from webhook.policy import parse_policy
from webhook.settings import WebhookSettings

POLICY = {"rateLimit": {"maxRemediations": 2, "window": "1h"}, "stormProtection": {"maxUnhealthy": 10}}
NODES = ["node-1", "node-2", "node-3", "node-4"]


def replica(w: World, tmp: Path, policy: dict[str, Any]) -> Flask:
    """Another webhook replica over the same API server, synced, its watch then stopped."""
    config = WebhookSettings(
        alertmanager_token_file=str(tmp / "am"),
        operator_token_file=str(tmp / "op"),
        watch_timeout_s=2.0,
        cache_sync_wait_s=5.0,
        instance="replica",
    )
    app = create_app(
        config, w.kube, w.clock, policy=parse_policy(policy),
        credentials=load_credentials(config), metrics=WebhookMetrics(),
    )
    svc = app.extensions["nodewarden"]
    assert svc.cache.wait_synced(5.0)
    svc.watcher.stop()
    return app


def post_concurrently(apps: list[Flask], bodies: list[tuple[str, dict[str, Any], str]]) -> list[Any]:
    """Each (path, body, token) from its own thread, all released at once."""
    barrier = threading.Barrier(len(bodies))
    answers: list[Any] = [None] * len(bodies)

    def run(i: int) -> None:
        path, body, token = bodies[i]
        client = apps[i % len(apps)].test_client()
        barrier.wait()
        answers[i] = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def not_ready_world(world: WorldFactory, policy: dict[str, Any]) -> World:
    w = world(policy)
    for node in NODES:
        w.kube.set_ready(node, "Unknown")
    w.settle()
    return w


def test_four_concurrent_alerts_on_four_replicas_accept_exactly_two(world: WorldFactory) -> None:
    w = not_ready_world(world, POLICY)
    apps = [replica(w, w.tmp, POLICY) for _ in NODES]
    try:
        answers = post_concurrently(
            apps, [("/api/v1/alerts", message(alert(n)), AM_TOKEN) for n in NODES]
        )
        outcomes = sorted(a.get_json()["alerts"][0]["reason"] for a in answers)
        assert outcomes == ["Accepted", "Accepted", "RateLimited", "RateLimited"]
        stored = [n for n in NODES if w.remediation(n) is not None]
        assert len(stored) == 2
    finally:
        for app in apps:
            app.extensions["nodewarden"].stop()


def test_concurrent_operator_requests_on_one_replica_accept_exactly_two(
    world: WorldFactory,
) -> None:
    w = not_ready_world(world, POLICY)
    w.svc.watcher.stop()
    answers = post_concurrently(
        [w.app], [("/api/v1/remediations", {"node": n}, OPERATOR_TOKEN) for n in NODES]
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 201, 409, 409]
    assert {a.get_json()["reason"] for a in answers if a.status_code == 409} == {"RateLimited"}


def test_dry_runs_take_no_slot_and_start_no_cooldown(world: WorldFactory) -> None:
    w = not_ready_world(world, {**POLICY, "cooldown": "30m"})
    for node in NODES:  # four dry runs: more than the limit, none counted
        r = w.op("POST", "/api/v1/remediations", {"node": node, "dryRun": True})
        assert r.status_code == 201 and r.get_json()["reason"] == "AcceptedDryRun"
    assert w.kube.ledger is None or "node-1" not in w.kube.ledger["data"]["starts"]
    # The dry run finishes (the controller records it Succeeded) ...
    w.kube.put_status("node-1", {"phase": "Succeeded", "phaseSince": "2023-11-14T22:13:20Z"})
    w.settle()
    w.clock.advance(60.0)
    # ... and the real request that follows is not refused for a cooldown.
    r = w.op("POST", "/api/v1/remediations", {"node": "node-1"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["reason"] == "Accepted"


def test_a_delivery_that_lost_the_race_never_deletes_the_winners_remediation(
    world: WorldFactory,
) -> None:
    """Two deliveries of one alert, one worker: the second decides while nothing is stored,
    and the first creates the remediation (and caches it) before the second reaches its
    create. The second must then answer duplicate — not take the fresh, still active
    remediation for a finished predecessor, delete it and create another."""
    w = not_ready_world(world, POLICY)
    won: list[Any] = []
    reserve = w.kube.get_ledger

    def winner_lands_meanwhile() -> Any:
        # The rate-limit ledger is read between the decision and the create: the
        # window in which a concurrent delivery's create lands and reaches the cache.
        if not won:
            won.append(w.kube.create_remediation(
                {"metadata": {"name": "node-1"},
                 "spec": {"nodeName": "node-1", "trigger": {"source": "alertmanager"}}}
            ))
            w.settle()
            assert w.svc.cache.remediation("node-1") is not None
        return reserve()

    w.kube.get_ledger = winner_lands_meanwhile  # type: ignore[method-assign]
    r = w.post_alerts(message(alert("node-1")))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["alerts"][0]["reason"] == "AlreadyActive"
    stored = w.remediation("node-1")
    assert stored is not None and stored["metadata"]["uid"] == won[0]["metadata"]["uid"]
    assert w.kube.calls["delete_remediation"] == 0
