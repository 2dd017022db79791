"""Every Kubernetes API call the agent makes, in one place, each with a timeout.

The agent reads and writes only these objects (its RBAC follows from this list):

| call                  | object                                                    | verb         |
|-----------------------|-----------------------------------------------------------|--------------|
| `read_order_token`    | noderemediations.nodewarden.io/<node> (cluster-scoped)    | get          |
| `report_fence`        | noderemediations.nodewarden.io/<node>/status              | patch (merge)|
| `renew_lease`         | leases.coordination.k8s.io <namespace>/nodewarden-agent-<node> | patch, create |
| `read_node`           | nodes/<node>                                              | get          |
| `annotate_node`       | nodes/<node> (metadata.annotations only)                  | patch (merge)|
| `list_peers`          | nodes                                                     | list         |

Failures are `core.kube.KubeError`s. Edge cases: a missing NodeRemediation (404) means
"no order"; a missing Lease is created (and a create that loses a race patches again).
`AgentApi` is the protocol; `node_agent.kube_fake.FakeAgentApi` is its fake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from core import names
from core.clock import parse_rfc3339, rfc3339_micro
from core.kube import AlreadyExists, Kube, NotFound, call

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class NodeFacts:
    name: str
    boot_id: str | None
    control_plane: bool
    annotations: dict[str, str] = field(default_factory=dict)
    internal_ip: str | None = None
    ready_heartbeat_at: float | None = None  # Ready condition's lastHeartbeatTime


@dataclass(frozen=True)
class PeerEntry:
    name: str
    endpoint: str
    control_plane: bool


class AgentApi(Protocol):
    def read_order_token(self, node: str, timeout_s: float) -> str | None: ...

    def report_fence(self, node: str, report: dict[str, Any], timeout_s: float) -> None: ...

    def renew_lease(
        self, namespace: str, node: str, now: float, duration_s: float, timeout_s: float
    ) -> None: ...

    def read_node(self, node: str, timeout_s: float) -> NodeFacts: ...

    def annotate_node(self, node: str, annotations: dict[str, str], timeout_s: float) -> None: ...

    def list_peers(self, timeout_s: float) -> list[PeerEntry]: ...


def _timeout(timeout_s: float) -> tuple[float, float]:
    return (min(timeout_s, 3.0), timeout_s)


def lease_holder(node: str) -> str:
    return f"{names.AGENT_COMPONENT}/{node}"


class KubeAgentApi:
    """`AgentApi` over the official client (through `core.kube`)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def read_order_token(self, node: str, timeout_s: float) -> str | None:
        try:
            obj: Any = call(
                self._kube.custom.get_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                names.PLURAL,
                node,
                _request_timeout=_timeout(timeout_s),
            )
        except NotFound:
            return None
        return order_token_of(obj)

    def report_fence(self, node: str, report: dict[str, Any], timeout_s: float) -> None:
        call(
            self._kube.custom.patch_cluster_custom_object_status,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            node,
            {"status": {"agentReport": report}},
            _request_timeout=_timeout(timeout_s),
            _content_type=MERGE_PATCH,
        )

    def renew_lease(
        self, namespace: str, node: str, now: float, duration_s: float, timeout_s: float
    ) -> None:
        name = names.agent_lease_name(node)
        spec = {
            "holderIdentity": lease_holder(node),
            "leaseDurationSeconds": max(1, math.ceil(duration_s)),
            "renewTime": rfc3339_micro(now),
        }
        coordination = self._kube.coordination
        try:
            call(
                coordination.patch_namespaced_lease,
                name,
                namespace,
                {"spec": spec},
                _request_timeout=_timeout(timeout_s),
                _content_type=MERGE_PATCH,
            )
            return
        except NotFound:
            pass
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/component": "agent", "app.kubernetes.io/name": "nodewarden"},
            },
            "spec": {**spec, "acquireTime": rfc3339_micro(now)},
        }
        try:
            call(
                coordination.create_namespaced_lease,
                namespace,
                body,
                _request_timeout=_timeout(timeout_s),
            )
        except AlreadyExists:
            call(
                coordination.patch_namespaced_lease,
                name,
                namespace,
                {"spec": spec},
                _request_timeout=_timeout(timeout_s),
                _content_type=MERGE_PATCH,
            )

    def read_node(self, node: str, timeout_s: float) -> NodeFacts:
        obj: Any = call(self._kube.core.read_node, node, _request_timeout=_timeout(timeout_s))
        return node_facts(obj)

    def annotate_node(self, node: str, annotations: dict[str, str], timeout_s: float) -> None:
        call(
            self._kube.core.patch_node,
            node,
            {"metadata": {"annotations": annotations}},
            _request_timeout=_timeout(timeout_s),
            _content_type=MERGE_PATCH,
        )

    def list_peers(self, timeout_s: float) -> list[PeerEntry]:
        result: Any = call(self._kube.core.list_node, _request_timeout=_timeout(timeout_s))
        peers = []
        for item in result.items or []:
            annotations = item.metadata.annotations or {}
            endpoint = annotations.get(names.ANN_PEER_ENDPOINT)
            if endpoint:
                labels = item.metadata.labels or {}
                peers.append(
                    PeerEntry(item.metadata.name, endpoint, names.LABEL_CONTROL_PLANE in labels)
                )
        return peers


def order_token_of(obj: Any) -> str | None:
    """status.fence.order of a NodeRemediation (a dict), if it is a string."""
    if not isinstance(obj, dict):
        return None
    fence = (obj.get("status") or {}).get("fence") or {}
    token = fence.get("order") if isinstance(fence, dict) else None
    return token if isinstance(token, str) and token else None


def node_facts(node: Any) -> NodeFacts:
    labels = node.metadata.labels or {}
    status = node.status
    boot_id = None
    internal_ip = None
    heartbeat = None
    if status is not None:
        if status.node_info is not None:
            boot_id = status.node_info.boot_id or None
        for address in status.addresses or []:
            if address.type == "InternalIP":
                internal_ip = address.address
                break
        for condition in status.conditions or []:
            if condition.type == "Ready":
                heartbeat = parse_rfc3339(condition.last_heartbeat_time)
    return NodeFacts(
        name=node.metadata.name,
        boot_id=boot_id,
        control_plane=names.LABEL_CONTROL_PLANE in labels,
        annotations=dict(node.metadata.annotations or {}),
        internal_ip=internal_ip,
        ready_heartbeat_at=heartbeat,
    )
