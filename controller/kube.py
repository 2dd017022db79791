"""Every Kubernetes API call the controller makes, behind one protocol (`ControllerKube`).

`RealControllerKube` implements it on top of `core.kube` (its timeouts and error tree);
`tests.controller.fakes.FakeControllerKube` is the in-memory twin for unit tests.

Objects cross this boundary as plain dicts. Lists and watches cover four kinds: Nodes,
NodeRemediations, the kubelets' Leases (`kube-node-lease`) and nodewarden's own Leases
(agents' heartbeats), plus the pause-switch ConfigMap. Writes: the remediation's
`/status` (merge patch guarded by resourceVersion), the out-of-service taint
(read-modify-write, see `core.kube.ensure_node_taint`), force deletion of a node's pods
and VolumeAttachments, Events, and the leader Lease. Reads: whether the admission policy
that restricts agents' writes (and its binding) exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from kubernetes import client

from controller.eviction import terminating
from controller.leader import LeaseStore
from core import names, resources
from core.kube import (
    JSON,
    Kube,
    Listing,
    NotFound,
    WatchEvent,
    call,
    ensure_node_taint,
    raw_list,
    raw_watch,
)
from core.resources import Watched

OOS = (names.OUT_OF_SERVICE_TAINT_KEY, names.OUT_OF_SERVICE_TAINT_VALUE, names.OUT_OF_SERVICE_TAINT_EFFECT)
FENCING = (names.FENCING_TAINT_KEY, names.FENCING_TAINT_VALUE, names.FENCING_TAINT_EFFECT)


class Kind(Watched):
    """What the controller lists and watches (each one's API: `core.resources`)."""

    NODES = resources.NODES.name
    REMEDIATIONS = resources.REMEDIATIONS.name
    NODE_LEASES = resources.NODE_LEASES.name
    AGENT_LEASES = resources.AGENT_LEASES.name
    PAUSE = resources.PAUSE.name


class ControllerKube(Protocol):
    """The calls the controller makes (`loop`, `reconcile`, `act`, `informer`, the leader
    election and the Event recorder), and nothing else."""

    pause_configmap: str  # the name of the operators' pause-switch ConfigMap (Kind.PAUSE)

    def list(self, kind: Kind) -> Listing:
        """All objects of `kind` and the list's resourceVersion."""

    def watch(self, kind: Kind, resource_version: str, timeout_s: float) -> Iterator[WatchEvent]:
        """Changes after `resource_version`; ends after about `timeout_s` (WatchExpired on 410)."""

    def get_remediation(self, name: str) -> JSON:
        """The NodeRemediation `name`, read now (NotFound)."""

    def patch_remediation_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        """Merge-patch `status` into /status, guarded by `resource_version` (Conflict, NotFound)."""

    def set_out_of_service_taint(self, node: str, present: bool) -> bool:
        """Add or remove nodewarden's out-of-service taint; True if the Node changed."""

    def set_fencing_taint(self, node: str, present: bool, time_added: str | None = None) -> bool:
        """Add (with `timeAdded`, replacing one without) or remove nodewarden's fencing
        taint; True if the Node changed."""

    def delete_node_pods(self, node: str, terminating_only: bool = False) -> int:
        """Force-delete every pod bound to `node` (`terminating_only`: only the terminating
        ones, pod GC's rule, controller/eviction.py); how many were deleted."""

    def delete_node_volume_attachments(self, node: str) -> int:
        """Delete every VolumeAttachment of `node`; how many were deleted."""

    def server_version(self) -> tuple[int, int]:
        """The API server's (major, minor) version."""

    def agent_writes_policy_present(self) -> bool:
        """The admission policy restricting agents' writes, and its binding, both exist."""

    def create_event(self, namespace: str, body: JSON) -> None:
        """Create an events.k8s.io/v1 Event."""

    def lease_store(self, name: str) -> LeaseStore:
        """The leader Lease `name` in the controller's namespace."""


class RealControllerKube:
    """`ControllerKube` over the official client (see the module docstring)."""

    def __init__(self, kube: Kube, namespace: str, pause_configmap: str = "nodewarden-control") -> None:
        self.kube = kube
        self.namespace = namespace
        self.pause_configmap = pause_configmap

    # -- list and watch -----------------------------------------------------------------

    def _list_call(self, kind: Kind) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        k = self.kube
        if kind is Kind.NODES:
            return k.core.list_node, (), {}
        if kind is Kind.REMEDIATIONS:
            return k.custom.list_cluster_custom_object, (
                resources.REMEDIATIONS.group, resources.REMEDIATIONS.version, resources.REMEDIATIONS.plural), {}
        if kind is Kind.NODE_LEASES:
            return k.coordination.list_namespaced_lease, (resources.NODE_LEASES.namespace,), {}
        if kind is Kind.AGENT_LEASES:
            return k.coordination.list_namespaced_lease, (self.namespace,), {}
        return (k.core.list_namespaced_config_map, (self.namespace,),
                {"field_selector": f"metadata.name={self.pause_configmap}"})

    def list(self, kind: Kind) -> Listing:
        fn, args, kwargs = self._list_call(kind)
        return raw_list(self.kube, fn, *args, **kwargs)

    def watch(self, kind: Kind, resource_version: str, timeout_s: float) -> Iterator[WatchEvent]:
        fn, args, kwargs = self._list_call(kind)
        return raw_watch(self.kube, fn, resource_version, timeout_s, *args, **kwargs)

    # -- the remediation ---------------------------------------------------------------

    def get_remediation(self, name: str) -> JSON:
        result: Any = call(self.kube.custom.get_cluster_custom_object, names.GROUP, names.VERSION,
                           names.PLURAL, name, _request_timeout=self.kube.timeout)
        return dict(result)

    def patch_remediation_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        result: Any = call(self.kube.custom.patch_cluster_custom_object_status, names.GROUP, names.VERSION,
                           names.PLURAL, name, patch, _request_timeout=self.kube.timeout)
        return dict(result)

    # -- recovery ----------------------------------------------------------------------

    def set_out_of_service_taint(self, node: str, present: bool) -> bool:
        key, value, effect = OOS
        return ensure_node_taint(self.kube, node, key, value, effect, present)

    def set_fencing_taint(self, node: str, present: bool, time_added: str | None = None) -> bool:
        key, value, effect = FENCING
        return ensure_node_taint(self.kube, node, key, value, effect, present, time_added)

    def delete_node_pods(self, node: str, terminating_only: bool = False) -> int:
        """Force-delete (grace 0) every pod bound to `node` (`terminating_only`: only the
        terminating ones, pod GC's rule, controller/eviction.py); returns how many."""
        pods: Any = call(self.kube.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}",
                         _request_timeout=self.kube.timeout)
        deleted = 0
        for pod in pods.items or []:
            if terminating_only and not terminating(
                    {"metadata": {"deletionTimestamp": pod.metadata.deletion_timestamp}}):
                continue
            try:
                call(self.kube.core.delete_namespaced_pod, pod.metadata.name, pod.metadata.namespace,
                     grace_period_seconds=0,
                     body=client.V1DeleteOptions(grace_period_seconds=0,
                                                 preconditions=client.V1Preconditions(uid=pod.metadata.uid)),
                     _request_timeout=self.kube.timeout)
                deleted += 1
            except NotFound:
                pass
        return deleted

    def delete_node_volume_attachments(self, node: str) -> int:
        attachments: Any = call(self.kube.storage.list_volume_attachment, _request_timeout=self.kube.timeout)
        deleted = 0
        for va in attachments.items or []:
            if va.spec.node_name != node:
                continue
            try:
                # Not deserialized: an attachment deleted at once (no finalizer) is answered
                # with a Status, which the client cannot read as a VolumeAttachment.
                call(self.kube.storage.delete_volume_attachment, va.metadata.name,
                     _preload_content=False, _request_timeout=self.kube.timeout)
                deleted += 1
            except NotFound:
                pass
        return deleted

    def server_version(self) -> tuple[int, int]:
        info: Any = call(self.kube.version.get_code, _request_timeout=self.kube.timeout)
        minor = "".join(ch for ch in str(info.minor) if ch.isdigit()) or "0"
        return int(str(info.major)), int(minor)

    def agent_writes_policy_present(self) -> bool:
        """Both the ValidatingAdmissionPolicy `nodewarden-agent-writes` and its binding exist."""
        try:
            call(self.kube.admission.read_validating_admission_policy, names.AGENT_WRITES_POLICY,
                 _request_timeout=self.kube.timeout)
            call(self.kube.admission.read_validating_admission_policy_binding, names.AGENT_WRITES_POLICY,
                 _request_timeout=self.kube.timeout)
        except NotFound:
            return False
        return True

    def create_event(self, namespace: str, body: JSON) -> None:
        call(self.kube.events.create_namespaced_event, namespace, body, _request_timeout=self.kube.timeout)

    # -- the leader Lease --------------------------------------------------------------

    def lease_store(self, name: str) -> LeaderLease:
        return LeaderLease(self.kube, self.namespace, name)


class LeaderLease:
    """`leader.LeaseStore` over the coordination API."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name

    def _raw(self, fn: Any, *args: Any) -> JSON:
        resp: Any = call(fn, *args, _preload_content=False, _request_timeout=self.kube.timeout)
        try:
            return dict(json.loads(resp.data))
        finally:
            resp.release_conn()

    def get(self) -> JSON:
        return self._raw(self.kube.coordination.read_namespaced_lease, self.name, self.namespace)

    def create(self, spec: JSON) -> JSON:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        return self._raw(self.kube.coordination.create_namespaced_lease, self.namespace, body)

    def update(self, spec: JSON, resource_version: str) -> JSON:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": resource_version}, "spec": spec}
        return self._raw(self.kube.coordination.replace_namespaced_lease, self.name, self.namespace, body)
