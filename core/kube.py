"""The shared base for talking to the Kubernetes API with the official client.

Both sides build their own API module on top of this one: it loads credentials, puts a
timeout on every call, and implements the two read-modify-write patterns both sides need
(node taints, Leases). The client's exceptions become a small error tree that the rest
of the code can match on without knowing the HTTP library: `core.kube_errors`
(re-exported here; 404 -> NotFound, 409 -> AlreadyExists or Conflict, 5xx and
connection failures -> Unavailable, ...).

Edge cases handled here, once:
- `spec.taints` has no merge key: a strategic merge patch replaces the whole list, so a
  taint change reads the node, edits the list and patches it back with the
  resourceVersion it read; a 409 means somebody else changed the node, so read again.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config, watch

from core.kube_errors import (  # noqa: F401  (re-exported: the error tree lives there)
    AlreadyExists,
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
    call,
    translate,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
JSON = dict[str, Any]


@dataclass
class Kube:
    """An API client plus the typed API groups both sides use, each call with a timeout."""

    api_client: client.ApiClient
    request_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.storage = client.StorageV1Api(self.api_client)
        self.events = client.EventsV1Api(self.api_client)
        self.version = client.VersionApi(self.api_client)
        self.admission = client.AdmissionregistrationV1Api(self.api_client)
        self.authentication = client.AuthenticationV1Api(self.api_client)  # TokenReview
        self.authorization = client.AuthorizationV1Api(self.api_client)  # SubjectAccessReview

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) timeout for `_request_timeout`."""
        return (min(self.request_timeout_s, 5.0), self.request_timeout_s)

    def close(self) -> None:
        self.api_client.close()


def load_kube(kubeconfig: str | None = None, request_timeout_s: float = 10.0) -> Kube:
    """Credentials from `kubeconfig`, else $KUBECONFIG, else the in-cluster service account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    configuration = client.Configuration()
    if path:
        config.load_kube_config(config_file=path, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.retries = False  # we decide about retries, not urllib3
    return Kube(client.ApiClient(configuration), request_timeout_s)


def retry_on_conflict(fn: Callable[[], T], attempts: int = 5) -> T:
    """Run a read-modify-write `fn` again while it loses the race (409 Conflict)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Conflict:
            if attempt == attempts:
                raise
            log.debug("conflict on attempt %d, reading again", attempt)
    raise AssertionError("unreachable")


# Taints ------------------------------------------------------------------------------


def _taint_dicts(node: Any) -> list[dict[str, Any]]:
    taints = []
    for t in node.spec.taints or []:
        d: dict[str, Any] = {"key": t.key, "effect": t.effect}
        if t.value is not None:
            d["value"] = t.value
        if t.time_added is not None:
            d["timeAdded"] = t.time_added.strftime("%Y-%m-%dT%H:%M:%SZ")
        taints.append(d)
    return taints


def ensure_node_taint(
    kube: Kube, node_name: str, key: str, value: str | None, effect: str, present: bool,
    time_added: str | None = None,
) -> bool:
    """Add (present=True) or remove the taint (key, effect). Returns True if it changed
    the node. Other taints are kept as they are. Retries on 409. With `time_added` (an
    RFC 3339 time), the taint is added with that `timeAdded`, and one already there counts
    only if it carries a `timeAdded` of its own (else it is replaced)."""

    def attempt() -> bool:
        node: Any = call(kube.core.read_node, node_name, _request_timeout=kube.timeout)
        taints = _taint_dicts(node)
        matching = [t for t in taints if t["key"] == key and t["effect"] == effect]
        if present:
            if any(t.get("value") == value and (time_added is None or t.get("timeAdded")) for t in matching):
                return False
            taints = [t for t in taints if not (t["key"] == key and t["effect"] == effect)]
            new: dict[str, Any] = {"key": key, "effect": effect}
            if time_added is not None:
                new["timeAdded"] = time_added
            if value is not None:
                new["value"] = value
            taints.append(new)
        else:
            if not matching:
                return False
            taints = [t for t in taints if not (t["key"] == key and t["effect"] == effect)]
        body = {
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        }
        call(kube.core.patch_node, node_name, body, _request_timeout=kube.timeout)
        return True

    return retry_on_conflict(attempt)


class WatchExpired(KubeError):
    """410 Gone: the resourceVersion is too old to watch from; list again."""


@dataclass(frozen=True)
class Listing:
    items: list[JSON]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: JSON


def expect_object(value: object) -> JSON:
    """`value` if it is a JSON object, else an UnexpectedResponse error."""
    if not isinstance(value, dict):
        raise KubeError(
            0, "UnexpectedResponse", f"expected a JSON object, got {type(value).__name__}"
        )
    return value


def _watch_error(exc: BaseException) -> KubeError:
    err = translate(exc)
    if err.status == 410 or "Expired" in err.reason or "too old" in err.message:
        return WatchExpired(410, "Expired", err.message or err.reason)
    return err


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., or None where any step is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it: objects merge, null
    deletes, everything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def raw_list(kube: Kube, fn: Any, *args: Any, **kwargs: Any) -> Listing:
    """A LIST through a generated client method, as plain dicts (no model classes)."""
    resp = call(fn, *args, **kwargs, _preload_content=False, _request_timeout=kube.timeout)
    try:
        data = json.loads(resp.data)
    finally:
        resp.release_conn()
    return Listing(list(data.get("items") or []), str(data.get("metadata", {}).get("resourceVersion", "")))


def raw_watch(kube: Kube, list_fn: Any, resource_version: str, timeout_s: float, *args: Any,
              **kwargs: Any) -> Iterator[WatchEvent]:
    """A WATCH from `resource_version` as plain dicts; a 410 raises WatchExpired."""

    def fn(*a: Any, **kw: Any):  # no return annotation: the client yields plain dicts
        return list_fn(*a, **kw)

    w = watch.Watch()
    stream = w.stream(
        fn,
        *args,
        **kwargs,
        resource_version=resource_version,
        timeout_seconds=max(1, int(timeout_s)),
        allow_watch_bookmarks=True,
        _request_timeout=(min(kube.request_timeout_s, 5.0), timeout_s + 30.0),
    )
    try:
        while True:
            try:
                event = next(stream)
            except StopIteration:
                return
            except Exception as exc:
                raise _watch_error(exc) from exc
            obj = event.get("raw_object", event.get("object"))
            if isinstance(obj, dict):
                yield WatchEvent(str(event.get("type")), obj)
    finally:
        w.stop()
        stream.close()
