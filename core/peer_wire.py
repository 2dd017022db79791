"""The peer protocol's wire format: paths, messages and their JSON, with strict parsing.

Node agents answer each other, and the remediator, on a small HTTP(S) API. Every
request is signed with the per-cluster peer secret and names its receiver, and every
answer to an authenticated request is signed too (`core.peer_auth`); an agent answers an
unsigned or badly signed request with 401 and never acts on it. Times on the wire are
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
`from_json` raises `WireError` for any document that is not the protocol's shape.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_PREFIX = "/peer/v1"
HEALTH_PATH = API_PREFIX + "/health"
NODES_PATH = API_PREFIX + "/nodes/"
REACH_PATH = API_PREFIX + "/reach/"
ORDERS_PATH = API_PREFIX + "/orders"
MAX_REQUEST_BYTES = 16 * 1024
MAX_RESPONSE_BYTES = 64 * 1024


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
