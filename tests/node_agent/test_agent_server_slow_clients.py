"""Slow clients and floods against a real agent endpoint on loopback: they cost no threads,
they are closed at the request deadline, and while they hold every connection they can,
/healthz, /metrics and authenticated peers are answered at once.

The attackers (`harness.attack`) connect from many loopback addresses (127.0.x.y), so
both bounds are tried: per client and in total."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import requests
from agent_testkit import SECRET, AgentWorld, scaled_settings

from core.clock import FakeClock
from core.peer_client import PeerClient
from harness.attack import Flood, SlowClients
from node_agent.settings import AgentSettings

SOURCES = tuple(f"127.0.{i // 200 + 1}.{i % 200 + 1}" for i in range(100))
# The bound on every answer: the agents' default peer timeout (a slower answer is no
# answer to the asking agent). Quiet, answers take milliseconds; the margin is for a
# loaded 2-core test machine with the attackers on it.
PEER_TIMEOUT_S = AgentSettings(node_name="x").peer_request_timeout_s


@pytest.fixture
def world(world_factory: Callable[..., AgentWorld]) -> Iterator[AgentWorld]:
    w = world_factory(replace(scaled_settings(), request_read_timeout_s=1.0))
    w.runtime.server.start()
    yield w
    w.runtime.server.shutdown()


@pytest.fixture
def client(clock: FakeClock) -> PeerClient:
    session = requests.Session()
    session.trust_env = False
    return PeerClient(SECRET, timeout_s=PEER_TIMEOUT_S, clock=clock, session=session)


def address(world: AgentWorld) -> tuple[str, int]:
    return ("127.0.0.1", world.runtime.server.port)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def answers_at_once(world: AgentWorld, client: PeerClient, rounds: int = 10) -> float:
    """The slowest of `rounds` rounds of health probe, scrape and authenticated question."""
    session = requests.Session()
    session.trust_env = False
    slowest = 0.0
    for _ in range(rounds):
        slowest = max(
            slowest,
            timed(lambda: session.get(world.url + "/healthz", timeout=PEER_TIMEOUT_S).raise_for_status()),
            timed(lambda: session.get(world.url + "/metrics", timeout=PEER_TIMEOUT_S).raise_for_status()),
            timed(lambda: client.node_view(world.url, "worker-7", receiver="worker-1", timeout_s=PEER_TIMEOUT_S)),
        )
    return slowest


@pytest.mark.parametrize("mode", ["headers", "idle"])
def test_five_hundred_slow_clients_hold_no_thread_and_delay_no_answer(
    world: AgentWorld, client: PeerClient, mode: str
) -> None:
    server = world.runtime.server
    answers_at_once(world, client, rounds=1)  # the pools' threads exist before counting
    threads = threading.active_count()
    with SlowClients(address(world), 500, interval_s=0.2, mode=mode, sources=SOURCES) as slow:
        wait_for(lambda: slow.stats().connects >= 500, 10, "500 slow connections opened")
        slowest = answers_at_once(world, client)
        held = server.strangers()
        grown = threading.active_count() - threads - 1  # the attacker's own thread
    assert slowest < PEER_TIMEOUT_S, f"an answer took {slowest:.2f}s under 500 slow clients"
    assert grown <= 0, f"{grown} more threads under 500 slow clients"
    assert held <= server.settings.max_connections
    assert world.runtime.fencer.record is None


def test_the_issues_slow_bodies_are_refused_at_once_and_hold_nothing(world: AgentWorld, client: PeerClient) -> None:
    """40 connections announcing a 16,000-byte POST body and sending it a byte every 2 s
    held every request slot of the old server; unsigned, each is refused from its head."""
    with SlowClients(address(world), 40, interval_s=2.0, mode="body", sources=SOURCES) as slow:
        wait_for(lambda: slow.stats().answers["401"] >= 40, 10, "every slow body refused")
        assert answers_at_once(world, client) < PEER_TIMEOUT_S
        assert world.runtime.server.strangers() <= 40


def test_one_client_is_bounded_by_its_own_limit(world: AgentWorld, client: PeerClient) -> None:
    server = world.runtime.server
    with SlowClients(address(world), 100, interval_s=0.2, sources=("127.0.9.9",)) as slow:
        wait_for(lambda: slow.stats().connects >= 100, 10, "100 connections opened")
        time.sleep(0.3)
        assert server.connections() <= server.settings.max_connections_per_client
        assert answers_at_once(world, client, rounds=3) < PEER_TIMEOUT_S
    assert world.metric("nodewarden_agent_peer_requests_refused_total", reason="ConnectionLimit") >= 68


def test_a_request_has_one_deadline_for_head_and_body(world: AgentWorld) -> None:
    """One byte every 0.1 s never times out a per-read timeout; the whole-request deadline
    (1 s here) closes the connection with a 408."""
    with SlowClients(address(world), 1, interval_s=0.1, mode="headers") as slow:
        wait_for(lambda: slow.stats().closed_by_server >= 1, 5, "the trickling client closed")
        stats = slow.stats()
    assert stats.answers["408"] >= 1
    assert world.metric("nodewarden_agent_peer_requests_refused_total", reason="TooSlow") >= 1


def test_a_flood_of_unauthenticated_requests_leaves_peers_answered(
    world: AgentWorld, client: PeerClient
) -> None:
    with Flood(address(world), source="127.0.3.3") as flood, Flood(address(world), source="127.0.3.4"):
        wait_for(lambda: flood.stats().connects >= 50, 10, "the flood under way")
        slowest = answers_at_once(world, client)
        stats = flood.stats()
    assert set(stats.answers) == {"401"}
    assert slowest < PEER_TIMEOUT_S


def test_a_peer_flooded_and_held_still_answers_its_peers_question(
    world_factory: Callable[..., AgentWorld], client: PeerClient
) -> None:
    """What an asking agent sees of a peer whose port is under attack: every question
    answered, so "my peer's port is flooded" never reads as "my peers are gone"."""
    peer = world_factory(replace(scaled_settings(node_name="worker-2"), request_read_timeout_s=1.0))
    peer.runtime.server.start()
    peer.api.cut_off()  # an API outage: the answer that keeps the asker up is "cannot reach it either"
    peer.step()
    try:
        with SlowClients(address(peer), 400, interval_s=0.2, sources=SOURCES) as slow, Flood(address(peer), source="127.0.3.3"):
            wait_for(lambda: slow.stats().connects >= 400, 10, "400 slow connections opened")
            views = [client.node_view(peer.url, "worker-1", receiver="worker-2", timeout_s=PEER_TIMEOUT_S)
                     for _ in range(30)]
        assert [v.api_reachable for v in views] == [False] * 30
    finally:
        peer.runtime.server.shutdown()
