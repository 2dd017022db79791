"""The peer protocol's client, used by the agents and by the remediator.

The wire format (paths, messages) lives in `core.peer_wire`, re-exported here for
callers. Every request is signed for one named receiver (`core.peer_auth`), and every
answer the client uses (a 200, or a status the call accepts) must carry a valid answer
signature bound to that request: an answer without one is `BAD_RESPONSE`, so a host
with network access but no secret cannot answer for an agent.

`PeerClient` uses `requests`, so it honours HTTP(S)_PROXY and NO_PROXY from the
environment. Each call has a total deadline and a bounded answer size; every failure is
a `PeerError` with an enumerated `kind`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from core.clock import Clock, RealClock
from core.jsonlimit import loads_bounded
from core.peer_auth import ANSWER_HEADER, SIGNATURE_HEADER, check_answer, sign_request
from core.peer_wire import (
    API_PREFIX,
    HEALTH_PATH,
    MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
    NODES_PATH,
    ORDERS_PATH,
    REACH_PATH,
    Acknowledgement,
    Health,
    NodeView,
    OrderAnswer,
    OrderOutcome,
    Reach,
    WireError,
    error_body,
    order_http_status,
    order_request_body,
)

__all__ = [
    "API_PREFIX", "HEALTH_PATH", "MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES", "NODES_PATH", "ORDERS_PATH",
    "REACH_PATH", "Acknowledgement", "Health", "NodeView", "OrderAnswer", "OrderOutcome", "PeerClient",
    "PeerError", "PeerErrorKind", "Reach", "WireError", "error_body", "order_http_status", "order_request_body",
]
T = TypeVar("T")


class PeerErrorKind(enum.StrEnum):
    TIMEOUT = "Timeout"
    UNREACHABLE = "Unreachable"  # connection refused/reset, DNS, proxy refused, TLS
    UNAUTHORIZED = "Unauthorized"  # the peer did not accept our signature
    HTTP = "HttpError"  # any other non-success status
    BAD_RESPONSE = "BadResponse"  # not JSON, too large, or not the protocol's shape
    UNSIGNED_ANSWER = "UnsignedAnswer"  # no valid answer signature: not from a holder of the secret


class PeerError(Exception):
    def __init__(self, kind: PeerErrorKind, message: str, status: int = 0) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status


class PeerClient:
    """Signed requests to one peer endpoint at a time (`base_url` per call).

    Thread-safe enough for parallel batches: one `requests.Session` for connection
    reuse, no other shared mutable state.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        timeout_s: float = 5.0,
        clock: Clock | None = None,
        verify: bool | str = True,
        client_cert: tuple[str, str] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        session: requests.Session | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the peer secret must not be empty")
        self._secret = secret
        self.timeout_s = timeout_s
        self._clock = clock or RealClock()
        self._verify = verify
        self._cert = client_cert
        self._max_bytes = max_response_bytes
        self._session = session or requests.Session()

    def close(self) -> None:
        self._session.close()

    def health(self, base_url: str, *, receiver: str, timeout_s: float | None = None) -> Health:
        """`receiver`: the node name of the agent at `base_url` (the request is signed for it)."""
        return _parse(Health.from_json, self._request("GET", base_url, HEALTH_PATH, b"", receiver, timeout_s))

    def node_view(self, base_url: str, node: str, *, receiver: str, timeout_s: float | None = None,
                  observer: bool = False) -> NodeView:
        """What the agent of `receiver` at `base_url` knows about `node`. `observer=True`
        (the remediator asking) is never counted as an answer that keeps `node` up."""
        path = NODES_PATH + quote(node, safe="") + ("?observer=1" if observer else "")
        return _parse(NodeView.from_json, self._request("GET", base_url, path, b"", receiver, timeout_s))

    def reach(self, base_url: str, node: str, *, receiver: str, timeout_s: float | None = None) -> Reach:
        path = REACH_PATH + quote(node, safe="")
        return _parse(Reach.from_json, self._request("GET", base_url, path, b"", receiver, timeout_s))

    def deliver_order(
        self, base_url: str, token: str, *, receiver: str, timeout_s: float | None = None, relay_hops: int = 0
    ) -> OrderAnswer:
        body = order_request_body(token, relay_hops)
        data = self._request(
            "POST", base_url, ORDERS_PATH, body, receiver, timeout_s, accept_status=(422, 502, 503)
        )
        return _parse(OrderAnswer.from_json, data)

    def _request(
        self,
        method: str,
        base_url: str,
        path: str,
        body: bytes,
        receiver: str,
        timeout_s: float | None,
        accept_status: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        url = base_url.rstrip("/") + path
        parts = urlsplit(url)
        signed_path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = sign_request(self._secret, method, signed_path, body, self._clock.now(), receiver)
        headers["Accept"] = "application/json"
        if body:
            headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + timeout
        try:
            resp = self._session.request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=(min(timeout, 3.0), timeout),
                verify=self._verify,
                cert=self._cert,
                stream=True,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise PeerError(PeerErrorKind.TIMEOUT, f"{method} {url}: {exc}") from exc
        except requests.RequestException as exc:
            raise PeerError(PeerErrorKind.UNREACHABLE, f"{method} {url}: {exc}") from exc
        with resp:
            raw = _read_bounded(resp, self._max_bytes, deadline, f"{method} {url}")
            if resp.status_code == 401:
                raise PeerError(PeerErrorKind.UNAUTHORIZED, f"{method} {url}: 401", 401)
            if resp.status_code != 200 and resp.status_code not in accept_status:
                raise PeerError(
                    PeerErrorKind.HTTP,
                    f"{method} {url}: HTTP {resp.status_code} {raw[:200]!r}",
                    resp.status_code,
                )
            answer_signature = resp.headers.get(ANSWER_HEADER)
        if not check_answer(self._secret, headers[SIGNATURE_HEADER], resp.status_code, raw, answer_signature):
            raise PeerError(PeerErrorKind.UNSIGNED_ANSWER, f"{method} {url}: answer not signed by a peer")
        try:
            data = loads_bounded(raw)
        except ValueError as exc:
            raise PeerError(PeerErrorKind.BAD_RESPONSE, f"{method} {url}: not JSON") from exc
        if not isinstance(data, dict):
            raise PeerError(PeerErrorKind.BAD_RESPONSE, f"{method} {url}: not a JSON object")
        return data


def _read_bounded(resp: requests.Response, limit: int, deadline: float, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in resp.iter_content(8192):
            size += len(chunk)
            if size > limit:
                raise PeerError(PeerErrorKind.BAD_RESPONSE, f"{what}: answer over {limit} bytes")
            if time.monotonic() > deadline:
                raise PeerError(PeerErrorKind.TIMEOUT, f"{what}: answer too slow")
            chunks.append(chunk)
    except requests.RequestException as exc:
        kind = PeerErrorKind.TIMEOUT if "timed out" in str(exc).lower() else PeerErrorKind.UNREACHABLE
        raise PeerError(kind, f"{what}: {exc}") from exc
    return b"".join(chunks)


def _parse(parser: Callable[[Mapping[str, Any]], T], data: dict[str, Any]) -> T:
    try:
        return parser(data)
    except WireError as exc:
        raise PeerError(PeerErrorKind.BAD_RESPONSE, str(exc)) from exc
