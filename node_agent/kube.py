"""Every Kubernetes API call the agent makes, in one place, each with a timeout.

The agent reads and writes only these objects (its RBAC follows from this list):

| call                  | object                                                    | verb         |
|-----------------------|-----------------------------------------------------------|--------------|
| `read_order_token`    | noderemediations.nodewarden.io/<node> (cluster-scoped)    | get          |
| `report_fence`        | noderemediations.nodewarden.io/<node>/status              | patch (merge)|
| `renew_lease`         | leases.coordination.k8s.io <namespace>/nodewarden-agent-<node> | patch, create |
| `read_node`           | nodes/<node>                                              | get          |
| `annotate_node`       | nodes/<node> (metadata.annotations only)                  | patch (merge)|
| `list_peers`          | nodes (from the API server's cache: resourceVersion=0)    | list         |

Failures are `core.kube.KubeError`s. Edge cases: a missing NodeRemediation (404) means
"no order"; a missing Lease is created (and a create that loses a race patches again).
`AgentApi` is the protocol; `node_agent.kube_fake.FakeAgentApi` is its fake.

The calls go through the official client's `ApiClient` (its credentials, TLS, request
serialisation and `ApiException`s) but not through its generated API-group classes:
`CoreV1Api` alone is a module of 400-odd pydantic-validated methods that costs about
20 MiB of memory once built, more than the rest of the agent. Answers are read as plain
JSON (`"object"`), so no model classes are built either.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import config
from kubernetes.client import ApiClient, Configuration

from core import names
from core.clock import parse_rfc3339, rfc3339_micro
from core.kube import AlreadyExists, NotFound, call

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


def connect(kubeconfig: str | None) -> ApiClient:
    """The official client's ApiClient, with credentials from `kubeconfig`, else
    $KUBECONFIG, else the in-cluster service account (as `core.kube.load_kube`, without
    building the API-group classes the agent does not use)."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    configuration = Configuration()
    if path:
        config.load_kube_config(config_file=path, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.retries = False  # the decision loop decides about retries
    return ApiClient(configuration)


_NODE = "/api/v1/nodes/{name}"
_NODES = "/api/v1/nodes"
_LEASE = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
_REMEDIATION = f"/apis/{names.GROUP}/{names.VERSION}/{names.PLURAL}/{{name}}"
_JSON_ANSWER = {"2XX": "object"}


class KubeAgentApi:
    """`AgentApi` over the official client's `ApiClient`."""

    def __init__(self, api_client: ApiClient) -> None:
        self._client = api_client

    def close(self) -> None:
        self._client.close()

    def _request(
        self,
        method: str,
        path: str,
        path_params: dict[str, str],
        timeout_s: float,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = self._client.param_serialize(
            method=method,
            resource_path=path,
            path_params=path_params,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )

        def send() -> Any:
            response = self._client.call_api(*request, _request_timeout=_timeout(timeout_s))
            response.read()
            return self._client.response_deserialize(response, _JSON_ANSWER).data

        return call(send)

    def read_order_token(self, node: str, timeout_s: float) -> str | None:
        try:
            obj = self._request("GET", _REMEDIATION, {"name": node}, timeout_s)
        except NotFound:
            return None
        return order_token_of(obj)

    def report_fence(self, node: str, report: dict[str, Any], timeout_s: float) -> None:
        self._request(
            "PATCH",
            _REMEDIATION + "/status",
            {"name": node},
            timeout_s,
            body={"status": {"agentReport": report}},
            content_type=MERGE_PATCH,
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
        where = {"namespace": namespace, "name": name}
        try:
            self._request("PATCH", _LEASE, where, timeout_s, body={"spec": spec}, content_type=MERGE_PATCH)
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
            self._request(
                "POST", _LEASES, {"namespace": namespace}, timeout_s, body=body,
                content_type="application/json",
            )
        except AlreadyExists:
            self._request("PATCH", _LEASE, where, timeout_s, body={"spec": spec}, content_type=MERGE_PATCH)

    def read_node(self, node: str, timeout_s: float) -> NodeFacts:
        return node_facts(self._request("GET", _NODE, {"name": node}, timeout_s))

    def annotate_node(self, node: str, annotations: dict[str, str], timeout_s: float) -> None:
        self._request(
            "PATCH",
            _NODE,
            {"name": node},
            timeout_s,
            body={"metadata": {"annotations": annotations}},
            content_type=MERGE_PATCH,
        )

    def list_peers(self, timeout_s: float) -> list[PeerEntry]:
        result = self._request("GET", _NODES, {}, timeout_s, query=[("resourceVersion", "0")])
        peers = []
        for item in _dict(result).get("items") or []:
            metadata = _dict(_dict(item).get("metadata"))
            endpoint = _dict(metadata.get("annotations")).get(names.ANN_PEER_ENDPOINT)
            if isinstance(endpoint, str) and endpoint and isinstance(metadata.get("name"), str):
                control_plane = names.LABEL_CONTROL_PLANE in _dict(metadata.get("labels"))
                peers.append(PeerEntry(metadata["name"], endpoint, control_plane))
        return peers


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def order_token_of(obj: Any) -> str | None:
    """status.fence.order of a NodeRemediation (a dict), if it is a string."""
    fence = _dict(_dict(_dict(obj).get("status")).get("fence"))
    token = fence.get("order")
    return token if isinstance(token, str) and token else None


def node_facts(node: Any) -> NodeFacts:
    """What the agent needs from its Node object (a dict as the API sent it)."""
    metadata = _dict(_dict(node).get("metadata"))
    status = _dict(_dict(node).get("status"))
    boot_id = _dict(status.get("nodeInfo")).get("bootID") or None
    internal_ip = next(
        (a.get("address") for a in status.get("addresses") or []
         if isinstance(a, dict) and a.get("type") == "InternalIP"),
        None,
    )
    heartbeat = next(
        (parse_rfc3339(c.get("lastHeartbeatTime")) for c in status.get("conditions") or []
         if isinstance(c, dict) and c.get("type") == "Ready"),
        None,
    )
    return NodeFacts(
        name=str(metadata.get("name") or ""),
        boot_id=boot_id if isinstance(boot_id, str) else None,
        control_plane=names.LABEL_CONTROL_PLANE in _dict(metadata.get("labels")),
        annotations={k: v for k, v in _dict(metadata.get("annotations")).items() if isinstance(v, str)},
        internal_ip=internal_ip if isinstance(internal_ip, str) else None,
        ready_heartbeat_at=heartbeat,
    )
