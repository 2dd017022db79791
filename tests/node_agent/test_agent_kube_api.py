"""KubeAgentApi, the agent's only door to the API, against the emulated API server with
the official client and the agent's own identity: every call the agent makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from core import names
from core.kube import NotFound, Unauthorized, Unavailable, load_kube
from node_agent.kube import KubeAgentApi, connect, node_facts

ROOT = Path(__file__).resolve().parents[2]
sim_server = pytest.importorskip("sim.apiserver.server")


@pytest.fixture(scope="module")
def admin(api_server: Any, admin_kubeconfig: Path) -> Any:
    kube = load_kube(str(admin_kubeconfig))
    crd = yaml.safe_load((ROOT / "helm/nodewarden/crds/noderemediations.yaml").read_text())
    ext = client.ApiextensionsV1Api(kube.api_client)
    try:
        ext.create_custom_resource_definition(crd)
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    try:
        kube.core.create_namespace({"metadata": {"name": names.DEFAULT_NAMESPACE}})
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    return kube


@pytest.fixture(scope="module")
def agent_api(api_server: Any, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> KubeAgentApi:
    path = tmp_path_factory.mktemp("agent") / "kubeconfig"
    api_server.write_kubeconfig(path, sim_server.agent_identity("node-1"))
    return KubeAgentApi(connect(str(path)))


def test_no_noderemediation_means_no_order(agent_api: KubeAgentApi) -> None:
    assert agent_api.read_order_token("node-1", 5) is None


def test_lease_is_created_then_renewed(agent_api: KubeAgentApi, admin: Any) -> None:
    agent_api.renew_lease(names.DEFAULT_NAMESPACE, "node-1", 1_700_000_000.0, 45, 5)
    agent_api.renew_lease(names.DEFAULT_NAMESPACE, "node-1", 1_700_000_010.5, 45, 5)
    lease = admin.coordination.read_namespaced_lease(names.agent_lease_name("node-1"), names.DEFAULT_NAMESPACE)
    assert lease.spec.holder_identity == "nodewarden-agent/node-1"
    assert lease.spec.lease_duration_seconds == 45
    assert lease.spec.renew_time.timestamp() == pytest.approx(1_700_000_010.5)


def test_the_heartbeat_lease_publishes_trusted_keys_and_the_measured_clock_offset(
    api_server: Any, admin: Any, tmp_path: Path,
) -> None:
    """The controller checks the evidence rules' assumptions from these (issue 13): the
    agent trusts its key, and its clock's offset against the API server's Date is known."""
    from core.clock import RealClock

    class Behind(RealClock):
        def now(self) -> float:
            return super().now() - 60.0

    path = tmp_path / "kubeconfig"
    api_server.write_kubeconfig(path, sim_server.agent_identity("node-3"))
    api = KubeAgentApi(connect(str(path)), Behind(), ("aaaa", "bbbb"))
    for _ in range(3):
        api.renew_lease(names.DEFAULT_NAMESPACE, "node-3", Behind().now(), 45, 5)
    lease = admin.coordination.read_namespaced_lease(names.agent_lease_name("node-3"), names.DEFAULT_NAMESPACE)
    ann = lease.metadata.annotations
    assert ann[names.ANN_ORDER_KEY_FINGERPRINTS] == "aaaa,bbbb"
    offset, error = float(ann[names.ANN_CLOCK_OFFSET_S]), float(ann[names.ANN_CLOCK_OFFSET_ERROR_S])
    assert 0 <= error <= 0.5 + 1e-3  # a Date header has whole seconds: at most half of one
    assert offset - error <= 60.0 <= offset + error + 0.1  # the server is 60 s ahead of this agent


def test_node_facts_annotations_and_peers(agent_api: KubeAgentApi) -> None:
    facts = agent_api.read_node("node-1", 5)
    assert facts.name == "node-1" and facts.boot_id
    agent_api.annotate_node("node-1", {names.ANN_PEER_ENDPOINT: "http://127.0.0.1:9471"}, 5)
    assert agent_api.read_node("node-1", 5).annotations[names.ANN_PEER_ENDPOINT] == "http://127.0.0.1:9471"
    peers = {p.name: p.endpoint for p in agent_api.list_peers(5)}
    assert peers["node-1"] == "http://127.0.0.1:9471"


def test_order_is_read_and_the_fence_reported_on_the_status(agent_api: KubeAgentApi, admin: Any) -> None:
    custom = admin.custom
    custom.create_cluster_custom_object(
        names.GROUP, names.VERSION, names.PLURAL,
        {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": "node-1"},
         "spec": {"nodeName": "node-1", "strategy": "OutOfServiceTaint", "escalation": "None",
                  "trigger": {"source": "operator", "receivedAt": "2026-01-02T03:04:00Z"}}},
    )
    custom.patch_cluster_custom_object_status(
        names.GROUP, names.VERSION, names.PLURAL, "node-1",
        {"status": {"phase": "Fencing", "fence": {"order": "nwf1.payload.signature"}}},
    )
    assert agent_api.read_order_token("node-1", 5) == "nwf1.payload.signature"
    report = {"fenceStartedAt": "2026-01-02T03:04:05.000000Z", "lastFeedAt": "2026-01-02T03:04:04.500000Z",
              "watchdogTimeoutSeconds": 3.0, "bootId": "b"}
    agent_api.report_fence("node-1", report, 5)
    status = custom.get_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL, "node-1")["status"]
    assert status["agentReport"] == report
    assert status["fence"]["order"] == "nwf1.payload.signature"  # the merge patch kept the rest


def test_node_facts_from_the_json_the_api_sent() -> None:
    node = {
        "metadata": {"name": "cp-1", "labels": {names.LABEL_CONTROL_PLANE: ""},
                     "annotations": {names.ANN_AGENT_VERSION: "0.1.0"}},
        "status": {"nodeInfo": {"bootID": "b-1"},
                   "addresses": [{"type": "Hostname", "address": "cp-1"},
                                 {"type": "InternalIP", "address": "10.0.0.7"}],
                   "conditions": [{"type": "MemoryPressure", "lastHeartbeatTime": "2026-01-02T03:04:00Z"},
                                  {"type": "Ready", "lastHeartbeatTime": "2026-01-02T03:04:05.250000Z"}]},
    }
    facts = node_facts(node)
    assert facts.name == "cp-1" and facts.boot_id == "b-1" and facts.control_plane
    assert facts.internal_ip == "10.0.0.7"
    assert facts.annotations == {names.ANN_AGENT_VERSION: "0.1.0"}
    assert facts.ready_heartbeat_at == pytest.approx(1767323045.25)
    bare = node_facts({"metadata": {"name": "n"}, "status": {"nodeInfo": None, "conditions": [None]}})
    assert (bare.boot_id, bare.internal_ip, bare.ready_heartbeat_at, bare.control_plane) == (None, None, None, False)


def _in_pod(api_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node: str) -> tuple[KubeAgentApi, Path]:
    account = tmp_path / "serviceaccount"
    for key, value in api_server.write_service_account(account, sim_server.agent_identity(node)).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return KubeAgentApi(connect(None, str(account))), account


def test_in_a_pod_the_service_account_token_and_ca_are_used(
    api_server: Any, admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = _in_pod(api_server, tmp_path, monkeypatch, "node-2")
    assert api.read_node("node-2", 5).name == "node-2"
    api.renew_lease(names.DEFAULT_NAMESPACE, "node-2", 1_700_000_000.0, 45, 5)
    lease = admin.coordination.read_namespaced_lease(names.agent_lease_name("node-2"), names.DEFAULT_NAMESPACE)
    assert lease.spec.holder_identity == "nodewarden-agent/node-2"
    writes = api_server.audit.query(user=sim_server.agent_identity("node-2"), resource="leases.coordination.k8s.io")
    assert writes and writes[-1].name == names.agent_lease_name("node-2")


def test_failures_become_the_error_tree(
    api_server: Any, admin: Any, agent_api: KubeAgentApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotFound):
        agent_api.read_node("no-such-node", 5)
    _, account = _in_pod(api_server, tmp_path, monkeypatch, "node-3")
    (account / "token").write_text("not-a-token")
    with pytest.raises(Unauthorized):
        KubeAgentApi(connect(None, str(account))).read_node("node-3", 5)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")  # nothing listens there
    with pytest.raises(Unavailable):
        KubeAgentApi(connect(None, str(account))).read_node("node-3", 5)
