"""The Kubernetes resources nodewarden lists and watches, once for every side.

Each `ApiResource` says where a resource lives in the API: group ("" for the core group),
version, plural and whether it is namespaced, and, for a namespace that is fixed by
Kubernetes rather than by nodewarden's settings, that namespace. `name` is how views, logs
and metrics call it.

Each side lists and watches its own subset, as an enum of these names that subclasses
`Watched` (so `kind.api` is the resource's entry here): the webhook's `webhook.kube.Resource`
(Nodes, NodeRemediations, the pause switch) and the controller's `controller.kube.Kind`
(those and the kubelets' and the agents' Leases). Each side's access layer calls the
client method that serves the entry; `tests/core/test_resources.py` checks that the two
agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core import names


@dataclass(frozen=True)
class ApiResource:
    name: str  # how views, logs and metrics call it
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    namespace: str = ""  # fixed by Kubernetes; "" when namespaced in nodewarden's own namespace

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


NODES = ApiResource("nodes", "", "v1", "nodes", namespaced=False)
REMEDIATIONS = ApiResource("noderemediations", names.GROUP, names.VERSION, names.PLURAL, namespaced=False)
NODE_LEASES = ApiResource("node-leases", "coordination.k8s.io", "v1", "leases", namespaced=True,
                          namespace=names.NODE_LEASE_NAMESPACE)  # the kubelets' Leases, named after their nodes
AGENT_LEASES = ApiResource("agent-leases", "coordination.k8s.io", "v1", "leases",
                           namespaced=True)  # the agents' heartbeats, in nodewarden's namespace
PAUSE = ApiResource("pause", "", "v1", "configmaps", namespaced=True)  # the pause switch: one ConfigMap, by name

ALL = (NODES, REMEDIATIONS, NODE_LEASES, AGENT_LEASES, PAUSE)
BY_NAME = {resource.name: resource for resource in ALL}


class Watched(enum.StrEnum):
    """Base of each side's enum of what it lists and watches; members' values are names
    from this table."""

    @property
    def api(self) -> ApiResource:
        return BY_NAME[self.value]
