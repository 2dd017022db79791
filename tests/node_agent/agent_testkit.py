"""Helpers shared by the node agent's tests (constants, scaled settings, scripted peers)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry

from core.clock import FakeClock
from core.peer_client import NodeView, PeerError, PeerErrorKind
from node_agent.commands import FakeRunner
from node_agent.runtime import Runtime
from node_agent.settings import AgentSettings
from node_agent.watchdog import FakeWatchdog
from tests.node_agent.fake_kube import FakeAgentApi

NODE = "worker-1"
BOOT = "boot-aaaa"
SECRET = b"cluster-peer-secret"


def scaled_settings(**overrides: Any) -> AgentSettings:
    """Kubernetes-style timings divided by 20, on 127.0.0.1:0."""
    base = AgentSettings(
        node_name=NODE,
        watchdog_timeout_s=3.0,
        api_check_interval_s=0.75,
        api_check_timeout_s=0.25,
        api_failure_threshold=3,
        peer_request_timeout_s=0.5,
        peer_api_timeout_s=0.2,
        isolation_timeout_s=1.5,
        peer_refresh_interval_s=15.0,
        loop_tick_s=0.05,
        listen="127.0.0.1:0",
        max_clock_skew_s=30.0,
        peer_cache_file=None,
    )
    return replace(base, **overrides)


class ScriptedPeers:
    """A peer client whose answers tests script per peer URL: a NodeView, or an error."""

    def __init__(self) -> None:
        self.views: dict[str, NodeView | PeerErrorKind] = {}
        self.asked: list[str] = []
        self.silent: set[str] = set()  # these never answer until `release` is set (dropped packets)
        self.release = threading.Event()

    def node_view(self, base_url: str, node: str, *, receiver: str, timeout_s: float | None = None) -> NodeView:
        self.asked.append(base_url)
        if base_url in self.silent:
            self.release.wait(60.0)
            raise PeerError(PeerErrorKind.TIMEOUT, "scripted: silent")
        answer = self.views.get(base_url, PeerErrorKind.TIMEOUT)
        if isinstance(answer, PeerErrorKind):
            raise PeerError(answer, "scripted")
        return answer

    def set_all(self, urls: list[str], reachable: bool | None, order: str | None = None) -> None:
        for url in urls:
            self.views[url] = NodeView(url, url, reachable, order, "api" if order else None, 0.0)


@dataclass
class AgentWorld:
    runtime: Runtime
    api: FakeAgentApi
    clock: FakeClock
    watchdog: FakeWatchdog
    runner: FakeRunner
    peers: ScriptedPeers
    registry: CollectorRegistry
    peer_urls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.server.port}"

    def step(self) -> Any:
        return self.runtime.agent.step()

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value
