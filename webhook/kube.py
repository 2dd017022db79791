"""Every Kubernetes API call the webhook makes, behind one protocol (`WebhookKube`).

`RealWebhookKube` implements it with the official client on top of `core.kube` (its
timeouts and error tree); `tests.webhook.fake_kube.FakeWebhookKube` is the in-memory twin for
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
- History records (`core.history`, written by `webhook.history`) are created once, listed
  by their node's label, and deleted with a uid precondition when pruned.
- The rate-limit ledger (`webhook.ledger`) is one ConfigMap, `<pause ConfigMap>-ledger`
  in the pause switch's namespace, read by name and replaced with its resourceVersion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from kubernetes import client

from core import history, names, resources
from core.kube import JSON, Kube, Listing, WatchEvent, call, expect_object, raw_list, raw_watch
from core.resources import Watched

Records = list[JSON]  # NodeRemediationRecords (a name: `list` is a method below)


class Resource(Watched):
    """What the webhook lists and watches (each one's API: `core.resources`)."""

    NODES = resources.NODES.name
    REMEDIATIONS = resources.REMEDIATIONS.name
    PAUSE = resources.PAUSE.name  # the pause-switch ConfigMap, one object, by name


class WebhookKube(Protocol):
    def ping(self) -> None:
        """Succeeds when the API server answers (GET /version)."""

    def list(self, resource: Resource) -> Listing:
        """All objects of `resource` and the list's resourceVersion."""

    def watch(
        self, resource: Resource, resource_version: str, timeout_s: float
    ) -> Iterator[WatchEvent]:
        """Changes after `resource_version`; ends after about `timeout_s`."""

    def get_node(self, name: str) -> JSON:
        """The Node, read from the API server now (NotFound)."""

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

    def create_record(self, body: JSON) -> JSON:
        """Create a NodeRemediationRecord (AlreadyExists)."""

    def get_record(self, name: str) -> JSON:
        """The NodeRemediationRecord `name` (NotFound)."""

    def list_records(self, node: str) -> Records:
        """The NodeRemediationRecords of `node` (by label)."""

    def delete_record(self, name: str, uid: str) -> None:
        """Delete a record with a uid precondition (Conflict, NotFound)."""

    def create_event(self, namespace: str, body: JSON) -> None:
        """Create an events.k8s.io/v1 Event."""

    def get_ledger(self) -> JSON:
        """The rate-limit ledger ConfigMap (NotFound)."""

    def create_ledger(self, data: dict[str, str]) -> JSON:
        """Create the ledger ConfigMap with `data` (AlreadyExists)."""

    def replace_ledger(self, data: dict[str, str], resource_version: str) -> JSON:
        """Replace the ledger's data, guarded by `resource_version` (Conflict)."""


def ledger_name(pause_name: str) -> str:
    return f"{pause_name}-ledger"


class RealWebhookKube:
    """`WebhookKube` over the official client (see the module docstring)."""

    def __init__(self, kube: Kube, pause_namespace: str, pause_name: str) -> None:
        self.kube = kube
        self.pause_namespace = pause_namespace
        self.pause_name = pause_name
        self.ledger_name = ledger_name(pause_name)

    def _list_call(self, resource: Resource) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        if resource is Resource.NODES:
            return self.kube.core.list_node, (), {}
        if resource is Resource.REMEDIATIONS:
            return (
                self.kube.custom.list_cluster_custom_object,
                (resources.REMEDIATIONS.group, resources.REMEDIATIONS.version, resources.REMEDIATIONS.plural),
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

    def get_node(self, name: str) -> JSON:
        return self._raw_call(self.kube.core.read_node, name)

    def get_remediation(self, name: str) -> JSON:
        result: object = call(
            self.kube.custom.get_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            name,
            _request_timeout=self.kube.timeout,
        )
        return expect_object(result)

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
        return expect_object(result)

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
        return expect_object(result)

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

    def create_record(self, body: JSON) -> JSON:
        result: object = call(
            self.kube.custom.create_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            history.RECORD_PLURAL,
            body,
            _request_timeout=self.kube.timeout,
        )
        return expect_object(result)

    def get_record(self, name: str) -> JSON:
        result: object = call(
            self.kube.custom.get_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            history.RECORD_PLURAL,
            name,
            _request_timeout=self.kube.timeout,
        )
        return expect_object(result)

    def list_records(self, node: str) -> Records:
        result: object = call(
            self.kube.custom.list_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            history.RECORD_PLURAL,
            label_selector=history.node_selector(node),
            _request_timeout=self.kube.timeout,
        )
        return [i for i in expect_object(result).get("items") or [] if isinstance(i, dict)]

    def delete_record(self, name: str, uid: str) -> None:
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        call(
            self.kube.custom.delete_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            history.RECORD_PLURAL,
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

    def _ledger_body(self, data: dict[str, str], resource_version: str | None) -> JSON:
        meta: JSON = {"name": self.ledger_name, "namespace": self.pause_namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    def _raw_call(self, fn: Any, *args: Any) -> JSON:
        """A read or write whose answer is kept as the server's JSON (no model round trip)."""
        resp: Any = call(fn, *args, _preload_content=False, _request_timeout=self.kube.timeout)
        try:
            return expect_object(json.loads(resp.data))
        finally:
            resp.release_conn()

    def get_ledger(self) -> JSON:
        return self._raw_call(
            self.kube.core.read_namespaced_config_map, self.ledger_name, self.pause_namespace
        )

    def create_ledger(self, data: dict[str, str]) -> JSON:
        return self._raw_call(
            self.kube.core.create_namespaced_config_map,
            self.pause_namespace,
            self._ledger_body(data, None),
        )

    def replace_ledger(self, data: dict[str, str], resource_version: str) -> JSON:
        return self._raw_call(
            self.kube.core.replace_namespaced_config_map,
            self.ledger_name,
            self.pause_namespace,
            self._ledger_body(data, resource_version),
        )
