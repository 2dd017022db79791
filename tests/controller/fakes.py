"""`FakeControllerKube`: an in-memory `controller.kube.ControllerKube` for the controller's
unit tests, and `FakeLease`, the leader Lease it hands out.

It keeps the behaviours the controller depends on: resourceVersions that grow on every
write, 409 Conflict on a stale resourceVersion (the remediation's status, the Lease),
404 NotFound, JSON merge patch of `/status` touching nothing else, the out-of-service
taint added or removed without touching other taints, and list + watch per `Kind`
(the objects, their resourceVersions and watch events live in a `tests.fake_api.FakeStore`).
`calls` counts calls by method; `unavailable = True` makes every call fail as if the API
server were down; `before_status_patch` runs before every status patch, so a test can
let another writer (the webhook, an agent) get in first, as on a real cluster.

`make_reconciler` builds the real `controller.reconcile.Reconciler` over it.
"""

from __future__ import annotations

import concurrent.futures
import copy
from collections.abc import Callable, Iterator
from typing import Any

from controller.act import Actor
from controller.eviction import terminating
from controller.informer import Informer
from controller.kube import FENCING, OOS, Kind
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
from tests.fake_api import FakeStore, OnFakeStore


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


class FakeControllerKube(OnFakeStore[Kind]):
    def __init__(self, pause_configmap: str = "nodewarden-control", version: tuple[int, int] = (1, 30)) -> None:
        self.pause_configmap = pause_configmap
        self.version = version
        self.agent_writes_policy = True
        self.before_status_patch: Callable[[str], object] | None = None
        self.events: list[tuple[str, JSON]] = []
        self.leases: dict[str, FakeLease] = {}
        self.pods: list[JSON] = []
        self.volume_attachments: list[JSON] = []
        self._api: FakeStore[Kind] = FakeStore(Kind)

    # -- the test's side -------------------------------------------------------------------

    def put(self, kind: Kind, obj: JSON) -> JSON:
        """Create or replace an object as another party would (no precondition)."""
        return self._api.put(kind, obj)

    def delete(self, kind: Kind, name: str) -> None:
        self._api.delete(kind, name)

    def object(self, kind: Kind, name: str) -> JSON:
        obj = self._api.find(kind, name)
        if obj is None:
            raise KeyError(name)
        return obj

    def write_status(self, name: str, patch: JSON) -> JSON:
        """Another writer's status merge patch (no resourceVersion: it always lands)."""
        with self._api.lock:
            obj = self.object(Kind.REMEDIATIONS, name)
            return self._api.put(Kind.REMEDIATIONS,
                                 {**obj, "status": merge_patch(obj.get("status") or {}, patch)})

    def add_pod(self, name: str, node: str, namespace: str = "default",
                tolerations: list[dict[str, Any]] | None = None, terminating: bool = False) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if terminating:
            meta["deletionTimestamp"] = "2027-01-15T08:00:00Z"
        self.pods.append({"metadata": meta, "spec": {"nodeName": node, "tolerations": list(tolerations or [])}})

    def add_volume_attachment(self, name: str, node: str) -> None:
        self.volume_attachments.append({"metadata": {"name": name}, "spec": {"nodeName": node}})

    # -- ControllerKube --------------------------------------------------------------------

    def list(self, kind: Kind) -> Listing:
        self._api.enter(f"list:{kind}")
        return self._api.list(kind)

    def watch(self, kind: Kind, resource_version: str, timeout_s: float) -> Iterator[WatchEvent]:
        self._api.enter(f"watch:{kind}")
        yield from self._api.watch(kind, resource_version, timeout_s)

    def get_remediation(self, name: str) -> JSON:
        self._api.enter("get_remediation")
        return self._api.get(Kind.REMEDIATIONS, name, f'{names.PLURAL} "{name}" not found')

    def patch_remediation_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        self._api.enter("patch_remediation_status")
        if self.before_status_patch is not None:
            self.before_status_patch(name)
        with self._api.lock:
            obj = self._api.get(Kind.REMEDIATIONS, name, f'{names.PLURAL} "{name}" not found')
            self._api.check_version(obj, resource_version)
            return self._api.put(Kind.REMEDIATIONS,
                                 {**obj, "status": merge_patch(obj.get("status") or {}, status)})

    def set_out_of_service_taint(self, node: str, present: bool) -> bool:
        self._api.enter("set_out_of_service_taint")
        return self._set_taint(node, OOS, present, None)

    def set_fencing_taint(self, node: str, present: bool, time_added: str | None = None) -> bool:
        self._api.enter("set_fencing_taint")
        return self._set_taint(node, FENCING, present, time_added)

    def _set_taint(self, node: str, taint: tuple[str, str, str], present: bool, time_added: str | None) -> bool:
        """core.kube.ensure_node_taint's rules, on the fake's Node."""
        key, value, effect = taint
        with self._api.lock:
            obj = self._api.get(Kind.NODES, node, f'nodes "{node}" not found')
            taints = list((obj.get("spec") or {}).get("taints") or [])
            ours = [t for t in taints if t.get("key") == key and t.get("effect") == effect]
            if present and any(t.get("value") == value and (time_added is None or t.get("timeAdded"))
                               for t in ours):
                return False  # already there
            if not present and not ours:
                return False  # already gone
            taints = [t for t in taints if not (t.get("key") == key and t.get("effect") == effect)]
            if present:
                taints.append({"key": key, "value": value, "effect": effect,
                               **({"timeAdded": time_added} if time_added else {})})
            self._api.put(Kind.NODES, {**obj, "spec": {**(obj.get("spec") or {}), "taints": taints}})
            return True

    def delete_node_pods(self, node: str, terminating_only: bool = False) -> int:
        self._api.enter("delete_node_pods")
        gone = [p for p in self.pods if p["spec"]["nodeName"] == node
                and (not terminating_only or terminating(p))]
        self.pods = [p for p in self.pods if not any(p is g for g in gone)]
        return len(gone)

    def delete_node_volume_attachments(self, node: str) -> int:
        self._api.enter("delete_node_volume_attachments")
        gone = [v for v in self.volume_attachments if v["spec"]["nodeName"] == node]
        self.volume_attachments = [v for v in self.volume_attachments if v["spec"]["nodeName"] != node]
        return len(gone)

    def server_version(self) -> tuple[int, int]:
        self._api.enter("server_version")
        return self.version

    def agent_writes_policy_present(self) -> bool:
        self._api.enter("agent_writes_policy_present")
        return self.agent_writes_policy

    def create_event(self, namespace: str, body: JSON) -> None:
        self._api.enter("create_event")
        self.events.append((namespace, copy.deepcopy(body)))

    def lease_store(self, name: str) -> FakeLease:
        self._api.enter("lease_store")
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
