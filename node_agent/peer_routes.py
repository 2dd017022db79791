"""What the peer endpoint answers to one request, apart from the transport (`server.py`).

Two steps, so that nothing is read from a client before it has shown it holds the secret:

1. `check_head(method, target, headers)`, from the request line and headers alone: the
   route exists (404), the body is announced by a Content-Length within the limit (400,
   413; a GET has none), and the headers are signed for this agent, now (401, with the
   `core.peer_auth` reason). None means: read the body and go on.
2. `answer(method, target, headers, body)`: the body is the one signed (401
   BodyMismatch), a POST is not a replay (401 Replay), the body is the protocol's JSON
   (400), then `PeerService` answers. Every answer from this step is signed for the
   request (`X-Nodewarden-Answer-Signature`), so the asker knows it comes from a peer.

Node names in paths must match in full (`node-1\\n` is refused). Every refusal is a
`Reply` with a JSON error body and an enumerated `Refusal`, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from core.clock import Clock
from core.jsonlimit import loads_bounded
from core.peer_auth import (
    ANSWER_HEADER,
    DATE_HEADER,
    REQUEST_HEADERS,
    SIGNATURE_HEADER,
    AuthFailure,
    check_body,
    check_headers,
    sign_answer,
)
from core.peer_wire import (
    HEALTH_PATH,
    NODES_PATH,
    ORDERS_PATH,
    REACH_PATH,
    error_body,
    order_http_status,
)
from node_agent.refusals import Refusal
from node_agent.replay import ReplayGuard
from node_agent.service import PeerService

NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_AUTH_REFUSAL = {
    AuthFailure.MISSING: Refusal.MISSING_CREDENTIALS,
    AuthFailure.BAD_DATE: Refusal.BAD_DATE,
    AuthFailure.SKEW: Refusal.CLOCK_SKEW,
    AuthFailure.BAD_SIGNATURE: Refusal.BAD_SIGNATURE,
    AuthFailure.WRONG_RECEIVER: Refusal.WRONG_RECEIVER,
    AuthFailure.BODY_MISMATCH: Refusal.BODY_MISMATCH,
}


@dataclass(frozen=True)
class RouteSettings:
    secret: bytes
    node: str
    max_clock_skew_s: float
    max_request_bytes: int


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    endpoint: str
    refusal: Refusal | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


def endpoint_of(method: str, path: str) -> str | None:
    if method == "GET" and path == HEALTH_PATH:
        return "health"
    if method == "GET" and path.startswith(NODES_PATH):
        return "nodes"
    if method == "GET" and path.startswith(REACH_PATH):
        return "reach"
    if method == "POST" and path == ORDERS_PATH:
        return "orders"
    return None


def refusal_reply(status: int, refusal: Refusal, description: str, endpoint: str = "other") -> Reply:
    name = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 408: "RequestTimeout",
            413: "TooLarge", 431: "HeadersTooLarge", 503: "Busy"}.get(status, "Error")
    body = json.dumps(error_body(status, name, description)).encode()
    return Reply(status, body, endpoint, refusal)


def content_length(headers: Mapping[str, str]) -> int | None:
    """The announced body length; None when it is not a plain non-negative decimal."""
    value = headers.get("content-length")
    if value is None:
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


class PeerRoutes:
    def __init__(self, service: PeerService, settings: RouteSettings, clock: Clock, replays: ReplayGuard) -> None:
        self._service = service
        self._s = settings
        self._clock = clock
        self._replays = replays

    def check_head(self, method: str, target: str, headers: Mapping[str, str]) -> Reply | None:
        path = urlsplit(target).path
        endpoint = endpoint_of(method, path)
        if endpoint is None:
            return refusal_reply(404, Refusal.NOT_FOUND, f"no such endpoint: {method} {path[:100]}")
        length = content_length(headers)
        if length is None or "transfer-encoding" in headers:
            return refusal_reply(400, Refusal.BAD_REQUEST, "a body needs a Content-Length", endpoint)
        limit = self._s.max_request_bytes if method == "POST" else 0
        if length > limit:
            return refusal_reply(413, Refusal.TOO_LARGE, f"body over {limit} bytes", endpoint)
        failure = check_headers(
            self._s.secret, method, target, _canonical(headers),
            now=self._clock.now(), receiver=self._s.node, max_skew_s=self._s.max_clock_skew_s,
        )
        if failure is not None:
            return refusal_reply(401, _AUTH_REFUSAL[failure], str(failure), endpoint)
        return None

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """After `check_head` passed and the announced body was read."""
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        endpoint = endpoint_of(method, urlsplit(target).path) or "other"
        if check_body(_canonical(headers), body) is not None:
            return refusal_reply(401, Refusal.BODY_MISMATCH, str(AuthFailure.BODY_MISMATCH), endpoint)
        if method == "POST":
            sent_at = float(headers.get(DATE_HEADER.lower(), "0"))
            if self._replays.signed_before_start(sent_at) or not self._replays.first_sight(signature, sent_at):
                return refusal_reply(401, Refusal.REPLAY, "Replay", endpoint)
        status, data = self._dispatch(endpoint, target, body)
        raw = json.dumps(data).encode()
        refusal = Refusal.BAD_REQUEST if status == 400 else None
        answer_signature = sign_answer(self._s.secret, signature, status, raw)
        return Reply(status, raw, endpoint, refusal, ((ANSWER_HEADER, answer_signature),))

    def _dispatch(self, endpoint: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        service = self._service
        parts = urlsplit(target)
        if endpoint == "health":
            return 200, service.health().to_json()
        if endpoint in ("nodes", "reach"):
            prefix = NODES_PATH if endpoint == "nodes" else REACH_PATH
            node = unquote(parts.path[len(prefix):])
            if not _is_node_name(node):
                return 400, error_body(400, "BadRequest", "not a node name")
            if endpoint == "reach":
                return 200, service.reach(node).to_json()
            observer = "observer=1" in (parts.query or "").split("&")
            return 200, service.node_view(node, observer).to_json()
        try:
            data = loads_bounded(body)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            token = data["order"]
            hops = data.get("relayHops", 0)
            if not isinstance(token, str) or not isinstance(hops, int) or isinstance(hops, bool):
                raise TypeError("order must be a string, relayHops an integer")
        except (ValueError, KeyError, TypeError) as exc:
            return 400, error_body(400, "BadRequest", f"expected {{order}}: {exc}")
        answer = service.deliver(token, hops)
        return order_http_status(answer.outcome), answer.to_json()


def _canonical(headers: Mapping[str, str]) -> dict[str, str]:
    return {h: v for h in REQUEST_HEADERS if (v := headers.get(h.lower())) is not None}


def _is_node_name(name: str) -> bool:
    return NODE_NAME.fullmatch(name) is not None
