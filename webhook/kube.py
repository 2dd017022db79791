"""Every Kubernetes API call the webhook makes, behind one protocol (`WebhookKube`).

`RealWebhookKube` implements it with the official client on top of `core.kube` (its
timeouts and error tree); `webhook.kube_fake.FakeWebhookKube` is the in-memory twin for
unit tests. Objects cross this boundary as plain JSON dicts (camelCase keys, as the API
server sends them), never as client model classes.

Edge cases, once:
- Errors are `core.kube` errors: NotFound, AlreadyExists (create), Conflict (stale
  resourceVersion), Invalid, Unauthorized/Forbidden, Unavailable (no answer, 5xx, 429).
  A watch that is too old to resume raises `WatchExpired` (410 Gone): list again.
- The NodeRemediation CRD has a status subresource: `create_remediation` sends no status
  (the server would ignore it) and status is only written with
  `patch_remediation_status`, a JSON merge patch of `/status` that carries
  `metadata.resourceVersion` when given, so the server rejects it (409) if the object
  changed since it was read. Merge patches replace lists whole: callers send full lists.
- Deleting takes uid and resourceVersion preconditions, so a newer object is never lost.
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client, watch

from core import names
from core.kube import Kube, KubeError, call, translate

JSON = dict[str, Any]


class Resource(enum.StrEnum):
    """What the webhook lists and watches."""

    NODES = "nodes"
    REMEDIATIONS = "noderemediations"
    PAUSE = "pause"  # the pause-switch ConfigMap, one object, by name


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


class WebhookKube(Protocol):
    def ping(self) -> None:
        """Succeeds when the API server answers (GET /version)."""

    def list(self, resource: Resource) -> Listing:
        """All objects of `resource` and the list's resourceVersion."""

    def watch(
        self, resource: Resource, resource_version: str, timeout_s: float
    ) -> Iterator[WatchEvent]:
        """Changes after `resource_version`; ends after about `timeout_s`."""

    def get_remediation(self, name: str) -> JSON:
        """The NodeRemediation `name` (NotFound)."""

    def create_remediation(self, body: JSON) -> JSON:
        """Create; `status` in `body` is ignored (AlreadyExists)."""

    def patch_remediation_status(
        self, name: str, status: JSON, resource_version: str | None
    ) -> JSON:
        """Merge-patch `status` into /status, guarded by `resource_version` (Conflict)."""

    def delete_remediation(self, name: str, uid: str, resource_version: str) -> None:
        """Delete with uid and resourceVersion preconditions (Conflict, NotFound)."""

    def create_event(self, namespace: str, body: JSON) -> None:
        """Create an events.k8s.io/v1 Event."""


def _json(value: object) -> JSON:
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


class RealWebhookKube:
    """`WebhookKube` over the official client (see the module docstring)."""

    def __init__(self, kube: Kube, pause_namespace: str, pause_name: str) -> None:
        self.kube = kube
        self.pause_namespace = pause_namespace
        self.pause_name = pause_name

    def _list_call(self, resource: Resource) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        if resource is Resource.NODES:
            return self.kube.core.list_node, (), {}
        if resource is Resource.REMEDIATIONS:
            return (
                self.kube.custom.list_cluster_custom_object,
                (names.GROUP, names.VERSION, names.PLURAL),
                {},
            )
        return (
            self.kube.core.list_namespaced_config_map,
            (self.pause_namespace,),
            {"field_selector": f"metadata.name={self.pause_name}"},
        )

    def ping(self) -> None:
        call(self.kube.version.get_code, _request_timeout=self.kube.timeout)

    def list(self, resource: Resource) -> Listing:
        fn, args, kwargs = self._list_call(resource)
        listing = raw_list(self.kube, fn, *args, **kwargs)
        if resource is Resource.PAUSE:
            items = [i for i in listing.items if i.get("metadata", {}).get("name") == self.pause_name]
            return Listing(items, listing.resource_version)
        return listing

    def watch(
        self, resource: Resource, resource_version: str, timeout_s: float
    ) -> Iterator[WatchEvent]:
        real, args, kwargs = self._list_call(resource)
        for event in raw_watch(self.kube, real, resource_version, timeout_s, *args, **kwargs):
            if (
                resource is Resource.PAUSE
                and event.type != "BOOKMARK"
                and event.object.get("metadata", {}).get("name") != self.pause_name
            ):
                continue
            yield event

    def get_remediation(self, name: str) -> JSON:
        result: object = call(
            self.kube.custom.get_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            name,
            _request_timeout=self.kube.timeout,
        )
        return _json(result)

    def create_remediation(self, body: JSON) -> JSON:
        body = {k: v for k, v in body.items() if k != "status"}
        result: object = call(
            self.kube.custom.create_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            body,
            _request_timeout=self.kube.timeout,
        )
        return _json(result)

    def patch_remediation_status(
        self, name: str, status: JSON, resource_version: str | None
    ) -> JSON:
        patch: JSON = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        result: object = call(
            self.kube.custom.patch_cluster_custom_object_status,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            name,
            patch,
            _request_timeout=self.kube.timeout,
        )
        return _json(result)

    def delete_remediation(self, name: str, uid: str, resource_version: str) -> None:
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid, resource_version=resource_version)
        )
        call(
            self.kube.custom.delete_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            name,
            body=options,
            _request_timeout=self.kube.timeout,
        )

    def create_event(self, namespace: str, body: JSON) -> None:
        call(
            self.kube.events.create_namespaced_event,
            namespace,
            body,
            _request_timeout=self.kube.timeout,
        )
