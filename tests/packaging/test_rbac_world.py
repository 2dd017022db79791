"""In a test world, nodewarden's identities hold exactly what the chart grants, and the
simulated API server enforces it: a request the chart does not grant is refused with
the real 403, whichever process or credential makes it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from core import names
from core.kube import Forbidden
from harness.chart import security_manifests
from harness.world import World, nodewarden_world, policy
from node_agent.kube import KubeAgentApi, connect
from sim.apiserver.server import ADMIN, WEBHOOK, agent_identity

WEBHOOK_USER = "system:serviceaccount:nodewarden:nodewarden-webhook"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rbac-world")
    with nodewarden_world(tmp, nodes=3, time_scale=0.05, workloads=["db=statefulset:1"]) as w:
        yield w


def api(world: World, handle: str) -> client.ApiClient:
    path = world.tmp / f"{abs(hash(handle))}.kubeconfig"
    world.cluster.api.write_kubeconfig(path, handle)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    return client.ApiClient(cfg)


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(client.ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status == 403, info.value.body
    return str(json.loads(info.value.body)["message"])


def test_the_product_processes_ran_without_a_refusal(world: World) -> None:
    """The webhook, the controller and every agent started, published and renewed under
    enforcement; none of their writes was refused (first in this module: the tests below
    are refused on purpose)."""
    denied = [r for r in world.cluster.api.audit.query() if r.code == 403 and "nodewarden" in r.user]
    assert not denied, denied


def test_the_world_enforces_exactly_the_charts_rbac(world: World) -> None:
    api_server = world.cluster.api
    assert api_server.rbac_enabled
    rbac = client.RbacAuthorizationV1Api(api(world, ADMIN))
    served = {(r.metadata.name, json.dumps(client.ApiClient().sanitize_for_serialization(r.rules), sort_keys=True))
              for r in rbac.list_cluster_role().items if r.metadata.name.startswith("nodewarden")}
    chart = {(d["metadata"]["name"], json.dumps(d["rules"], sort_keys=True))
             for d in security_manifests(policy()) if d["kind"] == "ClusterRole"}
    assert served == chart


def test_the_webhooks_token_cannot_create_a_namespace_or_delete_a_statefulset(world: World) -> None:
    webhook = api(world, WEBHOOK)
    message = refused(client.CoreV1Api(webhook).create_namespace, {"metadata": {"name": "stolen"}})
    assert message == (f'namespaces is forbidden: User "{WEBHOOK_USER}" cannot create resource "namespaces" '
                       'in API group "" at the cluster scope')
    message = refused(client.AppsV1Api(webhook).delete_namespaced_stateful_set, "db", "default")
    assert message == (f'statefulsets.apps "db" is forbidden: User "{WEBHOOK_USER}" cannot delete resource '
                       '"statefulsets" in API group "apps" in the namespace "default"')
    assert world.cluster.get("statefulsets", "db", "default", "apps") is not None
    assert world.cluster.get("namespaces", "stolen") is None
    refused(client.CoreV1Api(webhook).list_namespaced_secret, "nodewarden")
    refused(client.CoreV1Api(webhook).delete_namespaced_pod, "db-0", "default")  # the policy never deletes


def test_an_agents_token_cannot_taint_a_node_or_delete_a_remediation(world: World) -> None:
    agent = api(world, "system:serviceaccount:nodewarden:nodewarden-agent:node-1")
    refused(client.CoreV1Api(agent).patch_node_status, "node-1", {"status": {}})
    refused(client.CustomObjectsApi(agent).delete_cluster_custom_object,
            "nodewarden.io", "v1alpha1", "noderemediations", "node-1")
    refused(client.CoreV1Api(agent).list_namespaced_pod, "default")


# -- the agents' admission policy (nodewarden-agent-writes) ---------------------------------

DENIED = "ValidatingAdmissionPolicy 'nodewarden-agent-writes' with binding 'nodewarden-agent-writes' denied request: "


@pytest.fixture(scope="module")
def quiet_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Agents only (no controller acts on the NodeRemediation the tests create)."""
    tmp = tmp_path_factory.mktemp("vap-world")
    with nodewarden_world(tmp, nodes=3, time_scale=0.05, workloads=[], controllers=0, webhook=False) as w:
        # The webhook creates remediations: anyone else must name themselves (nodewarden-operator-writes).
        custom = client.CustomObjectsApi(api(w, WEBHOOK))
        for node in ("node-1", "node-2"):
            custom.create_cluster_custom_object("nodewarden.io", "v1alpha1", "noderemediations", {
                "apiVersion": "nodewarden.io/v1alpha1", "kind": "NodeRemediation", "metadata": {"name": node},
                "spec": {"nodeName": node, "strategy": "OutOfServiceTaint", "escalation": "OperatorApproval",
                         "trigger": {"source": "operator", "receivedAt": "2026-01-01T00:00:00Z"}}})
        yield w


def agent_api(world: World, node: str) -> KubeAgentApi:
    path = world.tmp / f"agent-{node}.kubeconfig"
    world.cluster.api.write_kubeconfig(path, agent_identity(node))
    return KubeAgentApi(connect(str(path)))


def policy_refusal(call: Any, *args: Any) -> str:
    with pytest.raises(Forbidden) as info:
        call(*args)
    message = str(info.value)
    assert DENIED in message, message
    return message


