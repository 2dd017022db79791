"""The peer protocol: its wire format and the client both sides use.

Node agents answer each other, and the remediator, on a small HTTP(S) API. Every
request is signed with the per-cluster peer secret (`core.peer_auth`); an agent answers
an unsigned or badly signed request with 401 and never acts on it. Times on the wire are
unix seconds (floats), exactly as measured by the sender's wall clock.

    GET  /peer/v1/health            -> Health     is this agent alive, what is its state
    GET  /peer/v1/nodes/<node>      -> NodeView   what do you know about <node>: can you
                                                  reach the API, is there an order for it,
                                                  when did you last tell it "healthy"
         [?observer=1]                            (the remediator asking: not recorded)
    GET  /peer/v1/reach/<node>      -> Reach      can you reach <node>'s agent right now
    POST /peer/v1/orders            -> OrderAnswer  deliver a signed order; an agent that
         {"order": "<nwf1...>",                     is not the order's node relays it
          "requestId": "<random hex>",              to that node's agent, once
          "relayHops": 0}

Errors are JSON too: `{"code": 401, "name": "Unauthorized", "description": "..."}`.
`OrderAnswer` comes back with the HTTP status of `order_http_status(outcome)`.

`PeerClient` uses `requests`, so it honours HTTP(S)_PROXY and NO_PROXY from the
environment. Each call has a total deadline and a bounded answer size; every failure is
a `PeerError` with an enumerated `kind`.
"""

from __future__ import annotations

import enum
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from core.clock import Clock, RealClock
from core.peer_auth import sign_request

API_PREFIX = "/peer/v1"
HEALTH_PATH = API_PREFIX + "/health"
NODES_PATH = API_PREFIX + "/nodes/"
REACH_PATH = API_PREFIX + "/reach/"
ORDERS_PATH = API_PREFIX + "/orders"
MAX_REQUEST_BYTES = 16 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
T = TypeVar("T")


class OrderOutcome(enum.StrEnum):
    FENCING = "Fencing"  # fence accepted; the acknowledgement says when feeding stopped
    ALREADY_REBOOTED = "AlreadyRebooted"  # the order is for an earlier boot: done already
    REJECTED = "Rejected"  # invalid order; `reason` is a fence_order.RejectReason or ours
    CANNOT_FENCE = "CannotFence"  # valid, but this node has no way to fence itself
    KUBELET_RESTART_RUNNING = "KubeletRestartRunning"
    KUBELET_RESTART_SUCCEEDED = "KubeletRestartSucceeded"
    KUBELET_RESTART_FAILED = "KubeletRestartFailed"
    NOT_READY = "NotReady"  # the agent does not know its boot yet: ask again shortly
    RELAY_FAILED = "RelayFailed"  # a relaying agent could not reach the order's node


_ORDER_STATUS = {
    OrderOutcome.REJECTED: 422,
    OrderOutcome.NOT_READY: 503,
    OrderOutcome.RELAY_FAILED: 502,
}


def order_http_status(outcome: OrderOutcome) -> int:
    """The HTTP status an agent answers an order with (the body says the rest)."""
    return _ORDER_STATUS.get(outcome, 200)


class WireError(ValueError):
    """A JSON document that is not what the protocol says."""


