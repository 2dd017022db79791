"""In a test world, nodewarden's identities hold exactly what the chart grants, and the
simulated API server enforces it: a request the chart does not grant is refused with
the real 403, whichever process or credential makes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from harness.chart import security_manifests
from harness.world import World, nodewarden_world, policy
from sim.apiserver.server import ADMIN, WEBHOOK

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
