"""The shortcuts on the request path (measured by bench/webhook.py) give exactly what the
plain code gave: log timestamps, metric children, alert entry keys, alert times, JSON
response bodies."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from hypothesis import given
from hypothesis import strategies as st

from core.clock import rfc3339
from webhook.app import ResponseJSON
from webhook.logs import JsonFormatter
from webhook.metrics import WebhookMetrics
from webhook.payload import PayloadError, parse_time
from webhook.records import AlertEntry, has_entry, recorded_recently, second_text, with_alert

TIMES = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)  # up to 2100


@given(TIMES)
def test_log_timestamps_are_isoformat_with_milliseconds(ts: float) -> None:
    formatter = JsonFormatter()
    expected = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    assert formatter._timestamp(ts) == expected
    assert formatter._timestamp(ts) == expected  # the second's text from the memo


@given(st.lists(TIMES, min_size=2, max_size=20))
def test_one_formatter_keeps_every_timestamp_right(times: list[float]) -> None:
    formatter = JsonFormatter()
    for ts in sorted(times) + times:
        assert formatter._timestamp(ts) == datetime.fromtimestamp(ts, UTC).isoformat(
            timespec="milliseconds"
        )


def test_a_log_line_is_one_json_object_with_the_fields() -> None:
    record = logging.LogRecord("webhook.decision", logging.INFO, __file__, 1, "decision", None, None)
    record.created = 1_767_323_045.25
    record.fields = {"node": "node-1", "verdict": "duplicate", "dryRun": False, "at": datetime(2026, 1, 2)}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2026-01-02T03:04:05.250+00:00", "level": "info", "logger": "webhook.decision",
        "msg": "decision", "node": "node-1", "verdict": "duplicate", "dryRun": False,
        "at": "2026-01-02 00:00:00",
    }


def test_metric_children_are_the_labelled_ones() -> None:
    metrics = WebhookMetrics()
    child = metrics.child(metrics.decisions, "duplicate", "AlreadyActive")
    assert child is metrics.decisions.labels("duplicate", "AlreadyActive")
    assert metrics.child(metrics.decisions, "duplicate", "AlreadyActive") is child
    child.inc()
    metrics.child(metrics.decisions, "duplicate", "AlreadyActive").inc()
    value = metrics.registry.get_sample_value(
        "nodewarden_webhook_decisions_total", {"verdict": "duplicate", "reason": "AlreadyActive"}
    )
    assert value == 2
    assert metrics.child(metrics.decisions, "rejected", "NodeReady") is not child


@given(st.floats(min_value=1, max_value=4_102_444_800), TIMES)
def test_an_alert_entry_key_is_its_stored_form(starts_at: float, received_at: float) -> None:
    entry = AlertEntry("NodeNotReady", "fp-1", "firing", starts_at, received_at)
    assert entry.key() == ("fp-1", "firing", rfc3339(starts_at) if starts_at else "")
    stored = with_alert([], entry, 1)
    assert has_entry(stored, entry)
    assert recorded_recently(stored, entry, 30.0)
    again = AlertEntry("NodeNotReady", "fp-1", "firing", starts_at, received_at + 1)
    assert with_alert(stored, again, 1)[-1]["count"] == 2


@given(st.floats(min_value=0, max_value=4_102_444_800))
def test_second_text_is_rfc3339(ts: float) -> None:
    assert second_text(ts) == rfc3339(ts)
    assert second_text(ts) == rfc3339(ts)


@given(st.floats(min_value=1, max_value=4_102_444_800))
def test_a_delivery_is_recent_for_the_interval_to_the_second(written_at: float) -> None:
    entry = AlertEntry("NodeNotReady", "fp-1", "firing", 1_767_000_000.0, written_at)
    stored = with_alert([], entry, 1)
    later = AlertEntry("NodeNotReady", "fp-1", "firing", 1_767_000_000.0, written_at + 29.0)
    assert recorded_recently(stored, later, 30.0)
    much_later = AlertEntry("NodeNotReady", "fp-1", "firing", 1_767_000_000.0, written_at + 31.0)
    assert not recorded_recently(stored, much_later, 30.0)


ZONES = st.sampled_from(["Z", "z", "+00:00", "+02:00", "-05:30", "+14:00"])


def _rfc3339_text(micros: int, zone: str) -> tuple[str, float]:
    """A time as Alertmanager could write it, and the instant it names."""
    offset = 0 if zone in ("Z", "z") else int(zone[0] + "1") * (
        int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
    )
    local = datetime.fromtimestamp(micros / 1_000_000 + offset, UTC)
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + zone, micros / 1_000_000


@given(st.lists(st.tuples(st.integers(0, 4_102_444_800_000_000), ZONES), min_size=1, max_size=30))
def test_remembered_alert_times_are_each_texts_own_instant(times: list[tuple[int, str]]) -> None:
    texts = [_rfc3339_text(micros, zone) for micros, zone in times]
    for text, instant in texts + texts[::-1]:  # each text again, after the others
        assert parse_time(text, "t") == pytest.approx(instant, abs=1e-6)


def test_times_too_long_to_remember_and_bad_times_are_parsed_every_time() -> None:
    long_text = "2024-01-01T00:00:00." + "1" * 200 + "Z"
    assert parse_time(long_text, "t") == pytest.approx(1704067200.111111)
    for bad, message in (("2024-13-01T00:00:00Z", "not a valid time"), ("soon", "not an RFC")):
        for _ in range(2):
            with pytest.raises(PayloadError, match=message):
                parse_time(bad, "alerts[0].startsAt")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_response_bodies_are_flasks_own(value: object) -> None:
    app = Flask("t")
    flasks = DefaultJSONProvider(app)
    flasks.sort_keys = False
    ours = ResponseJSON(app)
    assert ours.response(value).get_data() == flasks.response(value).get_data()
    assert ours.response(value).mimetype == "application/json"
    app.debug = True
    assert ours.response(value).get_data() == flasks.response(value).get_data()


def test_the_event_queue_gauge_is_written_only_when_it_changes_but_always_before_a_scrape() -> None:
    metrics = WebhookMetrics()

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("nodewarden_webhook_event_queue_length")

    metrics.set_event_queue(3)
    assert gauge() == 3
    metrics.event_queue.set(7)  # a write that did not go through the memo
    metrics.set_event_queue(3)  # what this process wrote last: skipped
    assert gauge() == 7
    metrics.set_event_queue(3, always=True)  # as before a scrape: written whatever the memo
    assert gauge() == 3
    metrics.set_event_queue(0)
    assert gauge() == 0