def _get(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise WireError(f"field {key} has the wrong type")
    if not isinstance(value, types):
        raise WireError(f"field {key} is missing or has the wrong type")
    return value


def _float(data: Mapping[str, Any], key: str, optional: bool = False) -> float | None:
    value = _get(data, key, (int, float), optional)
    return None if value is None else float(value)


@dataclass(frozen=True)
class Health:
    node: str
    version: str
    boot_id: str | None
    api_reachable: bool | None  # the agent's last API check; None before the first
    fencing: bool
    self_fence_capable: bool
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "version": self.version,
            "bootId": self.boot_id,
            "apiReachable": self.api_reachable,
            "fencing": self.fencing,
            "selfFenceCapable": self.self_fence_capable,
            "time": self.time,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Health:
        return cls(
            node=_get(data, "node", str),
            version=_get(data, "version", str),
            boot_id=_get(data, "bootId", str, optional=True),
            api_reachable=_get(data, "apiReachable", bool, optional=True),
            fencing=_get(data, "fencing", bool),
            self_fence_capable=_get(data, "selfFenceCapable", bool),
            time=float(_get(data, "time", (int, float))),
        )


@dataclass(frozen=True)
class NodeView:
    """An agent's answer to "what do you know about `node`"."""

    node: str
    answered_by: str
    api_reachable: bool | None  # could the answering agent read the API just now
    order: str | None  # the signed order for `node` it knows of, relayed unchanged
    order_source: str | None  # "api" (read just now) or "relay" (delivered to it)
    checked_at: float
    # The last time this agent told `node` itself "the API is reachable and there is no
    # order for you" (the answer that keeps a cut-off node up), on its clock; None: never.
    last_healthy_answer_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "answeredBy": self.answered_by,
            "apiReachable": self.api_reachable,
            "order": self.order,
            "orderSource": self.order_source,
            "checkedAt": self.checked_at,
            "lastHealthyAnswerAt": self.last_healthy_answer_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeView:
        return cls(
            node=_get(data, "node", str),
            answered_by=_get(data, "answeredBy", str),
            api_reachable=_get(data, "apiReachable", bool, optional=True),
            order=_get(data, "order", str, optional=True),
            order_source=_get(data, "orderSource", str, optional=True),
            checked_at=float(_get(data, "checkedAt", (int, float))),
            last_healthy_answer_at=_float(data, "lastHealthyAnswerAt", optional=True),
        )


@dataclass(frozen=True)
class Reach:
    """An agent's answer to "can you reach `node`'s agent"."""

    node: str
    answered_by: str
    reachable: bool
    latency_s: float | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "answeredBy": self.answered_by,
            "reachable": self.reachable,
            "latencySeconds": self.latency_s,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reach:
        return cls(
            node=_get(data, "node", str),
            answered_by=_get(data, "answeredBy", str),
            reachable=_get(data, "reachable", bool),
            latency_s=_float(data, "latencySeconds", optional=True),
            error=_get(data, "error", str, optional=True),
        )


@dataclass(frozen=True)
class Acknowledgement:
    """What a fencing agent reports: after `last_feed_at` it never feeds the watchdog
    again, so the node resets at the latest `watchdog_timeout_s` later."""

    node: str
    remediation_uid: str
    action: str
    fence_started_at: float
    last_feed_at: float | None  # None when no watchdog was ever fed (software reboot)
    watchdog_timeout_s: float | None
    boot_id: str | None
    method: str  # "watchdog" | "software-reboot"

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "remediationUid": self.remediation_uid,
            "action": self.action,
            "fenceStartedAt": self.fence_started_at,
            "lastFeedAt": self.last_feed_at,
            "watchdogTimeoutSeconds": self.watchdog_timeout_s,
            "bootId": self.boot_id,
            "method": self.method,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Acknowledgement:
        return cls(
            node=_get(data, "node", str),
            remediation_uid=_get(data, "remediationUid", str),
            action=_get(data, "action", str),
            fence_started_at=float(_get(data, "fenceStartedAt", (int, float))),
            last_feed_at=_float(data, "lastFeedAt", optional=True),
            watchdog_timeout_s=_float(data, "watchdogTimeoutSeconds", optional=True),
            boot_id=_get(data, "bootId", str, optional=True),
            method=_get(data, "method", str),
        )


@dataclass(frozen=True)
class OrderAnswer:
    node: str  # the order's node
    answered_by: str
    outcome: OrderOutcome
    reason: str | None = None
    detail: str = ""
    acknowledgement: Acknowledgement | None = None
    relayed_via: str | None = None  # set by a relaying agent

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "answeredBy": self.answered_by,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "detail": self.detail,
            "acknowledgement": self.acknowledgement.to_json() if self.acknowledgement else None,
            "relayedVia": self.relayed_via,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderAnswer:
        try:
            outcome = OrderOutcome(_get(data, "outcome", str))
        except ValueError:
            raise WireError(f"unknown outcome {data.get('outcome')!r}") from None
        ack = data.get("acknowledgement")
        if ack is not None and not isinstance(ack, Mapping):
            raise WireError("field acknowledgement is not an object")
        return cls(
            node=_get(data, "node", str),
            answered_by=_get(data, "answeredBy", str),
            outcome=outcome,
            reason=_get(data, "reason", str, optional=True),
            detail=_get(data, "detail", str, optional=True) or "",
            acknowledgement=Acknowledgement.from_json(ack) if ack is not None else None,
            relayed_via=_get(data, "relayedVia", str, optional=True),
        )


def order_request_body(token: str, relay_hops: int = 0) -> bytes:
    """The body of POST /peer/v1/orders. The random requestId makes every delivery's
    signature unique, so a receiver may refuse a replayed signature outright.
    `relayHops` is 1 when an agent forwards an order it was given for another node;
    such an order is never forwarded again."""
    body: dict[str, Any] = {"order": token, "requestId": secrets.token_hex(8)}
    if relay_hops:
        body["relayHops"] = relay_hops
    return json.dumps(body).encode()


def error_body(code: int, name: str, description: str) -> dict[str, Any]:
    return {"code": code, "name": name, "description": description}


# The client ---------------------------------------------------------------------------


class PeerErrorKind(enum.StrEnum):
    TIMEOUT = "Timeout"
    UNREACHABLE = "Unreachable"  # connection refused/reset, DNS, proxy refused, TLS
    UNAUTHORIZED = "Unauthorized"  # the peer did not accept our signature
    HTTP = "HttpError"  # any other non-success status
    BAD_RESPONSE = "BadResponse"  # not JSON, too large, or not the protocol's shape


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

    def health(self, base_url: str, *, timeout_s: float | None = None) -> Health:
        return _parse(Health.from_json, self._request("GET", base_url, HEALTH_PATH, b"", timeout_s))

    def node_view(self, base_url: str, node: str, *, timeout_s: float | None = None,
                  observer: bool = False) -> NodeView:
        """What the agent at `base_url` knows about `node`. `observer=True` (the remediator
        asking) is never counted as an answer that keeps `node` up."""
        path = NODES_PATH + quote(node, safe="") + ("?observer=1" if observer else "")
        return _parse(NodeView.from_json, self._request("GET", base_url, path, b"", timeout_s))

    def reach(self, base_url: str, node: str, *, timeout_s: float | None = None) -> Reach:
        path = REACH_PATH + quote(node, safe="")
        return _parse(Reach.from_json, self._request("GET", base_url, path, b"", timeout_s))

    def deliver_order(
        self, base_url: str, token: str, *, timeout_s: float | None = None, relay_hops: int = 0
    ) -> OrderAnswer:
        body = order_request_body(token, relay_hops)
        data = self._request(
            "POST", base_url, ORDERS_PATH, body, timeout_s, accept_status=(422, 502, 503)
        )
        return _parse(OrderAnswer.from_json, data)

    def _request(
        self,
        method: str,
        base_url: str,
        path: str,
        body: bytes,
        timeout_s: float | None,
        accept_status: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        url = base_url.rstrip("/") + path
        parts = urlsplit(url)
        signed_path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = sign_request(self._secret, method, signed_path, body, self._clock.now())
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
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
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