def test_the_chart_ships_the_policy_and_its_binding_and_the_world_runs_them(quiet_world: World) -> None:
    adm = client.AdmissionregistrationV1Api(api(quiet_world, ADMIN))
    assert adm.read_validating_admission_policy("nodewarden-agent-writes").spec.failure_policy == "Fail"
    binding = adm.read_validating_admission_policy_binding("nodewarden-agent-writes")
    assert (binding.spec.policy_name, binding.spec.validation_actions) == ("nodewarden-agent-writes", ["Deny"])


def test_another_nodes_agent_cannot_write_this_nodes_report_lease_or_node(quiet_world: World) -> None:
    """Node B's agent credential, through the agent's own API layer, against node A's
    objects: each write is refused by the policy, and nothing changed."""
    b = agent_api(quiet_world, "node-2")
    report = {"lastFeedAt": "2026-01-01T00:00:00Z", "bootId": "forged"}
    message = policy_refusal(b.report_fence, "node-1", report, 5)
    assert message.endswith("the agent of node node-2 may write only its own NodeRemediation, not node-1")
    message = policy_refusal(b.annotate_node, "node-1", {"nodewarden.io/self-fence-capable": "false"}, 5)
    assert message.endswith("the agent of node node-2 may write only its own Node, not node-1")
    message = policy_refusal(b.renew_lease, "nodewarden", "node-1", time.time(), 40, 5)
    assert "may write only Lease nodewarden-agent-node-2, not nodewarden-agent-node-1" in message
    c = quiet_world.cluster
    assert "agentReport" not in ((quiet_world.remediation("node-1") or {}).get("status") or {})
    annotations = (c.get("nodes", "node-1") or {})["metadata"]["annotations"]
    assert annotations["nodewarden.io/self-fence-capable"] == "true"
    lease = c.get("leases", "nodewarden-agent-node-1", "nodewarden", "coordination.k8s.io") or {}
    assert lease["spec"]["holderIdentity"] == "nodewarden-agent/node-1"


def test_a_nodes_own_agent_writes_its_report_lease_and_annotations(quiet_world: World) -> None:
    a = agent_api(quiet_world, "node-1")
    a.report_fence("node-1", {"lastFeedAt": "2026-01-01T00:00:00Z", "bootId": "b-1"}, 5)
    a.annotate_node("node-1", {"nodewarden.io/agent-version": "test"}, 5)
    a.renew_lease("nodewarden", "node-1", time.time(), 40, 5)
    c = quiet_world.cluster
    rem = quiet_world.remediation("node-1") or {}
    assert rem["status"]["agentReport"]["bootId"] == "b-1"
    assert (c.get("nodes", "node-1") or {})["metadata"]["annotations"]["nodewarden.io/agent-version"] == "test"


def test_a_nodes_own_agent_cannot_write_beyond_its_report_and_annotations(quiet_world: World) -> None:
    own = api(quiet_world, agent_identity("node-1"))
    custom, core = client.CustomObjectsApi(own), client.CoreV1Api(own)
    message = refused(custom.patch_cluster_custom_object_status, "nodewarden.io", "v1alpha1", "noderemediations",
                      "node-1", {"status": {"phase": "Fenced"}})
    assert message == ('noderemediations.nodewarden.io "node-1" is forbidden: ' + DENIED
                       + "an agent may change only status.agentReport of its NodeRemediation")
    message = refused(core.patch_node, "node-1", {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}})
    assert message.endswith(DENIED + "an agent may change only its Node's nodewarden.io/ annotations")
    message = refused(core.patch_node, "node-1", {"metadata": {"annotations": {"example.com/x": "1"}}})
    assert message.endswith("an agent may change only its Node's nodewarden.io/ annotations")


def test_a_nodes_own_agent_cannot_remove_or_backdate_its_fencing_taint(quiet_world: World) -> None:
    """The fencing taint's `timeAdded` decides when recovery may start: the agent of the node
    being fenced must not be able to take the taint off, or put it back as if long settled."""
    core = client.CoreV1Api(api(quiet_world, agent_identity("node-1")))
    backdated = {"key": names.FENCING_TAINT_KEY, "value": names.FENCING_TAINT_VALUE, "effect": "NoExecute",
                 "timeAdded": "2026-01-01T00:00:00Z"}
    message = refused(core.patch_node, "node-1", {"spec": {"taints": [backdated]}})
    assert message.endswith("an agent may change only its Node's nodewarden.io/ annotations"), message
    admin = client.CoreV1Api(api(quiet_world, ADMIN))
    admin.patch_node("node-1", {"spec": {"taints": [{**backdated, "timeAdded": "2026-12-03T00:00:00Z"}]}})
    try:
        message = refused(core.patch_node, "node-1", {"spec": {"taints": []}})
        assert message.endswith("an agent may change only its Node's nodewarden.io/ annotations"), message
    finally:
        admin.patch_node("node-1", {"spec": {"taints": []}})


def test_an_agent_token_bound_to_no_node_may_write_nothing(quiet_world: World) -> None:
    """A token for the agents' account that no pod binds (a legacy Secret token, say)."""
    unbound = "system:serviceaccount:nodewarden:nodewarden-agent"
    quiet_world.cluster.api.add_identity(unbound)
    b = agent_api_for_handle(quiet_world, unbound)
    message = policy_refusal(b.annotate_node, "node-3", {"nodewarden.io/agent-version": "x"}, 5)
    assert message.endswith("the agent's credential names no node: only a pod-bound service-account token "
                            "(authentication.kubernetes.io/node-name) may write")


def agent_api_for_handle(world: World, handle: str) -> KubeAgentApi:
    path = world.tmp / f"handle-{abs(hash(handle))}.kubeconfig"
    world.cluster.api.write_kubeconfig(path, handle)
    return KubeAgentApi(connect(str(path)))
