"""Alertmanager payload validation, field by field, and the HTTP errors around it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.webhook.conftest import AM_TOKEN, WorldFactory, alert, message
from webhook.payload import PayloadError, parse_message, parse_time

AUTH = {"Authorization": f"Bearer {AM_TOKEN}"}


def valid() -> dict[str, Any]:
    return message(alert("node-1"))


def with_change(path: str, value: Any) -> dict[str, Any]:
    """A valid message with `path` ("alerts.0.labels") set to `value` (or deleted)."""
    data = valid()
    target: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


DELETE = object()

BAD_FIELDS = [
    ("version", DELETE, "version"),
    ("version", "3", "version"),
    ("version", 4, "version"),
    ("status", DELETE, "status"),
    ("status", "pending", "status"),
    ("alerts", DELETE, "alerts"),
    ("alerts", {"a": 1}, "alerts"),
    ("truncatedAlerts", "0", "truncatedAlerts"),
    ("truncatedAlerts", -1, "truncatedAlerts"),
    ("groupKey", 5, "groupKey"),
    ("receiver", ["x"], "receiver"),
    ("groupLabels", [], "groupLabels"),
    ("commonLabels", {"a": 1}, "commonLabels.a"),
    ("commonAnnotations", "x", "commonAnnotations"),
    ("externalURL", 1.5, "externalURL"),
    ("alerts.0", "x", "alerts[0]"),
    ("alerts.0.status", DELETE, "alerts[0].status"),
    ("alerts.0.status", "FIRING", "alerts[0].status"),
    ("alerts.0.labels", DELETE, "alerts[0].labels"),
    ("alerts.0.labels", None, "alerts[0].labels"),
    ("alerts.0.labels", {"node": 7}, "alerts[0].labels.node"),
    ("alerts.0.annotations", [1], "alerts[0].annotations"),
    ("alerts.0.startsAt", DELETE, "alerts[0].startsAt"),
    ("alerts.0.startsAt", "yesterday", "alerts[0].startsAt"),
    ("alerts.0.startsAt", 1700000000, "alerts[0].startsAt"),
    ("alerts.0.endsAt", "2023-13-01T00:00:00Z", "alerts[0].endsAt"),
    ("alerts.0.generatorURL", {}, "alerts[0].generatorURL"),
    ("alerts.0.fingerprint", 123, "alerts[0].fingerprint"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS)
def test_parse_names_the_bad_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_message(with_change(path, value))
    assert err.value.field == field


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS[:8])
def test_bad_field_is_a_400_naming_it(
    world: WorldFactory, path: str, value: Any, field: str
) -> None:
    w = world()
    response = w.client.post("/api/v1/alerts", json=with_change(path, value), headers=AUTH)
    assert response.status_code == 400
    body = response.get_json()
    assert (body["code"], body["name"], body["field"]) == (400, "Bad Request", field)
    assert field.split("[")[0] in body["description"] or "invalid payload" in body["description"]


def test_unknown_fields_are_accepted() -> None:
    data = valid()
    data["newTopLevelField"] = {"anything": [1, 2]}
    data["alerts"][0]["silencedBy"] = ["abc"]
    msg = parse_message(data)
    assert msg.alerts[0].labels["node"] == "node-1"


def test_optional_fields_may_be_absent() -> None:
    data = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "NodeNotReady", "node": "n1"},
                "startsAt": "2024-01-01T00:00:00Z",
            }
        ],
    }
    msg = parse_message(data)
    assert msg.truncated_alerts == 0
    assert msg.alerts[0].fingerprint  # derived from the labels
    again = parse_message(copy.deepcopy(data))
    assert again.alerts[0].fingerprint == msg.alerts[0].fingerprint


def test_times() -> None:
    assert parse_time("2024-01-01T00:00:00Z", "t") == 1704067200.0
    assert parse_time("2024-01-01T00:00:00.123456789Z", "t") == pytest.approx(1704067200.123456)
    assert parse_time("2024-01-01T01:00:00+01:00", "t") == 1704067200.0
    assert parse_time("0001-01-01T00:00:00Z", "t") is None
    with pytest.raises(PayloadError):
        parse_time("2024-01-01", "t")


def test_wrong_content_type_is_415(world: WorldFactory) -> None:
    w = world()
    r = w.client.post(
        "/api/v1/alerts", data=json.dumps(valid()), headers=AUTH, content_type="text/plain"
    )
    assert r.status_code == 415
    assert r.get_json()["code"] == 415
    none = w.client.post("/api/v1/alerts", data=json.dumps(valid()), headers=AUTH)
    assert none.status_code == 415


def test_body_over_the_limit_is_413(world: WorldFactory) -> None:
    w = world(max_body_bytes=4096)
    big = message(*(alert(f"node-{i}") for i in range(40)))
    r = w.client.post("/api/v1/alerts", json=big, headers=AUTH)
    assert r.status_code == 413
    assert r.get_json()["code"] == 413


def test_default_limit_is_one_mebibyte(world: WorldFactory) -> None:
    w = world()
    assert w.app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024


def test_malformed_json_is_400(world: WorldFactory) -> None:
    w = world()
    for raw in (b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b""):
        r = w.client.post("/api/v1/alerts", data=raw, headers=AUTH, content_type="application/json")
        assert r.status_code == 400, raw[:10]
        assert r.get_json()["field"] == "(body)"


def test_errors_are_json_everywhere(world: WorldFactory) -> None:
    w = world()
    missing = w.client.get("/nope")
    assert (missing.status_code, missing.get_json()["name"]) == (404, "Not Found")
    wrong = w.client.get("/api/v1/alerts")
    assert wrong.status_code == 405
    assert wrong.get_json()["code"] == 405
    assert "POST" in wrong.headers["Allow"]
