"""Worlds for the node agent's tests: signing keys, a peer secret, scaled-down settings,
and a whole agent (`AgentWorld`) built from fakes around a real HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from agent_testkit import BOOT, NODE, SECRET, AgentWorld, ScriptedPeers, scaled_settings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from core.clock import FakeClock
from core.fence_order import Action, OrderKey, new_order, sign_order
from core.peer_client import PeerClient
from node_agent.boot import BootIdentity
from node_agent.commands import FakeRunner
from node_agent.kube import NodeFacts, PeerEntry
from node_agent.peers import NodeViewClient
from node_agent.runtime import Runtime, Seams
from node_agent.settings import AgentSettings
from node_agent.watchdog import FakeWatchdog
from tests.node_agent.fake_kube import FakeAgentApi


@pytest.fixture
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_token(private_key: Ed25519PrivateKey, clock: FakeClock) -> Callable[..., str]:
    def make(
        node: str = NODE,
        action: Action = Action.FENCE,
        boot_id: str = BOOT,
        ttl_s: float = 120.0,
        issued_at: float | None = None,
        key: Ed25519PrivateKey | None = None,
        uid: str = "uid-1",
    ) -> str:
        order = new_order(
            node=node,
            remediation_uid=uid,
            action=action,
            issued_at=clock.now() if issued_at is None else issued_at,
            ttl_s=ttl_s,
            boot_id=boot_id,
        )
        return sign_order(order, key or private_key)

    return make


@pytest.fixture
def world_factory(
    private_key: Ed25519PrivateKey, clock: FakeClock
) -> Iterator[Callable[..., AgentWorld]]:
    built: list[Runtime] = []

    def build(
        settings: AgentSettings | None = None,
        peers: int = 4,
        watchdog: bool = True,
        control_plane: bool = False,
        boot: BootIdentity | None = None,
        poll_client: NodeViewClient | None = None,
    ) -> AgentWorld:
        s = settings or scaled_settings()
        api = FakeAgentApi()
        api.nodes[s.node_name] = NodeFacts(s.node_name, BOOT, control_plane, internal_ip="127.0.0.1")
        urls = [f"http://peer-{i}.invalid:9471" for i in range(peers)]
        api.peer_entries = [PeerEntry(f"peer-{i}", url, False) for i, url in enumerate(urls)]
        wd = FakeWatchdog(timeout_s=s.watchdog_timeout_s)
        runner = FakeRunner()
        scripted = ScriptedPeers()
        registry = CollectorRegistry()
        seams = Seams(
            clock=clock,
            api=api,
            opener=(lambda: wd) if watchdog else None,
            peer_client=PeerClient(SECRET, timeout_s=s.peer_request_timeout_s, clock=clock),
            runner=runner,
            boot=boot or BootIdentity(BOOT, None, from_node_status=False),
            public_keys=[OrderKey.of(private_key.public_key())],
            secret=SECRET,
            registry=registry,
            poll_client=poll_client or scripted,
        )
        runtime = Runtime(s, seams)
        built.append(runtime)
        world = AgentWorld(runtime, api, clock, wd, runner, scripted, registry, urls)
        runtime.publisher.step()  # nothing before the first check: the API is not known yet
        return world

    yield build
    for runtime in built:
        runtime.server.server_close()
        runtime.executor.shutdown(wait=False)
