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

Asking never waits for the slowest peer: a batch is waited on for at most `collect_s`
(one loop tick), and a request still running then finishes in the background, its answer
recorded when it arrives. A peer with a request in flight is not asked again until it
ends. A peer that does not answer (cut off, dropped packets) would otherwise hold every
batch it lands in for the whole peer timeout, and the answers of the others would age
past the isolation timeout before the next round reached them: during an API outage
with one peer cut off, every agent lost its majority of fresh answers and fenced.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

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

    def hosts(self) -> set[str]:
        """The hosts of the peers' endpoints (addresses, as published): the peer endpoint
        keeps connections for them apart from strangers'."""
        return {host for p in self.peers() if (host := urlsplit(p.url).hostname)}

    def url_of(self, node: str) -> str | None:
        with self._lock:
            peer = self._static.get(node) or self._from_api.get(node)
        return peer.url if peer else None


def _by_name(entries: list[PeerEntry]) -> dict[str, Peer]:
    return {e.name: Peer(e.name, e.endpoint, e.control_plane) for e in entries}


class NodeViewClient(Protocol):
    def node_view(self, base_url: str, node: str, *, receiver: str, timeout_s: float | None = None) -> NodeView: ...


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
        on_order: Callable[[str], bool],
        collect_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._node = node
        self._client = client
        self._directory = directory
        self._clock = clock
        self._metrics = metrics
        self._executor = executor
        self._timeout_s = request_timeout_s
        self._collect_s = request_timeout_s if collect_s is None else collect_s
        self._on_order = on_order
        self._rng = rng or random.Random()
        self._opened_at: float | None = None
        self._batches: list[list[Peer]] = []
        self._cursor = 0
        self._lock = threading.Lock()
        # peer -> (api reachable, arrival, relayed an order this agent refused); guarded by _lock
        self._answers: dict[str, tuple[bool | None, float, bool]] = {}
        self._in_flight: set[str] = set()  # peers with a request running; guarded by _lock
        self._question = 0  # bumped at open and close: a late answer to an old question is dropped
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
        with self._lock:
            self._question += 1
            self._answers.clear()
        self.last_ask_at = None

    def close(self) -> None:
        self._opened_at = None
        with self._lock:
            self._question += 1
            self._answers.clear()
        self._batches = []
        self.last_ask_at = None

    def open_s(self) -> float | None:
        if self._opened_at is None:
            return None
        return self._clock.monotonic() - self._opened_at

    def answers(self) -> tuple[PeerAnswer, ...]:
        now = self._clock.monotonic()
        with self._lock:
            answers = list(self._answers.items())
        return tuple(PeerAnswer(peer, reachable, now - at, refused)
                     for peer, (reachable, at, refused) in answers)

    def in_flight(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

    def _reshuffle(self) -> None:
        peers = self._directory.peers()
        self._rng.shuffle(peers)
        self._batches = peer_batches(peers)
        self._cursor = 0

    # Asking ------------------------------------------------------------------------------

    def ask_next_batch(self, deadline_mono: float | None = None) -> int:
        """Ask the next batch of peers that have no request in flight, in parallel; returns
        how many of them answered within `collect_s`. Each request runs for at most the peer
        timeout, and not past `deadline_mono` (monotonic) when given; one still running
        after `collect_s` is left to finish, and its answer counts when it arrives."""
        batch = self._next_batch()
        if not batch:
            return 0
        now = self._clock.monotonic()
        self.last_ask_at = now
        budget = self._timeout_s
        if deadline_mono is not None:
            budget = max(0.05, min(budget, deadline_mono - now))
        with self._lock:
            question = self._question
            self._in_flight.update(p.name for p in batch)
        futures: list[Future[bool]] = []
        for peer in batch:
            future = self._executor.submit(self._ask, peer, budget, question)
            futures.append(future)
        done, _ = wait(futures, timeout=min(budget, self._collect_s))
        return sum(1 for f in done if not f.cancelled() and f.exception() is None and f.result())

    def _next_batch(self) -> list[Peer]:
        """The next batch, without the peers whose last request is still running; a batch
        left empty by that is skipped (one reshuffle at most per call)."""
        with self._lock:
            busy = set(self._in_flight)
        for _ in range(2):
            if not self._batches or self._cursor >= len(self._batches):
                self._reshuffle()
                if not self._batches:
                    return []
            while self._cursor < len(self._batches):
                batch = [p for p in self._batches[self._cursor] if p.name not in busy]
                self._cursor += 1
                if batch:
                    return batch
        return []

    def _ask(self, peer: Peer, budget: float, question: int) -> bool:
        """One request (on an executor thread): records the answer; True if there was one."""
        try:
            view = self._client.node_view(peer.url, self._node, receiver=peer.name, timeout_s=budget)
        except PeerError as exc:
            self._metrics.peer_requests.labels(endpoint="nodes", result=str(exc.kind)).inc()
            log.debug("peer %s: %s", peer.name, exc)
            return False
        except Exception as exc:  # a bug in a peer's answer must not stop the loop
            self._metrics.peer_requests.labels(endpoint="nodes", result="Error").inc()
            log.warning("peer %s: unexpected error %r", peer.name, exc)
            return False
        finally:
            with self._lock:
                self._in_flight.discard(peer.name)
        self._metrics.peer_requests.labels(endpoint="nodes", result="Answered").inc()
        # An order is an order, whichever question asked; one this agent refuses makes the
        # answer no word that all is well (isolation row 13).
        refused = self._on_order(view.order) if view.order else False
        with self._lock:
            current = question == self._question
            if current:
                self._answers[peer.name] = (view.api_reachable, self._clock.monotonic(), refused)
        return current
