"""The shortcuts on the request path (measured by bench/webhook.py) give exactly what the
plain code gave: log timestamps, metric children, alert entry keys."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from core.clock import rfc3339
from webhook.logs import JsonFormatter
from webhook.metrics import WebhookMetrics
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
