"""An in-memory `AgentApi` for unit tests: a tiny world of nodes, orders and leases,
with a switch to make every call fail the way an unreachable API server does."""

from __future__ import annotations

import threading
from typing import Any

from core.kube_errors import KubeError, NotFound, Unavailable
from node_agent.kube import NodeFacts, PeerEntry


class FakeAgentApi:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeFacts] = {}
        self.peer_entries: list[PeerEntry] = []
        self.orders: dict[str, str] = {}  # node -> status.fence.order
        self.reports: dict[str, dict[str, Any]] = {}  # node -> status.agentReport
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}  # (ns, node) -> spec
        self.annotations: dict[str, dict[str, str]] = {}
        self.calls: list[str] = []
        self.failure: KubeError | None = None  # raised by every call while set
        self._lock = threading.Lock()

    def cut_off(self) -> None:
        self.failure = Unavailable(0, "ConnectTimeoutError", "fake: API unreachable")

    def restore(self) -> None:
        self.failure = None

    def _enter(self, what: str) -> None:
        with self._lock:
            self.calls.append(what)
        if self.failure is not None:
            raise self.failure

    def read_order_token(self, node: str, timeout_s: float) -> str | None:
        self._enter(f"read_order_token {node}")
        return self.orders.get(node)

    def report_fence(self, node: str, report: dict[str, Any], timeout_s: float) -> None:
        self._enter(f"report_fence {node}")
        self.reports.setdefault(node, {}).update(report)

    def renew_lease(
        self, namespace: str, node: str, now: float, duration_s: float, timeout_s: float
    ) -> None:
        self._enter(f"renew_lease {node}")
        self.leases[(namespace, node)] = {"renewTime": now, "leaseDurationSeconds": duration_s}

    def read_node(self, node: str, timeout_s: float) -> NodeFacts:
        self._enter(f"read_node {node}")
        if node not in self.nodes:
            raise NotFound(404, "NotFound", f"nodes \"{node}\" not found")
        return self.nodes[node]

    def annotate_node(self, node: str, annotations: dict[str, str], timeout_s: float) -> None:
        self._enter(f"annotate_node {node}")
        self.annotations.setdefault(node, {}).update(annotations)

    def list_peers(self, timeout_s: float) -> list[PeerEntry]:
        self._enter("list_peers")
        return list(self.peer_entries)
