"""The agent's HTTP(S) endpoint: a small threaded stdlib server in front of `PeerService`.

Rules applied to every `/peer/v1/*` request, before anything else happens:
- at most `max_concurrent_requests` in flight (503 beyond), a socket read timeout, and a
  body of at most `max_request_bytes` (413 beyond; GET requests carry no body);
- a valid `core.peer_auth` signature within the allowed clock skew, and for POST a
  signature not seen before (a replay): otherwise 401, and nothing is done.

Unauthenticated, for probes and scraping: `GET /healthz` ("ok") and, unless metrics are
served on their own port, `GET /metrics`.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.clock import Clock
from core.peer_auth import DATE_HEADER, SIGNATURE_HEADER, check_request
from core.peer_client import (
    HEALTH_PATH,
    NODES_PATH,
    ORDERS_PATH,
    REACH_PATH,
    error_body,
    order_http_status,
)
from node_agent.metrics import AgentMetrics
from node_agent.service import PeerService

log = logging.getLogger(__name__)
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_REPLAY_LIMIT = 10000


@dataclass(frozen=True)
class ServerSettings:
    secret: bytes
    max_clock_skew_s: float
    max_request_bytes: int
    max_concurrent_requests: int
    read_timeout_s: float
    serve_peer_api: bool = True


class ReplayGuard:
    """Remembers signatures of POST requests for the skew window; a second sight is a replay."""

    def __init__(self, window_s: float, clock: Clock) -> None:
        self._window_s = window_s
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_sight(self, signature: str) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - 2 * self._window_s
                or len(self._seen) > _REPLAY_LIMIT
            ):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


class PeerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        service: PeerService,
        settings: ServerSettings,
        clock: Clock,
        metrics: AgentMetrics,
        registry: CollectorRegistry | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        handler = type("BoundHandler", (PeerHandler,), {"timeout": settings.read_timeout_s})
        super().__init__(address, handler)
        self.service = service
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.registry = registry
        self.slots = threading.BoundedSemaphore(settings.max_concurrent_requests)
        self.replays = ReplayGuard(settings.max_clock_skew_s, clock)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="peer-server", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class PeerHandler(BaseHTTPRequestHandler):
    server: PeerServer
    protocol_version = "HTTP/1.1"
    server_version = "nodewarden-agent"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        if not self.server.slots.acquire(blocking=False):
            self._json(503, error_body(503, "Busy", "too many requests in flight"), "busy")
            self.close_connection = True
            return
        try:
            self._route(method)
        except (TimeoutError, ConnectionError) as exc:
            log.debug("peer request from %s aborted: %s", self.client_address[0], exc)
            self.close_connection = True
        finally:
            self.server.slots.release()

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        if method == "GET" and path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8", "healthz")
            return
        if method == "GET" and path == "/metrics" and self.server.registry is not None:
            body = generate_latest(self.server.registry)
            self._send(200, body, CONTENT_TYPE_LATEST, "metrics")
            return
        endpoint = _endpoint(method, path) if self.server.settings.serve_peer_api else None
        if endpoint is None:
            self._json(404, error_body(404, "NotFound", f"no such endpoint: {method} {path}"), "other")
            return
        request_body = self._read_body(method, endpoint)
        if request_body is None:
            return
        if not self._authenticated(method, request_body, endpoint):
            return
        self._dispatch(endpoint, path, request_body)

    def _read_body(self, method: str, endpoint: str) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header is not None else 0
        except ValueError:
            length = -1
        if length < 0 or self.headers.get("Transfer-Encoding"):
            self._json(400, error_body(400, "BadRequest", "a body needs a Content-Length"), endpoint)
            self.close_connection = True
            return None
        limit = self.server.settings.max_request_bytes if method == "POST" else 0
        if length > limit:
            self._json(413, error_body(413, "TooLarge", f"body over {limit} bytes"), endpoint)
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _authenticated(self, method: str, body: bytes, endpoint: str) -> bool:
        s = self.server.settings
        # The message's lookup is case-insensitive; check_request's mapping may not be.
        headers = {h: v for h in (DATE_HEADER, SIGNATURE_HEADER) if (v := self.headers.get(h))}
        failure = check_request(
            s.secret, method, self.path, body, headers, self.server.clock.now(), s.max_clock_skew_s
        )
        reason = str(failure) if failure is not None else None
        if reason is None and method == "POST":
            signature = self.headers.get(SIGNATURE_HEADER, "")
            if not self.server.replays.first_sight(signature):
                reason = "Replay"
        if reason is None:
            return True
        log.warning(
            "rejected unauthenticated %s %s from %s: %s", method, self.path, self.client_address[0], reason
        )
        self._json(401, error_body(401, "Unauthorized", reason), endpoint)
        return False

    def _dispatch(self, endpoint: str, path: str, body: bytes) -> None:
        service = self.server.service
        if endpoint == "health":
            self._json(200, service.health().to_json(), endpoint)
            return
        if endpoint in ("nodes", "reach"):
            prefix = NODES_PATH if endpoint == "nodes" else REACH_PATH
            target = unquote(path[len(prefix) :])
            if not NODE_NAME.match(target):
                self._json(400, error_body(400, "BadRequest", "not a node name"), endpoint)
                return
            observer = "observer=1" in (urlsplit(self.path).query or "").split("&")
            result = service.node_view(target, observer) if endpoint == "nodes" else service.reach(target)
            self._json(200, result.to_json(), endpoint)
            return
        try:
            data = json.loads(body)
            token = data["order"]
            hops = data.get("relayHops", 0)
            if not isinstance(token, str) or not isinstance(hops, int) or isinstance(hops, bool):
                raise TypeError("order must be a string, relayHops an integer")
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, error_body(400, "BadRequest", f"expected {{order}}: {exc}"), endpoint)
            return
        answer = service.deliver(token, hops)
        self._json(order_http_status(answer.outcome), answer.to_json(), endpoint)

    def _json(self, code: int, data: dict[str, Any], endpoint: str) -> None:
        self._send(code, json.dumps(data).encode(), "application/json", endpoint)

    def _send(self, code: int, body: bytes, content_type: str, endpoint: str) -> None:
        self.server.metrics.peer_requests_served.labels(endpoint=endpoint, code=str(code)).inc()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _endpoint(method: str, path: str) -> str | None:
    if method == "GET" and path == HEALTH_PATH:
        return "health"
    if method == "GET" and path.startswith(NODES_PATH):
        return "nodes"
    if method == "GET" and path.startswith(REACH_PATH):
        return "reach"
    if method == "POST" and path == ORDERS_PATH:
        return "orders"
    return None
