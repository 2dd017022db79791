"""The agent's HTTP(S) endpoint: one asyncio event loop in front of `PeerRoutes`.

Why an event loop and not a thread per connection: a connection that is still sending
its request costs a socket and a small buffer here, never a thread or a request slot.
With a thread per connection (the stdlib server this replaces), 32 clients sending one
byte every 2 s held every slot, health and probes answered 503, and during an API outage
every agent fenced for want of peers' answers; 500 such clients took 369 threads. Bounded
threads with per-read timeouts still let each client hold a thread for the whole deadline.

Rules, for every connection and request:
- one deadline (`read_timeout_s`) for the whole request, request line, headers and
  body together, and again for the next request on a kept-alive connection; a client
  that misses it is closed (`TooSlow`);
- at most `max_connections_per_client` connections from one address, and at most
  `max_connections` in all from addresses that are not known peers. A new connection
  over a bound first parks the oldest connection of the same class (that client; all
  strangers) that has not yet shown a valid signature; it is refused only when every
  such connection is an authenticated request in progress. A parked connection is no
  longer read and is closed at its own deadline, not at once: closing it at once would
  have its client connect again at once, and each new connection park another, a churn
  that keeps the loop accepting instead of answering. At most `max_parked_connections`
  are parked; past that the oldest parked one is closed. Known peers are the hosts of
  the peer directory's endpoints and loopback (the kubelet's probes of a host-network
  pod, and the simulator's peer network): no number of strangers, from however many
  addresses, takes a connection from them, so an agent's answers to its peers never
  wait on an attack. A stranger holding a valid signature (the remediator) competes
  with the other strangers, oldest evicted first: its request, sent in one packet, is
  read within milliseconds; orders also reach the node through its peers;
- one request per connection, answered with `Connection: close`: no idle connection
  is ever kept, so none is evicted or timed out just as its client reuses it (the
  race a kept-alive connection has; a peer's question costs a connection setup);
- `GET /healthz` (liveness) is answered on the loop itself and `GET /metrics` on a
  thread of its own (at most 2 scrapes at once), never in the request pool, so both
  answer while the pool is full; neither needs credentials;
- everything else is authenticated from the headers before any body is read
  (`PeerRoutes.check_head`); only then is the body read and the request handed to a
  pool of `max_concurrent_requests` threads (503 Busy beyond, signed);
- a refusal is a JSON answer with a 4xx status and an enumerated reason, counted and
  logged at a bounded rate (`refusals.py`); nothing a client sends drops a connection
  without an answer, except a client too slow to finish its request.

The agent's own isolation decision runs on its own thread and never waits on this
server; see docs/node-agent.md ("The peer endpoint under attack") for why a peer's
failure to answer still counts as no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.clock import Clock
from node_agent.metrics import AgentMetrics
from node_agent.peer_routes import PeerRoutes, Reply, RouteSettings, refusal_reply
from node_agent.refusals import Refusal, RefusalLog
from node_agent.replay import ReplayGuard
from node_agent.service import PeerService

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 8192
_METRICS_SCRAPES = 2
_WRITE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServerSettings:
    secret: bytes
    max_clock_skew_s: float
    max_request_bytes: int
    max_concurrent_requests: int
    read_timeout_s: float
    serve_peer_api: bool = True
    node: str = ""
    max_connections: int = 256
    max_connections_per_client: int = 32
    max_parked_connections: int = 1024
    replay_file: str | None = None


class _Conn:
    __slots__ = ("authenticated", "cid", "client", "known", "parked", "writer")

    def __init__(self, cid: int, client: str, known: bool, writer: asyncio.StreamWriter) -> None:
        self.cid = cid
        self.client = client
        self.known = known  # from a known peer's address: not counted with the strangers
        self.writer = writer
        self.authenticated = False  # an authenticated request is in progress: never evicted
        self.parked = False  # evicted: no longer read, closed at its deadline


class PeerServer:
    def __init__(
        self,
        address: tuple[str, int],
        service: PeerService,
        settings: ServerSettings,
        clock: Clock,
        metrics: AgentMetrics,
        registry: CollectorRegistry | None = None,
        tls: ssl.SSLContext | None = None,
        known_clients: Callable[[], set[str]] | None = None,
    ) -> None:
        """`known_clients`: the addresses of known peers (read about once a second)."""
        self.service = service
        self._known_source = known_clients or set
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.registry = registry
        self._tls = tls
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # The kernel's accept queue is shared by every client: when a burst of strangers'
        # connections fills it, a peer's SYN is dropped and retried a second later, past
        # the peer timeout. The loop accepts as fast as they come; the queue holds the rest.
        self._sock = socket.create_server(address, family=family, backlog=socket.SOMAXCONN)
        self._sock.setblocking(False)
        self.replays = ReplayGuard(settings.max_clock_skew_s, clock, settings.replay_file)
        self.refusals = RefusalLog(metrics, clock)
        self.routes = PeerRoutes(
            service,
            RouteSettings(settings.secret, settings.node or service.node, settings.max_clock_skew_s,
                          settings.max_request_bytes),
            clock,
            self.replays,
        )
        self._pool = ThreadPoolExecutor(settings.max_concurrent_requests, thread_name_prefix="peer-request")
        self._metrics_pool = ThreadPoolExecutor(1, thread_name_prefix="peer-metrics")
        self._in_pool = 0  # requests handed to the pool and not yet answered (loop thread only)
        self._scrapes = 0
        self._conns: OrderedDict[int, _Conn] = OrderedDict()  # oldest first (loop thread only)
        self._per_client: dict[str, int] = {}
        self._strangers = 0
        self._parked: OrderedDict[int, _Conn] = OrderedDict()  # oldest first (loop thread only)
        self._known: frozenset[str] = _LOOPBACK
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None  # set to stop (loop thread)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def connections(self) -> int:
        return len(self._conns)

    def strangers(self) -> int:
        """Open connections from addresses that are not known peers' (parked ones aside)."""
        return self._strangers

    def parked(self) -> int:
        return len(self._parked)

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="peer-server", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        return self._thread

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._sock, ssl=self._tls, limit=MAX_HEAD_BYTES, backlog=socket.SOMAXCONN,
            ssl_handshake_timeout=self.settings.read_timeout_s if self._tls else None,
        )
        flusher = asyncio.get_running_loop().create_task(self._flush_refusals())
        self._ready.set()
        async with server:
            await self._stopped.wait()
            flusher.cancel()
            for conn in list(self._conns.values()):
                conn.writer.transport.abort()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._metrics_pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.server_close()

    shutdown = stop

    def server_close(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._sock.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._metrics_pool.shutdown(wait=False, cancel_futures=True)

    async def _flush_refusals(self) -> None:
        while True:
            self._refresh_known()
            await asyncio.sleep(1.0)
            self.refusals.flush()

    def _refresh_known(self) -> None:
        try:
            self._known = _LOOPBACK | frozenset(self._known_source())
        except Exception:  # the directory is read under its own lock; never stop serving
            log.exception("could not read the known peers' addresses")

    # Connections -------------------------------------------------------------------------

    def _admit(self, client: str, writer: asyncio.StreamWriter) -> _Conn | None:
        """Register a connection, closing the oldest unauthenticated ones of its class over
        the bounds; None when there is no room even so."""
        s = self.settings
        known = client in self._known
        if self._per_client.get(client, 0) >= s.max_connections_per_client:
            self._evict(lambda c: c.client == client)
        if not known and self._strangers >= s.max_connections:
            self._evict(lambda c: not c.known)
        if self._per_client.get(client, 0) >= s.max_connections_per_client or (
            not known and self._strangers >= s.max_connections
        ):
            return None
        conn = _Conn(next(self._ids), client, known, writer)
        self._conns[conn.cid] = conn
        self._per_client[client] = self._per_client.get(client, 0) + 1
        self._strangers += 0 if known else 1
        self.metrics.peer_connections.set(len(self._conns))
        return conn

    def _evict(self, which: Callable[[_Conn], bool]) -> None:
        """Park the oldest unauthenticated connection that `which` selects, if any."""
        for conn in self._conns.values():
            if not conn.authenticated and which(conn):
                self._forget(conn)
                self._park(conn)
                self.refusals.refused(Refusal.CONNECTION_LIMIT, conn.client, "a connection")
                return

    def _park(self, conn: _Conn) -> None:
        if len(self._parked) >= self.settings.max_parked_connections:
            _, oldest = self._parked.popitem(last=False)
            oldest.writer.transport.abort()
        conn.parked = True
        transport = conn.writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()
        self._parked[conn.cid] = conn

    def _forget(self, conn: _Conn) -> None:
        self._parked.pop(conn.cid, None)
        if self._conns.pop(conn.cid, None) is None:
            return
        self._strangers -= 0 if conn.known else 1
        left = self._per_client.get(conn.client, 1) - 1
        if left:
            self._per_client[conn.client] = left
        else:
            self._per_client.pop(conn.client, None)
        self.metrics.peer_connections.set(len(self._conns))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        conn = self._admit(client, writer)
        if conn is None:
            self.refusals.refused(Refusal.CONNECTION_LIMIT, client, "a connection")
            writer.transport.abort()
            return
        try:
            await self._one_request(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError, asyncio.CancelledError):
            pass  # closed by the client, evicted, or the server stopping
        except Exception:  # a bug must cost this connection only, never the server
            log.exception("peer connection from %s failed", client)
        finally:
            self._forget(conn)
            writer.close()

    async def _one_request(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one request within the request deadline, the wait for its first byte included."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.read_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            if not conn.parked:
                await self._refuse(writer, conn, refusal_reply(408, Refusal.TOO_SLOW, "request not complete in time"))
            return
        except asyncio.LimitOverrunError:
            await self._refuse(writer, conn, refusal_reply(431, Refusal.TOO_LARGE, "headers too large"))
            return
        except asyncio.IncompleteReadError:
            return
        parsed = _parse_head(head)
        if parsed is None:
            await self._refuse(writer, conn, refusal_reply(400, Refusal.BAD_REQUEST, "not an HTTP/1.x request"))
            return
        method, target, _version, headers = parsed
        path = urlsplit(target).path
        if method == "GET" and path == "/healthz":
            await self._write(writer, Reply(200, b"ok\n", "healthz", content_type="text/plain; charset=utf-8"))
            return
        if method == "GET" and path == "/metrics" and self.registry is not None:
            await self._write(writer, await self._scrape())
            return
        if not self.settings.serve_peer_api:
            await self._refuse(writer, conn, refusal_reply(404, Refusal.NOT_FOUND, f"no such endpoint: {path[:100]}"))
            return
        refused = self.routes.check_head(method, target, headers)
        if refused is not None:
            await self._refuse(writer, conn, refused, f"{method} {path[:100]}")
            return
        conn.authenticated = True
        length = int(headers.get("content-length", "0"))
        try:
            async with asyncio.timeout_at(deadline):
                body = await reader.readexactly(length) if length else b""
        except TimeoutError:
            await self._refuse(writer, conn, refusal_reply(408, Refusal.TOO_SLOW, "body not complete in time"))
            return
        if self._in_pool >= self.settings.max_concurrent_requests:
            busy = refusal_reply(503, Refusal.BUSY, "too many requests in flight")
            await self._refuse(writer, conn, busy, f"{method} {path[:100]}")
            return
        self._in_pool += 1
        try:
            future: Future[Reply] = self._pool.submit(self.routes.answer, method, target, headers, body)
            reply = await asyncio.wrap_future(future)
        except Exception:
            log.exception("peer request %s %s failed", method, path[:100])
            reply = Reply(500, b'{"code": 500, "name": "InternalError", "description": "see the agent log"}',
                          "other")
        finally:
            self._in_pool -= 1
        if reply.refusal is not None:
            self.refusals.refused(reply.refusal, conn.client, f"{method} {path[:100]}")
        await self._write(writer, reply)

    async def _scrape(self) -> Reply:
        if self._scrapes >= _METRICS_SCRAPES:
            return refusal_reply(503, Refusal.BUSY, "too many scrapes at once", "metrics")
        self._scrapes += 1
        try:
            registry = self.registry
            assert registry is not None
            body = await asyncio.get_running_loop().run_in_executor(
                self._metrics_pool, generate_latest, registry
            )
        finally:
            self._scrapes -= 1
        return Reply(200, body, "metrics", content_type=CONTENT_TYPE_LATEST)

    async def _refuse(self, writer: asyncio.StreamWriter, conn: _Conn, reply: Reply, what: str = "a request") -> None:
        if reply.refusal is not None:
            self.refusals.refused(reply.refusal, conn.client, what)
        await self._write(writer, reply)

    async def _write(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        self.metrics.peer_requests_served.labels(endpoint=reply.endpoint, code=str(reply.status)).inc()
        lines = [
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}",
            "Server: nodewarden-agent",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}",
            *(f"{name}: {value}" for name, value in reply.headers),
            "Connection: close",
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_WRITE_TIMEOUT_S):
                await writer.drain()


_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
            413: "Content Too Large", 422: "Unprocessable Content", 431: "Request Header Fields Too Large",
            502: "Bad Gateway", 503: "Service Unavailable"}


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]] | None:
    """(method, target, version, headers with lower-case names), or None if malformed.
    A header given twice is malformed: which copy was signed would be ambiguous."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    request = lines[0].split(" ")
    if len(request) != 3 or request[2] not in ("HTTP/1.0", "HTTP/1.1") or not request[1].startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or name != name.strip() or " " in name or name in headers:
            return None
        headers[name] = value.strip()
    return request[0], request[1], request[2], headers

