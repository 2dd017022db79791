"""The clock offset measured from the API server's Date header (node_agent.skew)."""

from __future__ import annotations

import pytest

from node_agent.skew import OffsetEstimator, parse_http_date


def test_one_answer_bounds_the_offset_to_its_second_and_round_trip() -> None:
    est = OffsetEstimator()
    assert est.estimate() is None  # unmeasured until an answer came
    est.sample(sent=1000.2, received=1000.3, server_date=1060.0)  # server 60 s ahead, Date floored
    offset, error = est.estimate()  # type: ignore[misc]
    assert offset - error == pytest.approx(59.7) and offset + error == pytest.approx(60.8)


def test_answers_at_different_fractions_of_a_second_narrow_it_down() -> None:
    est = OffsetEstimator()
    true_offset = -0.35  # the agent is 0.35 s ahead of the server
    for i in range(20):
        sent = 2000.0 + i * 0.37
        received = sent + 0.02
        server = (sent + 0.01) + true_offset
        est.sample(sent, received, float(int(server)))
    offset, error = est.estimate()  # type: ignore[misc]
    assert offset - error <= true_offset <= offset + error
    assert error < 0.05


def test_a_stepped_clock_starts_the_measurement_again() -> None:
    est = OffsetEstimator()
    est.sample(100.0, 100.1, 100.0)
    est.sample(100.5, 100.6, 40.0)  # the agent's clock was stepped 60 s forward
    offset, _ = est.estimate()  # type: ignore[misc]
    assert offset == pytest.approx(-60.05, abs=0.6)


def test_http_dates() -> None:
    assert parse_http_date("Thu, 03 Dec 2026 06:23:35 GMT") == pytest.approx(1796279015.0)
    assert parse_http_date("not a date") is None and parse_http_date(None) is None
