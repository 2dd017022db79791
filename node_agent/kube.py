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

The heartbeat Lease also carries, as annotations, the fingerprints of the order keys the
agent trusts and its clock offset against the API server, measured from the `Date` header
of every answer (`node_agent.skew`): the controller checks both before it counts on the
agent (docs/fencing-protocol.md).

Failures are `core.kube_errors.KubeError`s. Edge cases: a missing NodeRemediation (404) means
"no order"; a missing Lease is created (and a create that loses a race patches again).
`AgentApi` is the protocol; `tests.node_agent.fake_kube.FakeAgentApi` is its fake.

The calls go through the official client's `Configuration` (credentials, TLS, token
refresh) and its REST layer (`kubernetes.client.rest`: urllib3 with the configuration's
TLS settings, proxy and timeouts; non-2xx answers raise its `ApiException`), but not
through `ApiClient` or the generated API-group classes: `ApiClient` imports every model
class (pydantic), and `kubernetes.config`'s kubeconfig loader brings requests and oauthlib
along, about 11 MiB together, a third of the agent. Answers are read as plain JSON.
In a pod (no kubeconfig) only the client's in-cluster loader is imported; a kubeconfig
loads the full kubeconfig loader, as it must (contexts, exec plugins, client
certificates). `node_agent.lean` keeps the packages' `__init__`s from importing the rest.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from kubernetes.client.configuration import Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTClientObject

from core import names
from core.clock import Clock, RealClock, parse_rfc3339, rfc3339_micro
from core.kube_errors import AlreadyExists, NotFound, Unavailable, call
from core.remediation_status import parse_status
from node_agent.settings import POD_SERVICE_ACCOUNT_DIR
from node_agent.skew import OffsetEstimator, parse_http_date

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


def connect(kubeconfig: str | None, service_account_dir: str = POD_SERVICE_ACCOUNT_DIR) -> Configuration:
    """The official client's Configuration, with credentials from `kubeconfig`, else
    $KUBECONFIG, else the pod's service account (the API server from
    KUBERNETES_SERVICE_HOST/PORT, `token` and `ca.crt` in `service_account_dir`, the
    token re-read every minute as the client does). Raises the client's
    ConfigException."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    configuration = Configuration()
    if path:
        from kubernetes.config.kube_config import load_kube_config

        load_kube_config(config_file=path, client_configuration=configuration)
    else:
        from kubernetes.config.incluster_config import InClusterConfigLoader

        account = Path(service_account_dir)
        InClusterConfigLoader(
            token_filename=str(account / "token"), cert_filename=str(account / "ca.crt")
        ).load_and_set(configuration)
    configuration.retries = False  # the decision loop decides about retries
    return configuration


_NODE = "/api/v1/nodes/{name}"
_NODES = "/api/v1/nodes"
_LEASE = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
_REMEDIATION = f"/apis/{names.GROUP}/{names.VERSION}/{names.PLURAL}/{{name}}"
USER_AGENT = f"{names.AGENT_COMPONENT}/python"


class KubeAgentApi:
    """`AgentApi` over the official client's REST layer."""

    def __init__(self, configuration: Configuration, clock: Clock | None = None,
                 key_fingerprints: tuple[str, ...] = ()) -> None:
        self._configuration = configuration
        self._rest = RESTClientObject(configuration)
        self._clock = clock or RealClock()
        self._fingerprints = key_fingerprints
        self.offset = OffsetEstimator()  # from every answer's Date header

    def lease_annotations(self) -> dict[str, str]:
        """What the heartbeat Lease publishes about the evidence rules' assumptions."""
        out = {names.ANN_ORDER_KEY_FINGERPRINTS: ",".join(self._fingerprints)}
        measured = self.offset.estimate()
        if measured is not None:
            out[names.ANN_CLOCK_OFFSET_S] = f"{measured[0]:.3f}"
            out[names.ANN_CLOCK_OFFSET_ERROR_S] = f"{measured[1]:.3f}"
        return out

    def close(self) -> None:
        self._rest.pool_manager.clear()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        # As ApiClient does for its one auth setting; the call runs the credentials'
        # refresh hook (a re-read token file, an exec plugin). Client certificates are
        # the REST layer's.
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        return headers

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
        url = self._configuration.host + path.format(
            **{key: quote(value, safe="") for key, value in path_params.items()}
        )
        if query:
            url += "?" + urlencode(query)

        def send() -> Any:
            sent = self._clock.now()
            response = self._rest.request(
                method, url, headers=self._headers(content_type), body=body,
                _request_timeout=_timeout(timeout_s),
            )
            date = parse_http_date(response.getheader("Date"))
            if date is not None:
                self.offset.sample(sent, self._clock.now(), date)
            data = response.read()
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response)
            try:
                return json.loads(data) if data else None
            except ValueError:
                raise Unavailable(response.status, "NotJSON", f"{method} {path}: the answer is not JSON") from None

        return call(send)

    def read_order_token(self, node: str, timeout_s: float) -> str | None:
        try:
            obj = self._request("GET", _REMEDIATION, {"name": node}, timeout_s)
        except NotFound:
            return None
        return order_token_of(obj)

    def report_fence(self, node: str, report: dict[str, Any], timeout_s: float) -> None:
        """Merge `report` (an `AgentReport.to_json()`) into `status.agentReport`."""
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
        annotations = self.lease_annotations()
        patch = {"metadata": {"annotations": annotations}, "spec": spec}
        try:
            self._request("PATCH", _LEASE, where, timeout_s, body=patch, content_type=MERGE_PATCH)
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
                "annotations": annotations,
            },
            "spec": {**spec, "acquireTime": rfc3339_micro(now)},
        }
        try:
            self._request(
                "POST", _LEASES, {"namespace": namespace}, timeout_s, body=body,
                content_type="application/json",
            )
        except AlreadyExists:
            self._request("PATCH", _LEASE, where, timeout_s, body=patch, content_type=MERGE_PATCH)

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
    fence = parse_status(obj, frozenset({"fence"})).fence
    return (fence.order or None) if fence is not None else None


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
