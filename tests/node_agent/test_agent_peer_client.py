"""PeerClient's error handling (with `responses`), its signatures, and the wire format's round trips.

Every answer the client uses must be signed for the request it answers: a host without
the secret (here, `responses` answering unsigned, or signed for another request or with
another secret) gets `UnsignedAnswer`, never a parsed answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses
from agent_testkit import SECRET

from core.clock import FakeClock
from core.peer_auth import (
    ANSWER_HEADER,
    REQUEST_HEADERS,
    SIGNATURE_HEADER,
    AuthFailure,
    check_body,
    check_headers,
    sign_answer,
)
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
HEALTH = Health("worker-1", "0.1.0", "b", True, False, True, 1.5)


@pytest.fixture
def client(clock: FakeClock) -> PeerClient:
    return PeerClient(SECRET, timeout_s=1.0, clock=clock, max_response_bytes=2048)


def view_json(order: str | None = None) -> dict[str, object]:
    return NodeView("worker-1", "worker-2", True, order, "api" if order else None, 1.0).to_json()


def signed(status: int, data: object, secret: bytes = SECRET, bind: str | None = None) -> Callable[..., Any]:
    """A `responses` callback answering like a peer: signed for the request it answers
    (or, with `bind`, for another request's signature)."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = data if isinstance(data, str) else json.dumps(data)
        signature = bind or str(request.headers[SIGNATURE_HEADER])
        return status, {ANSWER_HEADER: sign_answer(secret, signature, status, body.encode())}, body

    return answer


@responses.activate
def test_requests_are_signed_over_the_path_as_sent_for_their_receiver(client: PeerClient, clock: FakeClock) -> None:
    responses.add_callback("GET", f"{BASE}/peer/v1/nodes/worker-1", callback=signed(200, view_json()))
    client.node_view(BASE, "worker-1", receiver="worker-2")
    sent = responses.calls[0].request
    headers = {h: str(sent.headers[h]) for h in REQUEST_HEADERS}
    path = "/peer/v1/nodes/worker-1"
    assert check_headers(SECRET, "GET", path, headers, now=clock.now(), receiver="worker-2") is None
    assert check_body(headers, b"") is None
    assert check_headers(SECRET, "GET", path, headers, now=clock.now(), receiver="worker-3") is AuthFailure.WRONG_RECEIVER


@responses.activate
def test_order_body_carries_a_unique_request_id(client: PeerClient) -> None:
    answer = OrderAnswer("worker-1", "worker-1", OrderOutcome.REJECTED, "Expired", "old")
    responses.add_callback("POST", f"{BASE}/peer/v1/orders", callback=signed(422, answer.to_json()))
    assert client.deliver_order(BASE, "nwf1.a.b", receiver="worker-1") == answer
    client.deliver_order(BASE, "nwf1.a.b", receiver="worker-1")
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
        ({"status": 200, "body": "x" * 5000}, PeerErrorKind.BAD_RESPONSE),
        ({"status": 200, "json": HEALTH.to_json()}, PeerErrorKind.UNSIGNED_ANSWER),  # a host without the secret
    ],
)
@responses.activate
def test_every_failure_is_a_peer_error_with_its_kind(
    client: PeerClient, kwargs: dict[str, object], kind: PeerErrorKind
) -> None:
    responses.get(f"{BASE}/peer/v1/health", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PeerError) as info:
        client.health(BASE, receiver="worker-1")
    assert info.value.kind is kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ("not json", PeerErrorKind.BAD_RESPONSE),
        ([1, 2], PeerErrorKind.BAD_RESPONSE),
        ({"node": 3}, PeerErrorKind.BAD_RESPONSE),
        ("[" * 16000, PeerErrorKind.BAD_RESPONSE),
    ],
)
@responses.activate
def test_a_signed_answer_that_is_not_the_protocol_is_bad_response(
    client: PeerClient, data: object, kind: PeerErrorKind
) -> None:
    big = PeerClient(SECRET, timeout_s=1.0, max_response_bytes=32768)
    responses.add_callback("GET", f"{BASE}/peer/v1/health", callback=signed(200, data))
    with pytest.raises(PeerError) as info:
        big.health(BASE, receiver="worker-1")
    assert info.value.kind is kind


@pytest.mark.parametrize(
    "forgery",
    [
        {"secret": b"not-the-cluster-secret"},  # signed, but not by a holder of the secret
        {"bind": "0" * 64},  # a real answer, to another request (replayed)
    ],
)
@responses.activate
def test_an_answer_not_signed_for_this_request_is_refused(client: PeerClient, forgery: dict[str, Any]) -> None:
    reachable = NodeView("worker-1", "worker-2", True, None, None, 1.0).to_json()
    responses.add_callback("GET", f"{BASE}/peer/v1/nodes/worker-1", callback=signed(200, reachable, **forgery))
    with pytest.raises(PeerError) as info:
        client.node_view(BASE, "worker-1", receiver="worker-2")
    assert info.value.kind is PeerErrorKind.UNSIGNED_ANSWER


@responses.activate
def test_a_503_order_answer_is_parsed_not_raised(client: PeerClient) -> None:
    answer = OrderAnswer("worker-1", "worker-1", OrderOutcome.NOT_READY, "BootUnknown")
    responses.add_callback("POST", f"{BASE}/peer/v1/orders", callback=signed(503, answer.to_json()))
    assert client.deliver_order(BASE, "t", receiver="worker-1").outcome is OrderOutcome.NOT_READY


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
