"""PeerClient's error handling (with `responses`) and the wire format's round trips."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from agent_testkit import SECRET

from core.clock import FakeClock
from core.peer_auth import DATE_HEADER, SIGNATURE_HEADER, check_request
from core.peer_client import (
    Acknowledgement,
    Health,
    NodeView,
    OrderAnswer,
    OrderOutcome,
    PeerClient,
    PeerError,
    PeerErrorKind,
    Reach,
    order_http_status,
)

BASE = "http://peer.invalid:9471"


@pytest.fixture
def client(clock: FakeClock) -> PeerClient:
    return PeerClient(SECRET, timeout_s=1.0, clock=clock, max_response_bytes=2048)


def view_json(order: str | None = None) -> dict[str, object]:
    return NodeView("worker-1", "worker-2", True, order, "api" if order else None, 1.0).to_json()


@responses.activate
def test_requests_are_signed_over_the_path_as_sent(client: PeerClient, clock: FakeClock) -> None:
    responses.get(f"{BASE}/peer/v1/nodes/worker-1", json=view_json())
    client.node_view(BASE, "worker-1")
    sent = responses.calls[0].request
    headers = {DATE_HEADER: sent.headers[DATE_HEADER], SIGNATURE_HEADER: sent.headers[SIGNATURE_HEADER]}
    assert check_request(SECRET, "GET", "/peer/v1/nodes/worker-1", b"", headers, clock.now()) is None


@responses.activate
def test_order_body_carries_a_unique_request_id(client: PeerClient) -> None:
    answer = OrderAnswer("worker-1", "worker-1", OrderOutcome.REJECTED, "Expired", "old")
    responses.post(f"{BASE}/peer/v1/orders", json=answer.to_json(), status=422)
    assert client.deliver_order(BASE, "nwf1.a.b") == answer
    client.deliver_order(BASE, "nwf1.a.b")
    bodies = [json.loads(c.request.body) for c in responses.calls]
    assert bodies[0]["order"] == "nwf1.a.b"
    assert bodies[0]["requestId"] != bodies[1]["requestId"]
    assert "relayHops" not in bodies[0]


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"body": requests.ConnectTimeout("slow")}, PeerErrorKind.TIMEOUT),
        ({"body": requests.ReadTimeout("slow")}, PeerErrorKind.TIMEOUT),
        ({"body": requests.ConnectionError("refused")}, PeerErrorKind.UNREACHABLE),
        ({"status": 401, "json": {"code": 401}}, PeerErrorKind.UNAUTHORIZED),
        ({"status": 500, "body": "boom"}, PeerErrorKind.HTTP),
        ({"status": 200, "body": "not json"}, PeerErrorKind.BAD_RESPONSE),
        ({"status": 200, "json": [1, 2]}, PeerErrorKind.BAD_RESPONSE),
        ({"status": 200, "json": {"node": 3}}, PeerErrorKind.BAD_RESPONSE),
        ({"status": 200, "body": "x" * 5000}, PeerErrorKind.BAD_RESPONSE),
    ],
)
@responses.activate
def test_every_failure_is_a_peer_error_with_its_kind(
    client: PeerClient, kwargs: dict[str, object], kind: PeerErrorKind
) -> None:
    responses.get(f"{BASE}/peer/v1/health", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PeerError) as info:
        client.health(BASE)
    assert info.value.kind is kind


@responses.activate
def test_a_503_order_answer_is_parsed_not_raised(client: PeerClient) -> None:
    answer = OrderAnswer("worker-1", "worker-1", OrderOutcome.NOT_READY, "BootUnknown")
    responses.post(f"{BASE}/peer/v1/orders", json=answer.to_json(), status=503)
    assert client.deliver_order(BASE, "t").outcome is OrderOutcome.NOT_READY


def test_wire_types_round_trip() -> None:
    ack = Acknowledgement("w", "uid", "fence", 10.5, 9.25, 60.0, "b", "watchdog")
    items = [
        Health("w", "0.1.0", "b", None, False, True, 1.5),
        NodeView("w", "x", False, "tok", "relay", 2.0),
        Reach("w", "x", True, 0.01, None),
        OrderAnswer("w", "w", OrderOutcome.FENCING, None, "d", ack, "x"),
        ack,
    ]
    for item in items:
        data = json.loads(json.dumps(item.to_json()))
        assert type(item).from_json(data) == item  # type: ignore[attr-defined]


def test_order_outcomes_have_fixed_http_statuses() -> None:
    assert order_http_status(OrderOutcome.FENCING) == 200
    assert order_http_status(OrderOutcome.ALREADY_REBOOTED) == 200
    assert order_http_status(OrderOutcome.REJECTED) == 422
    assert order_http_status(OrderOutcome.NOT_READY) == 503
    assert order_http_status(OrderOutcome.RELAY_FAILED) == 502
