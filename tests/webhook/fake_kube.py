"""`FakeWebhookKube`: an in-memory API server for the webhook's unit tests.

It keeps the behaviours the webhook depends on: resourceVersions that grow on every
write, 409 AlreadyExists on create and 409 Conflict on a stale resourceVersion, the
status subresource (create drops `status`, status patches touch nothing else), JSON merge
patch semantics, delete preconditions, and list + watch with 410 Gone for a watch from
a compacted resourceVersion. Set `unavailable = True` to make every call fail as if the
API server were down. `calls` counts calls by method, so tests can prove that handling
an alert never lists anything. History records live in `records` (not watched); set
`refuse_records` to an error to make writing them fail with it.
"""

from __future__ import annotations

import builtins
import copy
import uuid
from collections.abc import Iterator

from core import history, names
from core.clock import Clock, RealClock, rfc3339
from core.kube import (
    JSON,
    AlreadyExists,
    Conflict,
    Listing,
    NotFound,
    WatchEvent,
    merge_patch,
)
from tests.fake_api import FakeStore, OnFakeStore
from webhook.kube import Resource

MAX_EVENTS_KEPT = 10_000


def node_object(
    name: str, ready: str = "True", labels: dict[str, str] | None = None, uid: str | None = None
) -> JSON:
    """A minimal Node as the API server would return it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": uid or str(uuid.uuid4()), "labels": dict(labels or {})},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


class FakeWebhookKube(OnFakeStore[Resource]):
    def __init__(
        self,
        clock: Clock | None = None,
        pause_namespace: str = names.DEFAULT_NAMESPACE,
        pause_name: str = "nodewarden-control",
    ) -> None:
        self.clock = clock or RealClock()
        self.pause_namespace = pause_namespace
        self.pause_name = pause_name
        self.events: list[JSON] = []
        self._event_names: set[tuple[str, str]] = set()  # (namespace, name): AlreadyExists
        self.ledger: JSON | None = None
        self.records: dict[str, JSON] = {}
        self.refuse_records: Exception | None = None
        self._api: FakeStore[Resource] = FakeStore(Resource, max_events=MAX_EVENTS_KEPT)

    # Internals --------------------------------------------------------------------

    @property
    def latest_resource_version(self) -> int:
        return self._api.last_rv

    def latest_for(self, resource: Resource) -> int:
        """The resourceVersion of the last write to `resource` (0 if none)."""
        return self._api.latest_for(resource)

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: old watches get 410."""
        self._api.compact()

    def _existing(self, resource: Resource, name: str) -> JSON:
        obj = self._api.find(resource, name)
        if obj is None:
            raise KeyError(name)
        return obj

    # Test helpers (not part of the protocol) ---------------------------------------

    def put_node(
        self, name: str, ready: str = "True", labels: dict[str, str] | None = None
    ) -> JSON:
        with self._api.lock:
            old = self._api.find(Resource.NODES, name)
            obj = node_object(name, ready, labels, uid=old["metadata"]["uid"] if old else None)
            return self._api.put(Resource.NODES, obj, "MODIFIED" if old else "ADDED")

    def set_ready(self, name: str, ready: str) -> JSON:
        with self._api.lock:
            obj = self._existing(Resource.NODES, name)
            obj["status"]["conditions"] = [{"type": "Ready", "status": ready}]
            return self._api.put(Resource.NODES, obj, "MODIFIED")

    def delete_node(self, name: str) -> None:
        with self._api.lock:
            self._api.put(Resource.NODES, self._existing(Resource.NODES, name), "DELETED")

    def set_pause(self, paused: bool, reason: str = "") -> None:
        with self._api.lock:
            old = self._api.find(Resource.PAUSE, self.pause_name)
            obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.pause_name,
                    "namespace": self.pause_namespace,
                    "uid": str(uuid.uuid4()),
                },
                "data": {"paused": "true" if paused else "false", "reason": reason},
            }
            self._api.put(Resource.PAUSE, obj, "MODIFIED" if old else "ADDED")

    def annotate(self, name: str, annotations: dict[str, str]) -> JSON:
        """Add annotations to a NodeRemediation, as `kubectl annotate` would."""
        with self._api.lock:
            obj = self._existing(Resource.REMEDIATIONS, name)
            obj["metadata"].setdefault("annotations", {}).update(annotations)
            return self._api.put(Resource.REMEDIATIONS, obj, "MODIFIED")

    def put_status(self, name: str, status: JSON) -> JSON:
        """Write status as another writer (the controller) would, unconditionally."""
        return self.patch_remediation_status(name, status, None)

    def stored(self, resource: Resource, name: str) -> JSON | None:
        obj = self._api.find(resource, name)
        return obj if obj else None

    # WebhookKube ------------------------------------------------------------------

    def ping(self) -> None:
        self._api.enter("ping")

    def list(self, resource: Resource) -> Listing:
        self._api.enter(f"list:{resource}")
        return self._api.list(resource)

    def watch(
        self, resource: Resource, resource_version: str, timeout_s: float
    ) -> Iterator[WatchEvent]:
        self._api.enter(f"watch:{resource}")
        yield from self._api.watch(resource, resource_version, timeout_s)

    def get_node(self, name: str) -> JSON:
        self._api.enter("get_node")
        return self._api.get(Resource.NODES, name, f'nodes "{name}" not found')

    def get_remediation(self, name: str) -> JSON:
        self._api.enter("get_remediation")
        return self._api.get(Resource.REMEDIATIONS, name, f'noderemediations "{name}" not found')

    def create_remediation(self, body: JSON) -> JSON:
        self._api.enter("create_remediation")
        with self._api.lock:
            name = body["metadata"]["name"]
            if self._api.find(Resource.REMEDIATIONS, name) is not None:
                raise AlreadyExists(
                    409, "AlreadyExists", f'noderemediations "{name}" already exists'
                )
            obj = {k: copy.deepcopy(v) for k, v in body.items() if k != "status"}
            obj["metadata"] = dict(obj["metadata"])
            obj["metadata"].update(
                uid=str(uuid.uuid4()), creationTimestamp=rfc3339(self.clock.now()), generation=1
            )
            return self._api.put(Resource.REMEDIATIONS, obj, "ADDED")

    def patch_remediation_status(
        self, name: str, status: JSON, resource_version: str | None
    ) -> JSON:
        self._api.enter("patch_remediation_status")
        with self._api.lock:
            new = self._api.get(
                Resource.REMEDIATIONS, name, f'noderemediations "{name}" not found'
            )
            self._api.check_version(
                new,
                resource_version,
                f'Operation cannot be fulfilled on noderemediations.nodewarden.io "{name}": '
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
            )
            new["status"] = merge_patch(new.get("status") or {}, status)
            return self._api.put(Resource.REMEDIATIONS, new, "MODIFIED")

    def delete_remediation(self, name: str, uid: str, resource_version: str) -> None:
        self._api.enter("delete_remediation")
        with self._api.lock:
            obj = self._api.get(
                Resource.REMEDIATIONS, name, f'noderemediations "{name}" not found'
            )
            meta = obj["metadata"]
            if meta["uid"] != uid or meta["resourceVersion"] != resource_version:
                raise Conflict(
                    409, "Conflict", "Precondition failed: UID or ResourceVersion mismatch"
                )
            self._api.put(Resource.REMEDIATIONS, obj, "DELETED")

    def create_event(self, namespace: str, body: JSON) -> None:
        self._api.enter("create_event")
        with self._api.lock:
            name = str((body.get("metadata") or {}).get("name"))
            if (namespace, name) in self._event_names:
                raise AlreadyExists(409, "AlreadyExists", f'events.events.k8s.io "{name}" already exists')
            self._event_names.add((namespace, name))
            self.events.append({"namespace": namespace, **copy.deepcopy(body)})

    # History records: created, listed by label, deleted with a uid precondition.

    def create_record(self, body: JSON) -> JSON:
        self._api.enter("create_record")
        with self._api.lock:
            if self.refuse_records is not None:
                raise self.refuse_records
            name = body["metadata"]["name"]
            if name in self.records:
                raise AlreadyExists(409, "AlreadyExists", f'noderemediationrecords "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=str(self._api.next_rv()),
                                   creationTimestamp=rfc3339(self.clock.now()))
            self.records[name] = obj
            return copy.deepcopy(obj)

    def get_record(self, name: str) -> JSON:
        self._api.enter("get_record")
        with self._api.lock:
            if name not in self.records:
                raise NotFound(404, "NotFound", f'noderemediationrecords "{name}" not found')
            return copy.deepcopy(self.records[name])

    def list_records(self, node: str) -> builtins.list[JSON]:
        self._api.enter("list_records")
        want = history.node_label_value(node)
        with self._api.lock:
            return [copy.deepcopy(r) for r in self.records.values()
                    if r["metadata"].get("labels", {}).get(history.LABEL_NODE) == want]

    def delete_record(self, name: str, uid: str) -> None:
        self._api.enter("delete_record")
        with self._api.lock:
            if self.refuse_records is not None:
                raise self.refuse_records
            if name not in self.records:
                raise NotFound(404, "NotFound", f'noderemediationrecords "{name}" not found')
            if uid and self.records[name]["metadata"]["uid"] != uid:
                raise Conflict(409, "Conflict", "Precondition failed: UID mismatch")
            del self.records[name]

    # The rate-limit ledger: one ConfigMap, not watched (kept apart from `Resource`).

    def get_ledger(self) -> JSON:
        self._api.enter("get_ledger")
        with self._api.lock:
            if self.ledger is None:
                raise NotFound(404, "NotFound", 'configmaps "ledger" not found')
            return copy.deepcopy(self.ledger)

    def create_ledger(self, data: dict[str, str]) -> JSON:
        self._api.enter("create_ledger")
        with self._api.lock:
            if self.ledger is not None:
                raise AlreadyExists(409, "AlreadyExists", 'configmaps "ledger" already exists')
            self.ledger = {"metadata": {"name": "ledger", "resourceVersion": str(self._api.next_rv())},
                           "data": dict(data)}
            return copy.deepcopy(self.ledger)

    def replace_ledger(self, data: dict[str, str], resource_version: str) -> JSON:
        self._api.enter("replace_ledger")
        with self._api.lock:
            if self.ledger is None:
                raise NotFound(404, "NotFound", 'configmaps "ledger" not found')
            if self.ledger["metadata"]["resourceVersion"] != resource_version:
                raise Conflict(409, "Conflict", 'Operation cannot be fulfilled on configmaps "ledger"')
            self.ledger = {"metadata": {"name": "ledger", "resourceVersion": str(self._api.next_rv())},
                           "data": dict(data)}
            return copy.deepcopy(self.ledger)
