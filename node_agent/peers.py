"""Who the peers are, and asking them "what do you know about me?".

`PeerDirectory` holds the other agents' endpoints: the `nodewarden.io/peer-endpoint`
annotations of the cluster's Nodes (refreshed while the API is reachable, kept when it
is not; see `publisher.py` for how often, and `peer_cache.py` for how a restarted agent
starts with the list its predecessor saved) plus any static `peers` from the settings.

`PeerPoll` asks them while the isolation question is open: peers are shuffled when the
question opens and asked in batches (first 3, then max(3, (N-3)/10)), each batch in
parallel, each request with the peer timeout and never past the isolation deadline. The
latest answer per peer is kept with its arrival time; an order a peer relays is handed
to the order desk at once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock
from core.peer_client import NodeView, PeerError
from node_agent.isolation import PeerAnswer, peer_batches
from node_agent.kube import PeerEntry
from node_agent.metrics import AgentMetrics
from node_agent.peer_cache import PeerCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    name: str
    url: str
    control_plane: bool = False


class PeerDirectory:
    def __init__(self, self_name: str, static_entries: list[str], cache: PeerCache | None = None) -> None:
        self._self = self_name
        self._static = {}
        for entry in static_entries:
            name, _, url = entry.partition("=")
            self._static[name] = Peer(name, url)
        self._cache = cache
        self._from_api = _by_name(cache.load() if cache is not None else [])
        self._lock = threading.Lock()

    def update(self, entries: list[PeerEntry]) -> bool:
        """Replace the peers learned from the API (and save them in the cache); True if
        that changed them."""
        fresh = _by_name(entries)
        with self._lock:
            changed = fresh != self._from_api
            self._from_api = fresh
        if self._cache is not None:
            self._cache.save(entries)
        return changed

    def peers(self) -> list[Peer]:
        with self._lock:
            merged = {**self._from_api, **self._static}
        return sorted((p for n, p in merged.items() if n != self._self), key=lambda p: p.name)

    def url_of(self, node: str) -> str | None:
        with self._lock:
            peer = self._static.get(node) or self._from_api.get(node)
        return peer.url if peer else None


def _by_name(entries: list[PeerEntry]) -> dict[str, Peer]:
    return {e.name: Peer(e.name, e.endpoint, e.control_plane) for e in entries}


class NodeViewClient(Protocol):
    def node_view(self, base_url: str, node: str, *, timeout_s: float | None = None) -> NodeView: ...


class PeerPoll:
    def __init__(
        self,
        *,
        node: str,
        client: NodeViewClient,
        directory: PeerDirectory,
        clock: Clock,
        metrics: AgentMetrics,
        executor: Executor,
        request_timeout_s: float,
        on_order: Callable[[str], None],
        rng: random.Random | None = None,
    ) -> None:
        self._node = node
        self._client = client
        self._directory = directory
        self._clock = clock
        self._metrics = metrics
        self._executor = executor
        self._timeout_s = request_timeout_s
        self._on_order = on_order
        self._rng = rng or random.Random()
        self._opened_at: float | None = None
        self._batches: list[list[Peer]] = []
        self._cursor = 0
        self._answers: dict[str, tuple[bool | None, float]] = {}
        self.last_ask_at: float | None = None

    # The question ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def open(self) -> None:
        if self._opened_at is not None:
            return
        self._opened_at = self._clock.monotonic()
        self._reshuffle()
        self._answers.clear()
        self.last_ask_at = None

    def close(self) -> None:
        self._opened_at = None
        self._answers.clear()
        self._batches = []
        self.last_ask_at = None

    def open_s(self) -> float | None:
        if self._opened_at is None:
            return None
        return self._clock.monotonic() - self._opened_at

    def answers(self) -> tuple[PeerAnswer, ...]:
        now = self._clock.monotonic()
        return tuple(
            PeerAnswer(peer, reachable, now - at) for peer, (reachable, at) in self._answers.items()
        )

    def _reshuffle(self) -> None:
        peers = self._directory.peers()
        self._rng.shuffle(peers)
        self._batches = peer_batches(peers)
        self._cursor = 0

    # Asking ------------------------------------------------------------------------------

    def ask_next_batch(self, deadline_mono: float | None = None) -> int:
        """Ask the next batch in parallel; returns how many answered. Waits at most the
        peer timeout, and not past `deadline_mono` (monotonic) when given."""
        if not self._batches or self._cursor >= len(self._batches):
            self._reshuffle()
        if not self._batches:
            return 0
        batch = self._batches[self._cursor]
        self._cursor += 1
        now = self._clock.monotonic()
        self.last_ask_at = now
        budget = self._timeout_s
        if deadline_mono is not None:
            budget = max(0.05, min(budget, deadline_mono - now))
        futures: dict[Future[NodeView], Peer] = {
            self._executor.submit(self._client.node_view, p.url, self._node, timeout_s=budget): p
            for p in batch
        }
        done, not_done = wait(futures, timeout=budget)
        answered = 0
        for future in not_done:
            future.cancel()
            self._metrics.peer_requests.labels(endpoint="nodes", result="Timeout").inc()
        for future in done:
            peer = futures[future]
            try:
                view = future.result()
            except PeerError as exc:
                self._metrics.peer_requests.labels(endpoint="nodes", result=str(exc.kind)).inc()
                log.debug("peer %s: %s", peer.name, exc)
                continue
            except Exception as exc:  # a bug in a peer's answer must not stop the loop
                self._metrics.peer_requests.labels(endpoint="nodes", result="Error").inc()
                log.warning("peer %s: unexpected error %r", peer.name, exc)
                continue
            self._metrics.peer_requests.labels(endpoint="nodes", result="Answered").inc()
            answered += 1
            self._answers[peer.name] = (view.api_reachable, self._clock.monotonic())
            if view.order:
                self._on_order(view.order)
        return answered
