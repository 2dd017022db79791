"""The peer endpoint over real HTTP on 127.0.0.1: every route, relaying between two
agents, and the rejections (401 unauthenticated, replay, skew; 413, 400, 404) that must
never lead to any action."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import requests
from agent_testkit import SECRET, AgentWorld, scaled_settings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.clock import FakeClock
from core.fence_order import Action
from core.peer_auth import sign_request
from core.peer_client import OrderOutcome, PeerClient, order_request_body


@pytest.fixture
def world(world_factory: Callable[..., AgentWorld]) -> Iterator[AgentWorld]:
    w = world_factory()
    w.runtime.server.start()
    yield w
    w.runtime.server.shutdown()


@pytest.fixture
def client(clock: FakeClock) -> PeerClient:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    return PeerClient(SECRET, timeout_s=3.0, clock=clock, session=session)


def raw(world: AgentWorld, method: str, path: str, body: bytes = b"", secret: bytes = SECRET,
        at: float | None = None, headers: dict[str, str] | None = None,
        receiver: str = "worker-1") -> requests.Response:
    signed = sign_request(secret, method, path, body, world.clock.now() if at is None else at, receiver)
    session = requests.Session()
    session.trust_env = False
    return session.request(method, world.url + path, data=body, headers={**signed, **(headers or {})}, timeout=5)


def test_health_round_trip(world: AgentWorld, client: PeerClient) -> None:
    world.step()
    health = client.health(world.url, receiver="worker-1")
    assert (health.node, health.api_reachable, health.fencing) == ("worker-1", True, False)
    assert world.metric("nodewarden_agent_peer_requests_served_total", endpoint="health", code="200") == 1


def test_node_view_reads_the_order_from_the_api_while_reachable(
    world: AgentWorld, client: PeerClient, make_token: Callable[..., str]
) -> None:
    world.step()
    token = make_token(node="worker-7")
    world.api.orders["worker-7"] = token
    view = client.node_view(world.url, "worker-7", receiver="worker-1")
    assert (view.api_reachable, view.order, view.order_source, view.answered_by) == (True, token, "api", "worker-1")
    assert client.node_view(world.url, "worker-8", receiver="worker-1").order is None


def test_order_for_another_node_is_kept_and_relayed_when_the_api_is_gone(
    world: AgentWorld, client: PeerClient, make_token: Callable[..., str]
) -> None:
    world.api.cut_off()
    world.step()
    token = make_token(node="worker-7")
    answer = client.deliver_order(world.url, token, receiver="worker-1")
    assert answer.outcome is OrderOutcome.RELAY_FAILED  # worker-7 has no known endpoint
    view = client.node_view(world.url, "worker-7", receiver="worker-1")
    assert (view.api_reachable, view.order, view.order_source) == (False, token, "relay")
    assert world.runtime.fencer.record is None


def test_forged_order_for_another_node_is_not_kept(
    world: AgentWorld, client: PeerClient, make_token: Callable[..., str]
) -> None:
    world.api.cut_off()
    world.step()
    forged = make_token(node="worker-7", key=Ed25519PrivateKey.generate())
    answer = client.deliver_order(world.url, forged, receiver="worker-1")
    assert (answer.outcome, answer.reason) == (OrderOutcome.REJECTED, "BadSignature")
    assert client.node_view(world.url, "worker-7", receiver="worker-1").order is None


def test_direct_fence_order_is_acknowledged(world: AgentWorld, client: PeerClient, make_token: Callable[..., str]) -> None:
    world.step()
    answer = client.deliver_order(world.url, make_token(), receiver="worker-1")
    assert answer.outcome is OrderOutcome.FENCING
    assert answer.acknowledgement is not None
    assert answer.acknowledgement.watchdog_timeout_s == 3.0
    assert world.runtime.fencer.record is not None
    assert client.health(world.url, receiver="worker-1").fencing is True


def test_order_relayed_through_a_second_agent(
    world_factory: Callable[..., AgentWorld], client: PeerClient, make_token: Callable[..., str]
) -> None:
    target = world_factory()
    relay = world_factory(scaled_settings(node_name="worker-2", peers=[f"worker-1={target.url}"]))
    target.runtime.server.start()
    relay.runtime.server.start()
    try:
        target.step()
        answer = client.deliver_order(relay.url, make_token(), receiver="worker-2")
        assert answer.outcome is OrderOutcome.FENCING
        assert answer.relayed_via == "worker-2"
        assert target.runtime.fencer.record is not None
        reach = client.reach(relay.url, "worker-1", receiver="worker-2")
        assert reach.reachable is True and reach.answered_by == "worker-2"
        assert client.reach(relay.url, "worker-9", receiver="worker-2").reachable is False
    finally:
        target.runtime.server.shutdown()
        relay.runtime.server.shutdown()


@pytest.mark.parametrize(
    ("secret", "offset", "reason"),
    [
        (b"wrong-secret", 0.0, "BadSignature"),
        (SECRET, -120.0, "ClockSkew"),
    ],
)
def test_unauthenticated_fence_request_does_nothing(
    world: AgentWorld, make_token: Callable[..., str], secret: bytes, offset: float, reason: str
) -> None:
    body = order_request_body(make_token())
    resp = raw(world, "POST", "/peer/v1/orders", body, secret=secret, at=world.clock.now() + offset,
               headers={"Content-Type": "application/json"})
    assert resp.status_code == 401
    assert resp.json() == {"code": 401, "name": "Unauthorized", "description": reason}
    assert world.runtime.fencer.record is None


def test_request_without_credentials_is_401(world: AgentWorld) -> None:
    session = requests.Session()
    session.trust_env = False
    resp = session.get(world.url + "/peer/v1/health", timeout=5)
    assert resp.status_code == 401 and resp.json()["description"] == "MissingCredentials"
    assert world.metric("nodewarden_agent_peer_requests_served_total", endpoint="health", code="401") == 1


def test_replayed_order_request_is_refused(world: AgentWorld, make_token: Callable[..., str]) -> None:
    body = order_request_body(make_token(action=Action.RESTART_KUBELET))
    signed = sign_request(SECRET, "POST", "/peer/v1/orders", body, world.clock.now(), "worker-1")
    session = requests.Session()
    session.trust_env = False
    first = session.post(world.url + "/peer/v1/orders", data=body, headers=signed, timeout=5)
    again = session.post(world.url + "/peer/v1/orders", data=body, headers=signed, timeout=5)
    assert first.status_code == 200
    assert (again.status_code, again.json()["description"]) == (401, "Replay")
    assert len(world.runner.calls) <= 1


def test_bounded_requests(world: AgentWorld) -> None:
    big = json.dumps({"order": "x" * 20000}).encode()
    assert raw(world, "POST", "/peer/v1/orders", big).status_code == 413
    assert raw(world, "GET", "/peer/v1/health", b"{}").status_code == 413
    assert raw(world, "GET", "/peer/v1/nodes/Not_A_Node").status_code == 400
    assert raw(world, "POST", "/peer/v1/orders", b"{not json").status_code == 400
    assert raw(world, "GET", "/peer/v1/unknown").status_code == 404
    assert raw(world, "POST", "/peer/v1/health").status_code == 404
    assert world.runtime.fencer.record is None


def test_probes_and_metrics_need_no_credentials(world: AgentWorld) -> None:
    session = requests.Session()
    session.trust_env = False
    assert session.get(world.url + "/healthz", timeout=5).text == "ok\n"
    metrics = session.get(world.url + "/metrics", timeout=5).text
    assert "nodewarden_agent_watchdog_feeds_total" in metrics


def test_an_order_is_never_relayed_twice(world: AgentWorld, make_token: Callable[..., str]) -> None:
    world.step()
    body = json.dumps({"order": make_token(node="worker-7"), "requestId": "r1", "relayHops": 1}).encode()
    resp = raw(world, "POST", "/peer/v1/orders", body)
    assert resp.status_code == 502
    assert resp.json()["reason"] == "NotRelayedTwice"
