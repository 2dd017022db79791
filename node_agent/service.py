"""What the agent answers on its peer endpoints, apart from HTTP (see `server.py`).

- health: this agent's state.
- node view of X: a live read of X's NodeRemediation when this agent's own last API check
  succeeded (so the order, if any, is fresh from the API); otherwise "cannot reach the
  API" at once, with any order for X that was relayed to this agent.
- reach X: a signed health request to X's agent, with the peer timeout.
- deliver an order: for this node, the order desk decides; for another node, the order
  is kept (if its signature holds and it has not expired, so X can fetch it by asking
  "what do you know about me") and forwarded to X's agent once (never relayed twice).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock
from core.fence_order import (
    FenceOrder,
    OrderKey,
    Rejection,
    RejectReason,
    decode_order,
    verify_order,
)
from core.kube_errors import KubeError
from core.peer_client import Health, NodeView, OrderAnswer, OrderOutcome, PeerError, Reach
from node_agent.apicheck import ApiChecker
from node_agent.isolation import OrderSource
from node_agent.kube import AgentApi
from node_agent.orders import OrderDesk
from node_agent.peers import PeerDirectory

_RELAY_LIMIT = 4096
_HEALTHY_LIMIT = 4096


class PeerCalls(Protocol):
    def health(self, base_url: str, *, receiver: str, timeout_s: float | None = None) -> Health: ...

    def deliver_order(
        self, base_url: str, token: str, *, receiver: str, timeout_s: float | None = None, relay_hops: int = 0
    ) -> OrderAnswer: ...


@dataclass(frozen=True)
class ServiceSettings:
    node: str
    version: str
    peer_api_timeout_s: float
    peer_request_timeout_s: float
    max_clock_skew_s: float


class PeerService:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        api: AgentApi,
        checker: ApiChecker,
        desk: OrderDesk,
        directory: PeerDirectory,
        client: PeerCalls,
        public_keys: list[OrderKey],
        clock: Clock,
        boot_id: Callable[[], str | None],
        fencing: Callable[[], bool],
        self_fence_capable: Callable[[], bool],
    ) -> None:
        self._s = settings
        self._api = api
        self._checker = checker
        self._desk = desk
        self._directory = directory
        self._client = client
        self._keys = public_keys
        self._clock = clock
        self._boot_id = boot_id
        self._fencing = fencing
        self._capable = self_fence_capable
        self._relayed: dict[str, tuple[str, float]] = {}  # node -> (token, expires_at)
        self._healthy: dict[str, float] = {}  # node -> when we last told it "healthy"
        self._lock = threading.Lock()

    @property
    def node(self) -> str:
        return self._s.node

    def health(self) -> Health:
        return Health(
            node=self._s.node,
            version=self._s.version,
            boot_id=self._boot_id(),
            api_reachable=self._checker.last_ok,
            fencing=self._fencing(),
            self_fence_capable=self._capable(),
            time=self._clock.now(),
        )

    def node_view(self, target: str, observer: bool = False) -> NodeView:
        """`target` asking about itself (or, with `observer`, the remediator asking)."""
        if self._checker.last_ok:
            try:
                token = self._api.read_order_token(target, self._s.peer_api_timeout_s)
            except KubeError:
                pass
            else:
                if token is None and not observer:
                    # This answer keeps a cut-off `target` up: remember when we gave it.
                    with self._lock:
                        self._healthy[target] = self._clock.now()
                        while len(self._healthy) > _HEALTHY_LIMIT:
                            self._healthy.pop(next(iter(self._healthy)))
                return self._view(target, True, token, "api" if token else None)
        relayed = self._relayed_order(target)
        return self._view(target, False, relayed, "relay" if relayed else None)

    def _view(self, target: str, reachable: bool, token: str | None, source: str | None) -> NodeView:
        with self._lock:
            healthy = self._healthy.get(target)
        return NodeView(
            node=target,
            answered_by=self._s.node,
            api_reachable=reachable,
            order=token,
            order_source=source,
            checked_at=self._clock.now(),
            last_healthy_answer_at=healthy,
        )

    def reach(self, target: str) -> Reach:
        url = self._directory.url_of(target)
        if url is None:
            return Reach(target, self._s.node, False, None, "no known endpoint for that node")
        started = time.monotonic()
        try:
            self._client.health(url, receiver=target, timeout_s=self._s.peer_request_timeout_s)
        except PeerError as exc:
            return Reach(target, self._s.node, False, None, str(exc))
        return Reach(target, self._s.node, True, time.monotonic() - started, None)

    def deliver(self, token: str, relay_hops: int) -> OrderAnswer:
        decoded = decode_order(token)
        if isinstance(decoded, Rejection):
            return self._rejected("", decoded)
        if decoded.node == self._s.node:
            return self._desk.submit(token, OrderSource.DIRECT)
        return self._relay(decoded, token, relay_hops)

    def _relay(self, order: FenceOrder, token: str, relay_hops: int) -> OrderAnswer:
        # Check what can be checked without the target's boot: signature and validity.
        verdict = verify_order(
            token,
            public_keys=self._keys,
            node=order.node,
            now=self._clock.now(),
            boot_id=order.boot_id,
            boot_time=None,
            max_clock_skew_s=self._s.max_clock_skew_s,
        )
        if isinstance(verdict, Rejection):
            return self._rejected(order.node, verdict)
        with self._lock:
            self._relayed[order.node] = (token, order.expires_at)
            while len(self._relayed) > _RELAY_LIMIT:
                self._relayed.pop(next(iter(self._relayed)))
        if relay_hops > 0:
            return OrderAnswer(
                node=order.node,
                answered_by=self._s.node,
                outcome=OrderOutcome.RELAY_FAILED,
                reason="NotRelayedTwice",
                detail="kept for the node to fetch; an order is relayed at most once",
                relayed_via=self._s.node,
            )
        url = self._directory.url_of(order.node)
        if url is None:
            return self._relay_failed(order.node, "no known endpoint for that node; kept for it to fetch")
        try:
            answer = self._client.deliver_order(
                url, token, receiver=order.node, timeout_s=self._s.peer_request_timeout_s,
                relay_hops=relay_hops + 1,
            )
        except PeerError as exc:
            return self._relay_failed(order.node, f"{exc}; kept for it to fetch")
        return OrderAnswer(
            node=answer.node,
            answered_by=answer.answered_by,
            outcome=answer.outcome,
            reason=answer.reason,
            detail=answer.detail,
            acknowledgement=answer.acknowledgement,
            relayed_via=self._s.node,
        )

    def _relayed_order(self, node: str) -> str | None:
        with self._lock:
            entry = self._relayed.get(node)
            if entry is None:
                return None
            token, expires_at = entry
            if self._clock.now() > expires_at:
                del self._relayed[node]
                return None
            return token

    def _rejected(self, node: str, rejection: Rejection) -> OrderAnswer:
        reason = rejection.reason
        outcome = OrderOutcome.REJECTED
        if reason is RejectReason.STALE_BOOT:
            outcome = OrderOutcome.ALREADY_REBOOTED
        return OrderAnswer(
            node=node or "",
            answered_by=self._s.node,
            outcome=outcome,
            reason=str(reason),
            detail=rejection.detail,
        )

    def _relay_failed(self, node: str, detail: str) -> OrderAnswer:
        return OrderAnswer(
            node=node,
            answered_by=self._s.node,
            outcome=OrderOutcome.RELAY_FAILED,
            reason="TargetUnreachable",
            detail=detail,
            relayed_via=self._s.node,
        )
