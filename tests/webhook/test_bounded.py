"""Everything that grows with input is bounded and costs O(1) per item: the decision-line
folder, the Event recorder's memory of recent Events, and the log-line rate limit."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from core.clock import FakeClock
from core.events import EventRecorder, NodeEvent
from core.kube import JSON
from core.recent import RecentKeys
from tests.webhook.conftest import AM_TOKEN, WorldFactory, message
from webhook.decisions import LineFolder
from webhook.logs import FoldingFilter

ALERTS = 8_500


def big_message(first: int) -> dict[str, Any]:
    """8,500 firing alerts about 8,500 distinct (unknown) nodes: each one is a distinct
    decision line and a distinct Event, so every structure keyed by them grows."""
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "NodeNotReady", "node": f"gone-{i}"},
            "startsAt": "2023-11-14T22:00:00Z",
            "fingerprint": f"{i:016x}",
        }
        for i in range(first, first + ALERTS)
    ]
    return message(*alerts)


def test_two_messages_of_8500_alerts_take_about_the_same_time(world: WorldFactory) -> None:
    """Past 10,000 remembered lines and Events, the old structures copied themselves on
    every call: the second message took ~75x the first. Bounded O(1) structures keep the
    ratio near 1. Measured in this process's CPU time, not wall time: the quadratic copy
    was CPU, and another process taking the cores for a while must not look like it."""
    w = world(max_body_bytes=8 * 1024 * 1024)
    headers = {"Authorization": f"Bearer {AM_TOKEN}"}
    times = []
    for first in (0, ALERTS, 2 * ALERTS):
        body = json.dumps(big_message(first))
        started = time.process_time()
        r = w.client.post(
            "/api/v1/alerts", data=body, headers=headers, content_type="application/json"
        )
        times.append(time.process_time() - started)
        assert r.status_code == 200
        assert r.get_json()["summary"] == {"rejected": ALERTS}
    assert len(w.svc.decisions.lines) <= LineFolder.LIMIT
    assert len(w.svc.recorder._recent) <= 10_000
    first, *later = times
    assert max(later) / first < 3.0, times


def test_recent_keys_are_bounded_and_fold_repeats() -> None:
    keys: RecentKeys[str] = RecentKeys(window_s=10.0, limit=100)
    assert keys.admit("a", 0.0) == 0
    assert keys.admit("a", 1.0) is None
    assert keys.admit("a", 2.0) is None
    assert keys.admit("a", 10.0) == 2  # window over: goes out, says 2 were folded
    assert keys.admit("a", 11.0) is None
    for i in range(10_000):
        keys.admit(f"k{i}", 12.0)
        assert len(keys) <= 100
    assert keys.admit("a", 12.0) == 0  # pushed out: goes through again, never lost silently
    assert keys.dropped_folds == 1


def test_recent_keys_cost_the_same_per_key_when_full() -> None:
    keys: RecentKeys[int] = RecentKeys(window_s=60.0, limit=10_000)
    runs = []
    for start in (0, 20_000, 40_000):
        began = time.perf_counter()
        for i in range(start, start + 20_000):
            keys.admit(i, 1.0)
        runs.append(time.perf_counter() - began)
    assert max(runs[1:]) / runs[0] < 3.0, runs


class Sink:
    def __init__(self) -> None:
        self.events: list[JSON] = []

    def create_event(self, namespace: str, body: JSON) -> None:
        self.events.append(body)


def event(i: int) -> NodeEvent:
    return NodeEvent(f"n-{i}", "", "Normal", "NodeNotFound", "Remediate", "note")


def test_event_recorder_memory_is_bounded_and_a_full_queue_warns_once_per_window(
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    clock = FakeClock(1000.0)
    counts: dict[str, int] = {}
    recorder = EventRecorder(
        Sink(), clock, "ns", "i", queue_size=10, dedup_window_s=60.0, recent_limit=500,
        count=lambda r: counts.__setitem__(r, counts.get(r, 0) + 1),
    )  # not started: the queue fills
    with caplog.at_level(logging.WARNING, logger="core.events"):
        for i in range(5_000):
            recorder.record(event(i))
            assert len(recorder._recent) <= 500
        recorder.record(event(4_999))  # remembered: deduplicated
        clock.advance(61.0)
        recorder.record(event(5_000))
    assert counts == {"dropped": 4_991, "deduplicated": 1}
    warnings = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[1].endswith("(4989 more drops folded)")


def test_log_lines_are_rate_limited_with_a_folded_count() -> None:
    now = [0.0]
    folding = FoldingFilter(window_s=10.0, burst=5, clock=lambda: now[0])
    logger = logging.getLogger("test.bounded.flood")
    logger.propagate = False
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.addFilter(folding)
    logger.addHandler(handler)
    try:
        for i in range(3_000):
            logger.warning("request refused from %s", f"10.0.{i // 256}.{i % 256}")
        logger.warning("another template")
        now[0] = 10.0
        logger.warning("request refused from %s", "10.9.9.9")
    finally:
        logger.removeHandler(handler)
    texts = [(r.getMessage(), getattr(r, "folded", None)) for r in seen]
    assert len(texts) == 7
    assert texts[5] == ("another template", None)
    assert texts[6] == ("request refused from 10.9.9.9", 2_995)
