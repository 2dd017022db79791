"""The watch-fed cache, its watcher's recovery, readiness, and the Event recorder."""

from __future__ import annotations

import time

from core.clock import FakeClock
from core.events import EventRecorder, NodeEvent, event_body
from core.kube import Forbidden, WatchEvent
from tests.webhook.conftest import WorldFactory, alert, message
from tests.webhook.fake_kube import FakeWebhookKube, node_object
from webhook.cache import ClusterCache
from webhook.kube import Resource
from webhook.policy import parse_policy


def wait_for(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


def rem(name: str, rv: str, phase: str | None = "Pending", uid: str = "u1") -> dict:  # type: ignore[type-arg]
    obj = {
        "metadata": {"name": name, "uid": uid, "resourceVersion": rv},
        "spec": {"trigger": {"source": "alertmanager", "receivedAt": "2023-11-14T22:13:20Z"}},
    }
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def test_counters_follow_nodes_and_remediations() -> None:
    cache = ClusterCache()
    nodes = [node_object(f"n{i}", "True") for i in range(4)]
    for i, n in enumerate(nodes):
        n["metadata"]["resourceVersion"] = str(i + 1)
    cache.replace(Resource.NODES, nodes, "4")
    cache.replace(Resource.REMEDIATIONS, [], "4")
    cache.replace(Resource.PAUSE, [], "4")
    assert cache.synced()
    policy = parse_policy({"stormProtection": {"maxUnhealthy": 1}})
    assert cache.storm_state(policy) == (0, 4, 1, False)

    down = node_object("n0", "Unknown", uid=nodes[0]["metadata"]["uid"])
    down["metadata"]["resourceVersion"] = "5"
    cache.apply(Resource.NODES, WatchEvent("MODIFIED", down))
    cache.apply(Resource.REMEDIATIONS, WatchEvent("ADDED", rem("n1", "6")))
    cache.apply(Resource.REMEDIATIONS, WatchEvent("ADDED", rem("n0", "7", uid="u0")))
    assert cache.storm_state(policy) == (2, 4, 1, True)  # n0 counted once

    cache.apply(Resource.REMEDIATIONS, WatchEvent("MODIFIED", rem("n1", "8", phase="Succeeded")))
    assert cache.storm_state(policy)[0] == 1
    assert cache.phase_counts() == {"Pending": 1, "Succeeded": 1}


def test_stale_events_never_overwrite_newer_objects() -> None:
    cache = ClusterCache()
    cache.upsert_remediation(rem("n1", "10", phase="Fencing"))
    cache.apply(Resource.REMEDIATIONS, WatchEvent("MODIFIED", rem("n1", "9", phase="Pending")))
    assert cache.remediation("n1")["status"]["phase"] == "Fencing"  # type: ignore[index]
    # the deletion of an older object with another uid does not remove the new one
    cache.apply(Resource.REMEDIATIONS, WatchEvent("DELETED", rem("n1", "11", uid="old")))
    assert cache.remediation("n1") is not None
    cache.apply(Resource.REMEDIATIONS, WatchEvent("DELETED", rem("n1", "12")))
    assert cache.remediation("n1") is None


def test_pause_switch_values() -> None:
    cache = ClusterCache()
    for value, paused in (
        ("true", True),
        ("True", True),
        ("yes", True),
        ("false", False),
        ("", False),
    ):
        cache.apply(
            Resource.PAUSE,
            WatchEvent(
                "MODIFIED",
                {"metadata": {"name": "c", "resourceVersion": "1"}, "data": {"paused": value}},
            ),
        )
        assert cache.paused()[0] is paused, value
    cache.apply(
        Resource.PAUSE,
        WatchEvent("DELETED", {"metadata": {"name": "c"}, "data": {"paused": "true"}}),
    )
    assert cache.paused() == (False, "")


def test_watch_relists_after_410_gone(world: WorldFactory) -> None:
    w = world()
    lists = w.kube.calls["list:nodes"]
    w.svc.watcher.stop()  # let the current watch end, then compact and restart
    w.kube.compact()
    w.kube.set_ready("node-2", "False")
    from webhook.watch import Watcher

    watcher = Watcher(w.kube, w.svc.cache, timeout_s=1.0)
    watcher.start()
    try:
        wait_for(lambda: w.svc.cache.facts("node-2")[0].ready == "False")  # type: ignore[union-attr]
        assert w.kube.calls["list:nodes"] > lists
    finally:
        watcher.stop()


def test_watch_recovers_after_the_api_server_comes_back(world: WorldFactory) -> None:
    w = world()
    w.kube.unavailable = True
    wait_for(lambda: not w.svc.cache.synced())
    assert w.client.get("/readyz").status_code == 503
    w.kube.unavailable = False
    wait_for(w.svc.cache.synced)
    w.kube.set_ready("node-4", "Unknown")
    w.settle()
    assert w.svc.cache.facts("node-4")[0].ready == "Unknown"  # type: ignore[union-attr]
    assert w.client.get("/readyz").status_code == 200
    assert w.sample("nodewarden_webhook_watch_errors_total", resource="nodes") >= 1


def test_readyz_reports_each_check(world: WorldFactory) -> None:
    w = world()
    ok = w.client.get("/readyz")
    assert ok.status_code == 200
    assert ok.get_json() == {"status": "ok", "checks": {"apiServer": "ok", "cache": "synced"}}
    w.svc.watcher.stop()
    w.svc.cache.unsynced(Resource.PAUSE)
    w.clock.advance(5)
    w.kube.unavailable = True
    bad = w.client.get("/readyz")
    assert bad.status_code == 503
    assert bad.get_json()["checks"]["cache"] == "not synced"
    assert "ConnectionRefused" in bad.get_json()["checks"]["apiServer"]
    assert w.client.get("/healthz").status_code == 200


# Events -----------------------------------------------------------------------------


def test_event_body() -> None:
    body = event_body(
        NodeEvent("node-1", "uid-1", "Warning", "StormProtection", "Remediate", "too many"),
        "pod-a",
        1_700_000_000.5,
    )
    assert body["apiVersion"] == "events.k8s.io/v1"
    assert body["metadata"]["name"].startswith("node-1.")
    assert body["eventTime"] == "2023-11-14T22:13:20.500000Z"
    assert body["reportingController"] == "nodewarden-webhook"
    assert body["regarding"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": "node-1",
        "uid": "uid-1",
    }
    assert (body["type"], body["reason"], body["action"], body["note"]) == (
        "Warning",
        "StormProtection",
        "Remediate",
        "too many",
    )


def test_recorder_deduplicates_and_drops_when_full() -> None:
    clock = FakeClock()
    kube = FakeWebhookKube(clock)
    counts: dict[str, int] = {}
    recorder = EventRecorder(
        kube,
        clock,
        "default",
        "me",
        queue_size=2,
        dedup_window_s=60,
        count=lambda r: counts.__setitem__(r, counts.get(r, 0) + 1),
    )
    e = NodeEvent("n1", "", "Normal", "AlreadyActive", "Remediate", "dup")
    recorder.record(e)
    recorder.record(e)  # identical within the window
    recorder.record(NodeEvent("n2", "", "Normal", "Accepted", "Remediate", "x"))
    recorder.record(NodeEvent("n3", "", "Normal", "Accepted", "Remediate", "x"))  # queue full
    assert counts == {"deduplicated": 1, "dropped": 1}
    recorder.start()
    assert recorder.drain()
    assert counts["sent"] == 2
    clock.advance(61)
    recorder.record(e)
    assert recorder.drain()
    assert counts["sent"] == 3
    recorder.stop(1.0)


def test_recorder_survives_api_errors() -> None:
    clock = FakeClock()
    kube = FakeWebhookKube(clock)
    counts: dict[str, int] = {}

    def refuse(namespace: str, body: dict) -> None:  # type: ignore[type-arg]
        raise Forbidden(403, "Forbidden", "events is forbidden")

    kube.create_event = refuse  # type: ignore[method-assign]
    recorder = EventRecorder(
        kube, clock, "default", "me", count=lambda r: counts.__setitem__(r, counts.get(r, 0) + 1)
    )
    recorder.start()
    recorder.record(NodeEvent("n1", "", "Normal", "Accepted", "Remediate", "x"))
    assert recorder.drain()
    assert counts == {"failed": 1}
    recorder.stop(1.0)


def test_events_do_not_slow_requests_when_the_api_is_slow(world: WorldFactory) -> None:
    w = world()
    original = w.kube.create_event

    def slow(namespace: str, body: dict) -> None:  # type: ignore[type-arg]
        time.sleep(0.2)
        original(namespace, body)

    w.kube.create_event = slow  # type: ignore[method-assign]
    started = time.perf_counter()
    w.client.post(
        "/api/v1/alerts",
        json=message(*(alert(f"node-{i}") for i in range(1, 6))),
        headers={"Authorization": "Bearer am-token-0123456789"},
    )
    assert time.perf_counter() - started < 0.2
    w.settle()
    assert len(w.kube.events) == 5
