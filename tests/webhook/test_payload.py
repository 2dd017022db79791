"""Alertmanager payload validation, field by field, and the HTTP errors around it."""

from __future__ import annotations

import copy
import io
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
    # what the schema refuses, the receiver refuses too
    ("alerts.0.fingerprint", None, "alerts[0].fingerprint"),
    ("alerts.0.generatorURL", None, "alerts[0].generatorURL"),
    ("alerts.0.endsAt", None, "alerts[0].endsAt"),
    ("alerts.0.endsAt", "", "alerts[0].endsAt"),
    ("truncatedAlerts", None, "truncatedAlerts"),
    ("groupKey", None, "groupKey"),
    # out of range once converted to UTC (OverflowError), not a 500
    ("alerts.0.startsAt", "9999-12-31T23:59:59-01:00", "alerts[0].startsAt"),
    ("alerts.0.endsAt", "9999-12-31T23:59:59-01:00", "alerts[0].endsAt"),
    ("alerts.0.startsAt", "2024-01-01T00:00:00Z\n", "alerts[0].startsAt"),
    ("alerts.0.startsAt", "\u0662024-01-01T00:00:00Z", "alerts[0].startsAt"),
    # a lone surrogate cannot be hashed or logged as UTF-8 (UnicodeEncodeError), not a 500
    ("alerts.0.labels", {"alertname": "NodeNotReady", "node": "node-1", "x": "\ud800"},
     "alerts[0].labels.x"),
    ("alerts.0.labels", {"alertname": "NodeNotReady", "\udfff": "v"}, "alerts[0].labels.\\udfff"),
    ("alerts.0.annotations", {"summary": "a\udc80b"}, "alerts[0].annotations.summary"),
    ("receiver", "\ud83d", "receiver"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS)
def test_parse_names_the_bad_field(path: str, value: Any, field: str) -> None:
    data = with_change(path, value)
    if field.startswith("alerts["):  # one alert's problem: that alert alone is invalid
        msg = parse_message(data)
        assert [(a.index, a.field) for a in msg.invalid] == [(0, field)]
    else:
        with pytest.raises(PayloadError) as err:
            parse_message(data)
        assert err.value.field == field


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS)
def test_every_bad_field_is_a_400_never_a_500(
    world: WorldFactory, path: str, value: Any, field: str
) -> None:
    w = world()
    body = json.dumps(with_change(path, value))  # json.dumps escapes lone surrogates as \udXXX
    response = w.client.post(
        "/api/v1/alerts", data=body, headers=AUTH, content_type="application/json"
    )
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field


def test_one_bad_alert_is_rejected_alone_and_the_rest_handled(world: WorldFactory) -> None:
    w = world()
    w.kube.set_ready("node-2", "Unknown")
    w.kube.set_ready("node-3", "Unknown")
    w.settle()
    overflow = alert("node-9", starts_at=0)
    overflow["startsAt"] = "9999-12-31T23:59:59-01:00"
    surrogate = alert("node-8")
    surrogate["labels"]["team"] = "\ud800"
    del surrogate["fingerprint"]  # the fingerprint would be hashed from the labels
    body = json.dumps(message(alert("node-2"), overflow, surrogate, alert("node-3")))
    response = w.client.post(
        "/api/v1/alerts", data=body, headers=AUTH, content_type="application/json"
    )
    w.settle()
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["field"] == "alerts[1].startsAt"
    outcomes = [(a["index"], a["outcome"], a["reason"]) for a in answer["alerts"]]
    assert outcomes == [
        (0, "accepted", "Accepted"),
        (1, "rejected", "InvalidAlert"),
        (2, "rejected", "InvalidAlert"),
        (3, "accepted", "Accepted"),
    ]
    assert answer["alerts"][2]["field"] == "alerts[2].labels.team"
    assert answer["summary"] == {"accepted": 2, "rejected": 2}
    assert w.remediation("node-2") is not None and w.remediation("node-3") is not None
    assert w.remediation("node-9") is None and w.remediation("node-8") is None
    assert w.sample(
        "nodewarden_webhook_decisions_total", verdict="rejected", reason="InvalidAlert"
    ) == 2


@pytest.mark.parametrize("name", ["node-1\n", "node-1\r", "node-1 ", "\nnode-1", "NODE-1"])
def test_node_names_must_match_in_full(world: WorldFactory, name: str) -> None:
    w = world()
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    r = w.post_alerts(message(alert(name)))
    assert r.status_code == 200
    assert (r.get_json()["alerts"][0]["reason"]) == "InvalidNodeName"
    op = w.op("POST", "/api/v1/remediations", {"node": name})
    assert op.status_code == 400 and op.get_json()["reason"] == "InvalidNodeName"
    assert w.remediation("node-1") is None


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS[:8])
def test_bad_message_field_is_a_400_naming_it(
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


class Trickle(io.RawIOBase):
    """A request body that answers every read with at most `step` bytes, then EOF."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self.step if size is None or size < 0 else min(size, self.step)
        out, self.data = self.data[:n], self.data[n:]
        return out


def post_raw(w: Any, stream: io.RawIOBase, length: int) -> Any:
    return w.client.post(
        "/api/v1/alerts",
        headers=AUTH,
        content_type="application/json",
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(length)},
    )


def test_a_body_that_arrives_in_parts_is_read_whole(world: WorldFactory) -> None:
    w = world()
    body = json.dumps(valid()).encode()
    r = post_raw(w, Trickle(body, 7), len(body))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["alerts"][0]["node"] == "node-1"


def test_a_body_shorter_than_its_content_length_is_400(world: WorldFactory) -> None:
    w = world()
    body = json.dumps(valid()).encode()
    r = post_raw(w, Trickle(body[:50], 7), len(body))
    assert r.status_code == 400
    assert r.get_json()["code"] == 400


def test_a_declared_length_over_the_limit_is_413_before_reading(world: WorldFactory) -> None:
    w = world(max_body_bytes=4096)
    stream = Trickle(b"{}" * 4000, 7)
    r = post_raw(w, stream, 8000)
    assert r.status_code == 413
    assert stream.data == b"{}" * 4000  # not a byte read


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
