"""The error tree every Kubernetes API call is translated into, and `call`, which does it.

Kept apart from `core.kube` (credentials and the typed API groups) so that a process
that talks to the API through the client's REST layer alone, the node agent, can use
the same errors without loading the generated API classes and models.

- 404 -> NotFound, 409 on create -> AlreadyExists, 409 otherwise -> Conflict (stale
  resourceVersion), 422 -> Invalid, 401/403 -> Unauthorized/Forbidden.
- Connection refused/reset, timeouts and 5xx/429 -> Unavailable (callers retry or
  answer 5xx).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


class KubeError(Exception):
    """An API call failed. `status` is the HTTP code (0 when no answer came)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Conflict(KubeError):
    pass


class Invalid(KubeError):
    pass


class Unauthorized(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Unavailable(KubeError):
    """No usable answer: connection failed, timed out, or the server answered 5xx/429."""


def translate(exc: BaseException) -> KubeError:
    """Map the client's exceptions onto our error tree."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason, message = str(exc.reason or ""), ""
        body = exc.body
        if body:
            try:
                data = json.loads(body)
                reason = data.get("reason") or reason
                message = data.get("message") or ""
            except (ValueError, TypeError, AttributeError):
                message = str(body)[:200]
        if status == 404:
            return NotFound(status, reason or "NotFound", message)
        if status == 409:
            cls = AlreadyExists if reason == "AlreadyExists" else Conflict
            return cls(status, reason or "Conflict", message)
        if status == 422:
            return Invalid(status, reason or "Invalid", message)
        if status == 401:
            return Unauthorized(status, reason or "Unauthorized", message)
        if status == 403:
            return Forbidden(status, reason or "Forbidden", message)
        if status == 0 or status >= 500 or status == 429:
            return Unavailable(status, reason or "Unavailable", message)
        return KubeError(status, reason, message)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return Unavailable(0, type(exc).__name__, str(exc)[:300])
    raise exc


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one client call, translating its failures."""
    try:
        return fn(*args, **kwargs)
    except (ApiException, urllib3.exceptions.HTTPError, OSError, TimeoutError) as exc:
        raise translate(exc) from exc
