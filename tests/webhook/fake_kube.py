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

import copy
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

from core import history, names
from core.clock import Clock, RealClock, rfc3339
from core.kube import (
    JSON,
    AlreadyExists,
    Conflict,
    Listing,
    NotFound,
    Unavailable,
    WatchEvent,
    WatchExpired,
    merge_patch,
)
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


class FakeWebhookKube:
    def __init__(
        self,
        clock: Clock | None = None,
        pause_namespace: str = names.DEFAULT_NAMESPACE,
        pause_name: str = "nodewarden-control",
    ) -> None:
        self.clock = clock or RealClock()
        self.pause_namespace = pause_namespace
        self.pause_name = pause_name
        self.unavailable = False
        self.calls: Counter[str] = Counter()
        self.events: list[JSON] = []
        self.ledger: JSON | None = None
        self.records: dict[str, JSON] = {}
        self.refuse_records: Exception | None = None
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._objects: dict[Resource, dict[str, JSON]] = {r: {} for r in Resource}
        self._log: dict[Resource, list[tuple[int, WatchEvent]]] = {r: [] for r in Resource}
        self._compacted: dict[Resource, int] = dict.fromkeys(Resource, 0)
        self._latest: dict[Resource, int] = dict.fromkeys(Resource, 0)
        self._cond = threading.Condition()

    # Internals --------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.unavailable:
            raise Unavailable(0, "ConnectionRefused", "the fake API server is down")

    def _write(self, resource: Resource, kind: str, obj: JSON) -> JSON:
        """Store `obj` under a new resourceVersion and log a watch event (lock held)."""
        rv = next(self._rv)
        self._last_rv = rv
        self._latest[resource] = rv
        obj["metadata"]["resourceVersion"] = str(rv)
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self._objects[resource].pop(name, None)
        else:
            self._objects[resource][name] = obj
        log = self._log[resource]
        log.append((rv, WatchEvent(kind, copy.deepcopy(obj))))
        if len(log) > MAX_EVENTS_KEPT:
            self._compacted[resource] = log[0][0]
            del log[0]
        self._cond.notify_all()
        return copy.deepcopy(obj)

    @property
    def latest_resource_version(self) -> int:
        with self._cond:
            return self._last_rv

    def latest_for(self, resource: Resource) -> int:
        """The resourceVersion of the last write to `resource` (0 if none)."""
        with self._cond:
            return self._latest[resource]

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: old watches get 410."""
        with self._cond:
            for resource in Resource:
                self._compacted[resource] = self._last_rv
                self._log[resource].clear()

    # Test helpers (not part of the protocol) ---------------------------------------

    def put_node(
        self, name: str, ready: str = "True", labels: dict[str, str] | None = None
    ) -> JSON:
        with self._cond:
            old = self._objects[Resource.NODES].get(name)
            obj = node_object(name, ready, labels, uid=old["metadata"]["uid"] if old else None)
            return self._write(Resource.NODES, "MODIFIED" if old else "ADDED", obj)

    def set_ready(self, name: str, ready: str) -> JSON:
        with self._cond:
            obj = copy.deepcopy(self._objects[Resource.NODES][name])
            obj["status"]["conditions"] = [{"type": "Ready", "status": ready}]
            return self._write(Resource.NODES, "MODIFIED", obj)

    def delete_node(self, name: str) -> None:
        with self._cond:
            obj = copy.deepcopy(self._objects[Resource.NODES][name])
            self._write(Resource.NODES, "DELETED", obj)

    def set_pause(self, paused: bool, reason: str = "") -> None:
        with self._cond:
            old = self._objects[Resource.PAUSE].get(self.pause_name)
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
            self._write(Resource.PAUSE, "MODIFIED" if old else "ADDED", obj)

    def annotate(self, name: str, annotations: dict[str, str]) -> JSON:
        """Add annotations to a NodeRemediation, as `kubectl annotate` would."""
        with self._cond:
            obj = copy.deepcopy(self._objects[Resource.REMEDIATIONS][name])
            obj["metadata"].setdefault("annotations", {}).update(annotations)
            return self._write(Resource.REMEDIATIONS, "MODIFIED", obj)

    def put_status(self, name: str, status: JSON) -> JSON:
        """Write status as another writer (the controller) would, unconditionally."""
        return self.patch_remediation_status(name, status, None)

    def stored(self, resource: Resource, name: str) -> JSON | None:
        with self._cond:
            obj = self._objects[resource].get(name)
            return copy.deepcopy(obj) if obj else None

    # WebhookKube ------------------------------------------------------------------

    def ping(self) -> None:
        self._enter("ping")

    def list(self, resource: Resource) -> Listing:
        self._enter(f"list:{resource}")
        with self._cond:
            items = [copy.deepcopy(o) for o in self._objects[resource].values()]
            return Listing(items, str(self._last_rv))

    def watch(
        self, resource: Resource, resource_version: str, timeout_s: float
    ) -> Iterator[WatchEvent]:
        self._enter(f"watch:{resource}")
        since = int(resource_version or 0)
        deadline = time.monotonic() + timeout_s  # watches time out on the real clock
        while True:
            with self._cond:
                if since < self._compacted[resource]:
                    raise WatchExpired(410, "Expired", f"too old resource version: {since}")
                pending = [e for rv, e in self._log[resource] if rv > since]
                if not pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self.unavailable:
                        return
                    self._cond.wait(min(remaining, 0.5))
                    continue
            for event in pending:
                since = int(event.object["metadata"]["resourceVersion"])
                yield WatchEvent(event.type, copy.deepcopy(event.object))

    def get_node(self, name: str) -> JSON:
        self._enter("get_node")
        with self._cond:
            obj = self._objects[Resource.NODES].get(name)
            if obj is None:
                raise NotFound(404, "NotFound", f'nodes "{name}" not found')
            return copy.deepcopy(obj)

    def get_remediation(self, name: str) -> JSON:
        self._enter("get_remediation")
        with self._cond:
            obj = self._objects[Resource.REMEDIATIONS].get(name)
            if obj is None:
                raise NotFound(404, "NotFound", f'noderemediations "{name}" not found')
            return copy.deepcopy(obj)

    def create_remediation(self, body: JSON) -> JSON:
        self._enter("create_remediation")
        with self._cond:
            name = body["metadata"]["name"]
            if name in self._objects[Resource.REMEDIATIONS]:
                raise AlreadyExists(
                    409, "AlreadyExists", f'noderemediations "{name}" already exists'
                )
            obj = {k: copy.deepcopy(v) for k, v in body.items() if k != "status"}
            obj["metadata"] = dict(obj["metadata"])
            obj["metadata"].update(
                uid=str(uuid.uuid4()), creationTimestamp=rfc3339(self.clock.now()), generation=1
            )
            return self._write(Resource.REMEDIATIONS, "ADDED", obj)

    def patch_remediation_status(
        self, name: str, status: JSON, resource_version: str | None
    ) -> JSON:
        self._enter("patch_remediation_status")
        with self._cond:
            obj = self._objects[Resource.REMEDIATIONS].get(name)
            if obj is None:
                raise NotFound(404, "NotFound", f'noderemediations "{name}" not found')
            if resource_version and resource_version != obj["metadata"]["resourceVersion"]:
                raise Conflict(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on noderemediations.nodewarden.io "{name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            new = copy.deepcopy(obj)
            patched = merge_patch(new.get("status") or {}, status)
            new["status"] = patched
            return self._write(Resource.REMEDIATIONS, "MODIFIED", new)

    def delete_remediation(self, name: str, uid: str, resource_version: str) -> None:
        self._enter("delete_remediation")
        with self._cond:
            obj = self._objects[Resource.REMEDIATIONS].get(name)
            if obj is None:
                raise NotFound(404, "NotFound", f'noderemediations "{name}" not found')
            meta = obj["metadata"]
            if meta["uid"] != uid or meta["resourceVersion"] != resource_version:
                raise Conflict(
                    409, "Conflict", "Precondition failed: UID or ResourceVersion mismatch"
                )
            self._write(Resource.REMEDIATIONS, "DELETED", copy.deepcopy(obj))

    def create_event(self, namespace: str, body: JSON) -> None:
        self._enter("create_event")
        with self._cond:
            name = (body.get("metadata") or {}).get("name")
            if any(e["namespace"] == namespace and e["metadata"]["name"] == name for e in self.events):
                raise AlreadyExists(409, "AlreadyExists", f'events.events.k8s.io "{name}" already exists')
            self.events.append({"namespace": namespace, **copy.deepcopy(body)})

    # History records: created, listed by label, deleted with a uid precondition.

    def create_record(self, body: JSON) -> JSON:
        self._enter("create_record")
        with self._cond:
            if self.refuse_records is not None:
                raise self.refuse_records
            name = body["metadata"]["name"]
            if name in self.records:
                raise AlreadyExists(409, "AlreadyExists", f'noderemediationrecords "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._rv)),
                                   creationTimestamp=rfc3339(self.clock.now()))
            self.records[name] = obj
            return copy.deepcopy(obj)

    def get_record(self, name: str) -> JSON:
        self._enter("get_record")
        with self._cond:
            if name not in self.records:
                raise NotFound(404, "NotFound", f'noderemediationrecords "{name}" not found')
            return copy.deepcopy(self.records[name])

    def list_records(self, node: str) -> list[JSON]:
        self._enter("list_records")
        want = history.node_label_value(node)
        with self._cond:
            return [copy.deepcopy(r) for r in self.records.values()
                    if r["metadata"].get("labels", {}).get(history.LABEL_NODE) == want]

    def delete_record(self, name: str, uid: str) -> None:
        self._enter("delete_record")
        with self._cond:
            if self.refuse_records is not None:
                raise self.refuse_records
            if name not in self.records:
                raise NotFound(404, "NotFound", f'noderemediationrecords "{name}" not found')
            if uid and self.records[name]["metadata"]["uid"] != uid:
                raise Conflict(409, "Conflict", "Precondition failed: UID mismatch")
            del self.records[name]

    # The rate-limit ledger: one ConfigMap, not watched (kept apart from `Resource`).

    def get_ledger(self) -> JSON:
        self._enter("get_ledger")
        with self._cond:
            if self.ledger is None:
                raise NotFound(404, "NotFound", 'configmaps "ledger" not found')
            return copy.deepcopy(self.ledger)

    def create_ledger(self, data: dict[str, str]) -> JSON:
        self._enter("create_ledger")
        with self._cond:
            if self.ledger is not None:
                raise AlreadyExists(409, "AlreadyExists", 'configmaps "ledger" already exists')
            self.ledger = {"metadata": {"name": "ledger", "resourceVersion": str(next(self._rv))},
                           "data": dict(data)}
            return copy.deepcopy(self.ledger)

    def replace_ledger(self, data: dict[str, str], resource_version: str) -> JSON:
        self._enter("replace_ledger")
        with self._cond:
            if self.ledger is None:
                raise NotFound(404, "NotFound", 'configmaps "ledger" not found')
            if self.ledger["metadata"]["resourceVersion"] != resource_version:
                raise Conflict(409, "Conflict", 'Operation cannot be fulfilled on configmaps "ledger"')
            self.ledger = {"metadata": {"name": "ledger", "resourceVersion": str(next(self._rv))},
                           "data": dict(data)}
            return copy.deepcopy(self.ledger)
