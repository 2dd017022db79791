"""The HTTP(S) front of the emulated API server: connections, authentication, the
network-fault gate, and dispatch to the Kubernetes API routes (`api_routes`) and to
extra routes the simulator mounts (`/sim/v1/...`, `/metrics`).

One thread per connection (HTTP/1.1 keep-alive), TLS handshakes done in that thread, a
response written in a single send, watches streamed with chunked encoding.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import yaml

from . import errors
from .auth import AuditLog, Identities, Identity

log = logging.getLogger("sim.apiserver")
MAX_BODY = 3 * 1024 * 1024
MAX_DEPTH = 100
ANONYMOUS_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/version/"}


class Gate(Protocol):
    """Network faults: what happens to a request from `identity` (None = unauthenticated).
    Returns None to serve it, "drop" to never answer, "refuse" to reset the connection,
    "unavailable" to answer 503, "delay:<seconds>" to serve it that late, or
    "throttle:<seconds>" to answer 429 TooManyRequests with that Retry-After."""

    def api_verdict(self, identity: Identity | None) -> str | None: ...

    def hold_seconds(self) -> float: ...


class OpenGate:
    def api_verdict(self, identity: Identity | None) -> str | None:
        return None

    def hold_seconds(self) -> float:
        return 0.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Any
    body: bytes
    identity: Identity | None
    handler: Handler

    def json(self) -> Any:
        if not self.body:
            return None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf" or ctype == "application/cbor":
            raise errors.ApiError(
                415, "UnsupportedMediaType",
                f'the body of the request was in an unknown format - accepted media types include: '
                f'application/json, application/yaml; got "{ctype}" (the simulator speaks JSON only)')
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml"):
                value = yaml.safe_load(self.body)
            else:
                value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from None
        if _depth(value) > MAX_DEPTH:
            raise errors.bad_request(f"request body nests deeper than {MAX_DEPTH} levels")
        return value


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


@dataclass
class Response:
    code: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


ExtraRoute = Callable[[Request], Response | None]


def json_response(code: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """Compact JSON ending in a newline, as the real server's encoder (json.Encoder.Encode) writes it."""
    return Response(code, json.dumps(obj, separators=(",", ":")).encode() + b"\n", headers=headers or [])


def error_response(err: errors.ApiError) -> Response:
    """A Status; a Retry-After header when it suggests a delay (responsewriters.ErrorNegotiated)."""
    retry_after = (err.details or {}).get("retryAfterSeconds")
    headers = [("Retry-After", str(retry_after))] if retry_after else []
    return json_response(err.code, err.status(), headers)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimHTTPServer
    timeout = 300

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                raise ConnectionAbortedError("TLS handshake failed") from None
            self.request.settimeout(self.timeout)
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # All verbs go through one dispatcher.
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        app = self.server.app
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        identity = None
        # The scheme is case-insensitive, as kube-apiserver's bearer token authenticator
        # reads it (the client's in-cluster loader sends "bearer <token>").
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            identity = app.identities.lookup(token.strip())
        verdict = app.gate.api_verdict(identity)
        if verdict is not None and not path.startswith("/sim/") and path != "/metrics":
            if verdict.startswith("delay:"):
                time.sleep(float(verdict[len("delay:"):]))
            else:
                self._apply_fault(verdict)
                return
        length = self.headers.get("Content-Length")
        body = b""
        if length:
            try:
                size = int(length)
            except ValueError:
                self.close_connection = True
                self._write(error_response(errors.bad_request("invalid Content-Length")))
                return
            if size > MAX_BODY:
                self.close_connection = True
                self._write(error_response(errors.too_large()))
                return
            body = self.rfile.read(size)
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunked = self._read_chunked()
            if chunked is None:
                self.close_connection = True
                self._write(error_response(errors.too_large()))
                return
            body = chunked
        req = Request(self.command, path, query, self.headers, body, identity, self)
        try:
            resp = app.route(req)
        except errors.ApiError as err:
            resp = error_response(err)
        except Exception:  # a bug must not take the server down, nor corrupt the store
            log.exception("internal error serving %s %s", self.command, self.path)
            resp = error_response(errors.ApiError(500, "InternalError",
                                                  "an error on the server has prevented the request from succeeding"))
        if resp is not None:
            self._write(resp)

    def _read_chunked(self) -> bytes | None:
        out = bytearray()
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()
            if len(out) > MAX_BODY:
                return None

    def _apply_fault(self, verdict: str) -> None:
        app = self.server.app
        if verdict == "unavailable":
            # Answered before the body is read: close, or the unread body would be parsed
            # as the next request on this keep-alive connection.
            self.close_connection = True
            self._write(error_response(errors.service_unavailable()))
            return
        if verdict.startswith("throttle:"):
            retry_after = int(verdict[len("throttle:"):])
            self.close_connection = True  # the body was not read
            self._write(json_response(429, errors.too_many_requests(retry_after).status(),
                                      headers=[("Retry-After", str(retry_after))]))
            return
        if verdict == "drop":
            deadline = time.monotonic() + app.gate.hold_seconds()
            while time.monotonic() < deadline and not app.stopping.is_set():
                if self._peer_closed(0.5):
                    break
        # refuse (or the end of a drop): reset the connection without an answer
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _peer_closed(self, wait: float) -> bool:
        try:
            poller = select.poll()  # not select(): it fails on descriptors above 1023
            poller.register(self.connection.fileno(), select.POLLIN | select.POLLHUP)
            if not poller.poll(int(wait * 1000)):
                return False
            if isinstance(self.connection, ssl.SSLSocket):
                # No peeking through TLS. A client waiting on a response sends nothing, so
                # readable means it closed (or sent close_notify).
                return not self.connection.pending()
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError, ssl.SSLError):
            return True

    def _write(self, resp: Response) -> None:
        head = [f"HTTP/1.1 {resp.code} {self.responses.get(resp.code, ('',))[0]}",
                f"Content-Type: {resp.content_type}",
                f"Content-Length: {len(resp.body)}",
                "Cache-Control: no-cache, private", f"Date: {self.date_time_string()}"]
        head += [f"{k}: {v}" for k, v in resp.headers]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += resp.body
        self.wfile.write(data)

    # -- streaming (watch) ------------------------------------------------------------

    def start_stream(self, content_type: str = "application/json") -> None:
        head = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}", "Transfer-Encoding: chunked",
                "Cache-Control: no-cache, private"]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def client_gone(self, wait: float) -> bool:
        return self._peer_closed(wait)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


class App:
    """Everything a request handler needs: the router, identities, the audit log, faults."""

    def __init__(self, identities: Identities, audit: AuditLog,
                 route: Callable[[Request], Response | None], gate: Gate | None = None) -> None:
        self.identities = identities
        self.audit = audit
        self.route = route
        self.gate: Gate = gate or OpenGate()
        self.stopping = threading.Event()


class HTTPServerThread:
    def __init__(self, app: App, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.httpd = SimHTTPServer((host, port), app, ssl_context)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if ssl_context else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sim-apiserver", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.app.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
