"""Server-side apply under RBAC as kube-apiserver authorizes it
(k8s.io/apiserver/pkg/endpoints/handlers/patch.go: the request is a `patch`, and an apply
that would create the object is authorized for `create` as well, with the object's name):
an identity allowed to patch but not to create can apply to an existing object only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client

from sim.apiserver.server import ADMIN, WEBHOOK, ApiServer
from tests.conftest import start_api_server
from tests.sim.test_rbac import WEBHOOK_USER, api_for, grant


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_api_server(tmp_path_factory.mktemp("rbac-apply"), authorization="RBAC")
    srv.registry.create(srv.resource("namespaces"), "", {"metadata": {"name": "team-a"}})
    yield srv
    srv.stop()


def apply(api: client.ApiClient, name: str, value: str) -> tuple[int, dict]:
    headers = {"Authorization": api.configuration.auth_settings()["BearerToken"]["value"],
               "Content-Type": "application/apply-patch+yaml"}
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}
    resp = api.rest_client.pool_manager.request(
        "PATCH", f"{api.configuration.host}/api/v1/namespaces/team-a/configmaps/{name}?fieldManager=t",
        body=json.dumps(body), headers=headers)
    return resp.status, json.loads(resp.data)


def test_an_apply_that_creates_needs_create_and_one_that_updates_needs_patch(server: ApiServer) -> None:
    admin, webhook = api_for(server, ADMIN), api_for(server, WEBHOOK)
    grant(admin, "cm-patcher", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}],
          namespace="team-a")
    code, body = apply(webhook, "new", "v")
    assert code == 403
    assert body["message"] == (
        f'configmaps "new" is forbidden: User "{WEBHOOK_USER}" cannot create resource "configmaps" '
        'in API group "" in the namespace "team-a"')
    assert server.registry.store.get(server.registry.table(server.resource("configmaps")), "team-a", "new") is None

    assert apply(admin, "existing", "v1")[0] == 201
    code, body = apply(webhook, "existing", "v2")
    assert code == 200 and body["data"] == {"k": "v2"}
