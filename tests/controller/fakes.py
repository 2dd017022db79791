"""`FakeControllerKube`: an in-memory `controller.kube.ControllerKube` for the controller's
unit tests, and `FakeLease`, the leader Lease it hands out.

It keeps the behaviours the controller depends on: resourceVersions that grow on every
write, 409 Conflict on a stale resourceVersion (the remediation's status, the Lease),
404 NotFound, JSON merge patch of `/status` touching nothing else, the out-of-service
taint added or removed without touching other taints, and list + watch per `Kind`.
`calls` counts calls by method; `unavailable = True` makes every call fail as if the API
server were down; `before_status_patch` runs before every status patch, so a test can
let another writer (the webhook, an agent) get in first, as on a real cluster.

`make_reconciler` builds the real `controller.reconcile.Reconciler` over it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from controller.act import Actor
from controller.eviction import evicted_by_out_of_service
from controller.informer import Informer
from controller.kube import OOS, Kind
from controller.metrics import ControllerMetrics
from controller.reconcile import ClusterFacts, Reconciler, machine_config
from controller.report import Reporter
from controller.settings import ControllerSettings
from core import names
from core.clock import Clock
from core.events import EventRecorder
from core.fence_order import OrderKey
from core.kube import (
    JSON,
    AlreadyExists,
    Conflict,
    Listing,
    NotFound,
    Unavailable,
    WatchEvent,
    merge_patch,
)
from core.peer_client import PeerClient
from tests.controller.builders import KEY


class FakeLease:
    """`controller.leader.LeaseStore` in memory, with the API server's preconditions.
    `fail = True` makes it unreachable (a replica cut off from the API server)."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.fail = False

    def get(self) -> dict[str, Any]:
        if self.fail:
            raise Unavailable(0, "Unavailable", "partitioned")
        if self.obj is None:
            raise NotFound(404, "NotFound", "no lease")
        return copy.deepcopy(self.obj)

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.obj is not None:
            raise AlreadyExists(409, "AlreadyExists", "exists")
        self.rv += 1
        self.obj = {"metadata": {"resourceVersion": str(self.rv)}, "spec": spec}
        return copy.deepcopy(self.obj)

    def update(self, spec: dict[str, Any], resource_version: str) -> dict[str, Any]:
        if self.fail:
            raise Unavailable(0, "Unavailable", "partitioned")
        assert self.obj is not None
        if resource_version != self.obj["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "modified")
        self.rv += 1
        self.obj = {"metadata": {"resourceVersion": str(self.rv)}, "spec": spec}
        return copy.deepcopy(self.obj)


class FakeControllerKube:
    def __init__(self, pause_configmap: str = "nodewarden-control", version: tuple[int, int] = (1, 30)) -> None:
        self.pause_configmap = pause_configmap
        self.version = version
        self.agent_writes_policy = True
        self.unavailable = False
        self.before_status_patch: Callable[[str], object] | None = None
        self.calls: Counter[str] = Counter()
        self.events: list[tuple[str, JSON]] = []
        self.leases: dict[str, FakeLease] = {}
        self.pods: list[JSON] = []
        self.volume_attachments: list[JSON] = []
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._objects: dict[Kind, dict[str, JSON]] = {k: {} for k in Kind}
        self._log: dict[Kind, list[tuple[int, WatchEvent]]] = {k: [] for k in Kind}
        self._cond = threading.Condition()

    # -- the test's side -------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.unavailable:
            raise Unavailable(0, "ConnectionRefused", "the fake API server is down")

    def _store(self, kind: Kind, obj: JSON, event: str = "") -> JSON:
        """Store `obj` under a new resourceVersion and log its watch event (lock held)."""
        rv = next(self._rv)
        self._last_rv = rv
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        name = obj["metadata"]["name"]
        event = event or ("MODIFIED" if name in self._objects[kind] else "ADDED")
        if event == "DELETED":
            self._objects[kind].pop(name, None)
        else:
            self._objects[kind][name] = obj
        self._log[kind].append((rv, WatchEvent(event, copy.deepcopy(obj))))
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def put(self, kind: Kind, obj: JSON) -> JSON:
        """Create or replace an object as another party would (no precondition)."""
        with self._cond:
            return self._store(kind, obj)

    def delete(self, kind: Kind, name: str) -> None:
        with self._cond:
            obj = self._objects[kind].get(name)
            if obj is not None:
                self._store(kind, obj, "DELETED")

    def object(self, kind: Kind, name: str) -> JSON:
        with self._cond:
            return copy.deepcopy(self._objects[kind][name])

    def write_status(self, name: str, patch: JSON) -> JSON:
        """Another writer's status merge patch (no resourceVersion: it always lands)."""
        with self._cond:
            obj = self._objects[Kind.REMEDIATIONS][name]
            return self._store(Kind.REMEDIATIONS, {**obj, "status": merge_patch(obj.get("status") or {}, patch)})

    def add_pod(self, name: str, node: str, namespace: str = "default",
                tolerations: list[dict[str, Any]] | None = None) -> None:
        self.pods.append({"metadata": {"name": name, "namespace": namespace},
                          "spec": {"nodeName": node, "tolerations": list(tolerations or [])}})

    def add_volume_attachment(self, name: str, node: str) -> None:
        self.volume_attachments.append({"metadata": {"name": name}, "spec": {"nodeName": node}})

    # -- ControllerKube --------------------------------------------------------------------

    def list(self, kind: Kind) -> Listing:
        self._enter(f"list:{kind}")
        with self._cond:
            return Listing([copy.deepcopy(o) for o in self._objects[kind].values()], str(self._last_rv))

    def watch(self, kind: Kind, resource_version: str, timeout_s: float) -> Iterator[WatchEvent]:
        self._enter(f"watch:{kind}")
        since = int(resource_version or 0)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                pending = [(rv, e) for rv, e in self._log[kind] if rv > since]
                if not pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self.unavailable:
                        return
                    self._cond.wait(min(remaining, 0.5))
                    continue
            for rv, event in pending:
                since = rv
                yield WatchEvent(event.type, copy.deepcopy(event.object))

    def get_remediation(self, name: str) -> JSON:
        self._enter("get_remediation")
        with self._cond:
            obj = self._objects[Kind.REMEDIATIONS].get(name)
            if obj is None:
                raise NotFound(404, "NotFound", f'{names.PLURAL} "{name}" not found')
            return copy.deepcopy(obj)

    def patch_remediation_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        self._enter("patch_remediation_status")
        if self.before_status_patch is not None:
            self.before_status_patch(name)
        with self._cond:
            obj = self._objects[Kind.REMEDIATIONS].get(name)
            if obj is None:
                raise NotFound(404, "NotFound", f'{names.PLURAL} "{name}" not found')
            if resource_version and resource_version != obj["metadata"]["resourceVersion"]:
                raise Conflict(409, "Conflict", "the object has been modified; please apply your changes "
                                                "to the latest version and try again")
            return self._store(Kind.REMEDIATIONS, {**obj, "status": merge_patch(obj.get("status") or {}, status)})

    def set_out_of_service_taint(self, node: str, present: bool) -> bool:
        self._enter("set_out_of_service_taint")
        key, value, effect = OOS
        with self._cond:
            obj = self._objects[Kind.NODES].get(node)
            if obj is None:
                raise NotFound(404, "NotFound", f'nodes "{node}" not found')
            taints = list((obj.get("spec") or {}).get("taints") or [])
            ours = [t for t in taints if t.get("key") == key and t.get("effect") == effect]
            if present and any(t.get("value") == value for t in ours):
                return False  # already there
            if not present and not ours:
                return False  # already gone
            taints = [t for t in taints if not (t.get("key") == key and t.get("effect") == effect)]
            if present:
                taints.append({"key": key, "value": value, "effect": effect})
            self._store(Kind.NODES, {**obj, "spec": {**(obj.get("spec") or {}), "taints": taints}})
            return True

    def delete_node_pods(self, node: str, evicted_only: bool = False) -> int:
        self._enter("delete_node_pods")
        gone = [p for p in self.pods if p["spec"]["nodeName"] == node
                and (not evicted_only or evicted_by_out_of_service(p))]
        self.pods = [p for p in self.pods if not any(p is g for g in gone)]
        return len(gone)

    def delete_node_volume_attachments(self, node: str) -> int:
        self._enter("delete_node_volume_attachments")
        gone = [v for v in self.volume_attachments if v["spec"]["nodeName"] == node]
        self.volume_attachments = [v for v in self.volume_attachments if v["spec"]["nodeName"] != node]
        return len(gone)

    def server_version(self) -> tuple[int, int]:
        self._enter("server_version")
        return self.version

    def agent_writes_policy_present(self) -> bool:
        self._enter("agent_writes_policy_present")
        return self.agent_writes_policy

    def create_event(self, namespace: str, body: JSON) -> None:
        self._enter("create_event")
        self.events.append((namespace, copy.deepcopy(body)))

    def lease_store(self, name: str) -> FakeLease:
        self._enter("lease_store")
        return self.leases.setdefault(name, FakeLease())


def make_reconciler(kube: FakeControllerKube, clock: Clock, *, leading: bool = True) -> Reconciler:
    """The real `Reconciler` over `kube`, with its views synced once from it (no watch
    threads: each test decides when the views catch up, with `sync`)."""
    settings = ControllerSettings()
    metrics = ControllerMetrics()
    cfg = machine_config(settings, OrderKey.of(KEY.public_key()))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-peers")
    actor = Actor(kube, PeerClient(b"test-secret", clock=clock), KEY, order_ttl_s=settings.order_ttl_s,
                  peer_timeout_s=settings.peer_timeout_s, fence_agent_command="",
                  fence_agent_timeout_s=settings.fence_agent_timeout_s, metrics=metrics, pool=pool)
    informers = {kind: Informer(kube, kind) for kind in Kind}
    events = EventRecorder(kube, clock, settings.event_namespace, "test", controller=names.CONTROLLER_COMPONENT)
    reporter = Reporter(metrics, events, cfg, informers[Kind.NODES].get)
    reconciler = Reconciler(settings, kube, actor, lambda: leading, clock, cfg, informers, ClusterFacts(),
                            reporter, pool)
    sync(reconciler)
    return reconciler


def sync(reconciler: Reconciler) -> None:
    """Bring the reconciler's views up to date with the fake API server (a fresh list)."""
    for kind, informer in reconciler.informers.items():
        listing = reconciler.kube.list(kind)
        informer.replace(listing.items, listing.resource_version)
