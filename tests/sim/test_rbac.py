"""The simulator authorizes like kube-apiserver with `--authorization-mode=RBAC`
(plugin/pkg/auth/authorizer/rbac/rbac.go, RuleAllows; pkg/registry/rbac/validation/rule.go;
endpoints/request/requestinfo.go), judged with the official Python client and kubectl:
Roles, ClusterRoles and both bindings, resourceNames with get/list/watch/create,
subresources, the real 403 message, and the reviews kubectl's `auth can-i` and
`auth whoami` send (in protobuf)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch

from sim.apiserver.server import ADMIN, WEBHOOK, ApiServer, agent_identity
from tests.conftest import start_api_server

WEBHOOK_USER = "system:serviceaccount:nodewarden:nodewarden-webhook"
AGENT_USER = "system:serviceaccount:nodewarden:nodewarden-agent"
RBAC_V1 = "rbac.authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("rbac")
    srv = start_api_server(tmp, authorization="RBAC")
    for ns in ("nodewarden", "team-a", "team-b"):
        srv.registry.create(srv.resource("namespaces"), "", {"metadata": {"name": ns}})
    yield srv
    srv.stop()


def api_for(server: ApiServer, handle: str) -> client.ApiClient:
    path = server.workdir / f"{abs(hash(handle))}.kubeconfig"
    server.write_kubeconfig(path, handle)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> client.ApiClient:
    return api_for(server, ADMIN)


@pytest.fixture(scope="module")
def webhook(server: ApiServer) -> client.ApiClient:
    return api_for(server, WEBHOOK)


def refused(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(client.ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status == 403, info.value.body
    body = json.loads(info.value.body)
    assert body["reason"] == "Forbidden" and body["code"] == 403
    return body


def grant(admin: client.ApiClient, name: str, rules: list[dict[str, Any]], namespace: str = "",
          role_kind: str = "", user: str = WEBHOOK_USER) -> None:
    """A Role (namespace given) or ClusterRole, bound to `user` by a RoleBinding in
    `namespace` or a ClusterRoleBinding."""
    rbac = client.RbacAuthorizationV1Api(admin)
    role_kind = role_kind or ("Role" if namespace else "ClusterRole")
    role = {"apiVersion": RBAC_V1, "kind": role_kind, "metadata": {"name": name}, "rules": rules}
    if role_kind == "Role":
        rbac.create_namespaced_role(namespace, role)
    else:
        rbac.create_cluster_role(role)
    ns_part, sa = user.split(":")[2:] if user.startswith("system:serviceaccount:") else ("", "")
    subject = ({"kind": "ServiceAccount", "name": sa, "namespace": ns_part} if sa
               else {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"})
    binding = {"metadata": {"name": name}, "subjects": [subject],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}}
    if namespace:
        rbac.create_namespaced_role_binding(namespace, {"apiVersion": RBAC_V1, "kind": "RoleBinding", **binding})
    else:
        rbac.create_cluster_role_binding({"apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", **binding})


# -- the 403 -----------------------------------------------------------------------------


def test_a_service_account_without_bindings_is_refused_with_the_real_message(webhook: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(webhook), client.AppsV1Api(webhook)
    body = refused(core.create_namespace, {"metadata": {"name": "stolen"}})
    assert body["message"] == (f'namespaces is forbidden: User "{WEBHOOK_USER}" cannot create resource '
                               f'"namespaces" in API group "" at the cluster scope')
    assert body["details"] == {"kind": "namespaces"}
    body = refused(apps.delete_namespaced_stateful_set, "db", "default")
    assert body["message"] == (f'statefulsets.apps "db" is forbidden: User "{WEBHOOK_USER}" cannot delete '
                               f'resource "statefulsets" in API group "apps" in the namespace "default"')
    assert body["details"] == {"name": "db", "group": "apps", "kind": "statefulsets"}
    # Authorization comes before existence: a resource the server does not serve is a 403 too.
    refused(client.CustomObjectsApi(webhook).list_cluster_custom_object, "example.com", "v1", "widgets")


def test_system_masters_may_do_anything_and_the_bootstrap_roles_exist(admin: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    names = {r.metadata.name for r in rbac.list_cluster_role().items}
    assert {"cluster-admin", "system:discovery", "system:basic-user", "system:public-info-viewer"} <= names
    binding = rbac.read_cluster_role_binding("cluster-admin")
    assert [(s.kind, s.name) for s in binding.subjects] == [("Group", "system:masters")]
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": "made-by-admin"}})


def test_every_authenticated_user_may_discover_the_api(webhook: client.ApiClient) -> None:
    assert client.CoreApi(webhook).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(webhook).get_api_versions().groups}
    assert {"rbac.authorization.k8s.io", "authorization.k8s.io", "authentication.k8s.io",
            "admissionregistration.k8s.io"} <= groups


# -- bindings, scopes, names, subresources -----------------------------------------------


def test_a_role_binding_grants_in_its_own_namespace_only(admin: client.ApiClient, webhook: client.ApiClient) -> None:
    grant(admin, "cm-reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], "team-a")
    core = client.CoreV1Api(webhook)
    assert core.list_namespaced_config_map("team-a").items == []
    refused(core.list_namespaced_config_map, "team-b")
    refused(core.list_config_map_for_all_namespaces)  # all namespaces is the cluster scope
    refused(core.read_namespaced_config_map, "x", "team-a")  # list is not get


def test_a_cluster_role_bound_by_a_role_binding_is_limited_to_that_namespace(
        admin: client.ApiClient, webhook: client.ApiClient) -> None:
    grant(admin, "secret-reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])
    rbac = client.RbacAuthorizationV1Api(admin)
    # Rebind the ClusterRole with a RoleBinding only: drop the ClusterRoleBinding grant() made.
    rbac.delete_cluster_role_binding("secret-reader")
    rbac.create_namespaced_role_binding("team-b", {
        "apiVersion": RBAC_V1, "kind": "RoleBinding", "metadata": {"name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "nodewarden-webhook", "namespace": "nodewarden"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"}})
    core = client.CoreV1Api(webhook)
    assert core.list_namespaced_secret("team-b").items == []
    refused(core.list_namespaced_secret, "team-a")
    refused(core.list_secret_for_all_namespaces)


def test_resource_names_allow_get_and_a_list_or_watch_that_selects_the_name_never_create(
        admin: client.ApiClient, webhook: client.ApiClient) -> None:
    core_admin = client.CoreV1Api(admin)
    for name in ("switch", "other"):
        core_admin.create_namespaced_config_map("nodewarden", {"metadata": {"name": name}, "data": {"a": "1"}})
    grant(admin, "switch", [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["switch"],
                             "verbs": ["get", "list", "watch", "create", "update"]}], "nodewarden")
    core = client.CoreV1Api(webhook)
    assert core.read_namespaced_config_map("switch", "nodewarden").data == {"a": "1"}
    body = refused(core.read_namespaced_config_map, "other", "nodewarden")
    assert body["message"].startswith('configmaps "other" is forbidden: ')
    refused(core.list_namespaced_config_map, "nodewarden")  # no name selected
    listed = core.list_namespaced_config_map("nodewarden", field_selector="metadata.name=switch")
    assert [c.metadata.name for c in listed.items] == ["switch"]
    refused(core.list_namespaced_config_map, "nodewarden", field_selector="metadata.name=other")
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "nodewarden",
                                       field_selector="metadata.name=switch", timeout_seconds=1))
    assert [e["object"].metadata.name for e in events] == ["switch"]
    with pytest.raises(client.ApiException) as info:
        list(watch.Watch().stream(core.list_namespaced_config_map, "nodewarden", timeout_seconds=1))
    assert info.value.status == 403
    # A create names no object in its URL, so resourceNames can never allow it.
    body = refused(core.create_namespaced_config_map, "nodewarden", {"metadata": {"name": "switch-2"}})
    assert body["message"].startswith("configmaps is forbidden: ")


def test_a_subresource_is_its_own_resource(admin: client.ApiClient, webhook: client.ApiClient) -> None:
    grant(admin, "node-status", [{"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}])
    core = client.CoreV1Api(webhook)
    patched = core.patch_node_status("node-1", {"status": {"phase": "Running"}})
    assert patched.metadata.name == "node-1"
    body = refused(core.patch_node, "node-1", {"metadata": {"labels": {"x": "y"}}})
    assert 'cannot patch resource "nodes" in API group ""' in body["message"]
    body = refused(core.patch_namespace_status, "team-a", {"status": {}})
    assert 'cannot patch resource "namespaces/status"' in body["message"]
    grant(admin, "any-status", [{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}])
    assert core.read_namespace_status("team-a").metadata.name == "team-a"
    refused(core.read_namespace, "team-a")


def test_a_change_to_rbac_applies_to_the_next_request(admin: client.ApiClient, webhook: client.ApiClient) -> None:
    core = client.CoreV1Api(webhook)
    refused(core.list_persistent_volume)
    grant(admin, "pv-reader", [{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["list"]}])
    core.list_persistent_volume()
    client.RbacAuthorizationV1Api(admin).delete_cluster_role_binding("pv-reader")
    refused(core.list_persistent_volume)


# -- the reviews -------------------------------------------------------------------------


def test_self_subject_access_review_answers_for_the_caller(webhook: client.ApiClient) -> None:
    authz = client.AuthorizationV1Api(webhook)

    def can(**attrs: str) -> Any:
        return authz.create_self_subject_access_review(
            {"spec": {"resourceAttributes": attrs}}).status

    yes = can(verb="get", resource="configmaps", namespace="nodewarden", name="switch")
    assert yes.allowed and yes.reason.startswith('RBAC: allowed by RoleBinding "nodewarden/switch" of Role "switch"')
    assert not can(verb="get", resource="configmaps", namespace="nodewarden", name="other").allowed
    assert not can(verb="create", resource="namespaces").allowed
    path = authz.create_self_subject_access_review(
        {"spec": {"nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}}}).status
    assert path.allowed
    assert not authz.create_self_subject_access_review(
        {"spec": {"nonResourceAttributes": {"verb": "get", "path": "/logs"}}}).status.allowed


def test_subject_access_review_and_token_review_need_their_own_permission(
        server: ApiServer, admin: client.ApiClient, webhook: client.ApiClient) -> None:
    sar = {"spec": {"user": WEBHOOK_USER, "groups": ["system:authenticated"],
                    "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "team-a"}}}
    refused(client.AuthorizationV1Api(webhook).create_subject_access_review, sar)
    assert client.AuthorizationV1Api(admin).create_subject_access_review(sar).status.allowed
    local = dict(sar, metadata={"namespace": "team-a"})
    assert client.AuthorizationV1Api(admin).create_namespaced_local_subject_access_review("team-a", local).status.allowed
    refused(client.AuthenticationV1Api(webhook).create_token_review, {"spec": {"token": "x"}})
    token = server.identities.token_for(agent_identity("node-2"))
    review = client.AuthenticationV1Api(admin).create_token_review({"spec": {"token": token}}).status
    assert review.authenticated and review.user.username == AGENT_USER
    assert review.user.extra["authentication.kubernetes.io/node-name"] == ["node-2"]
    unknown = client.AuthenticationV1Api(admin).create_token_review({"spec": {"token": "nope"}}).status
    assert not unknown.authenticated


def test_an_agents_bound_token_names_its_node(server: ApiServer) -> None:
    """The extra a bound service-account token carries since 1.30 (KEP-4193): one service
    account for the DaemonSet, one token per pod, each naming its node."""
    infos = {}
    for node in ("node-1", "node-2"):
        review = client.AuthenticationV1Api(api_for(server, agent_identity(node))).create_self_subject_review({})
        infos[node] = review.status.user_info
    assert {i.username for i in infos.values()} == {AGENT_USER}
    assert infos["node-1"].extra["authentication.kubernetes.io/node-name"] == ["node-1"]
    assert infos["node-2"].extra["authentication.kubernetes.io/node-name"] == ["node-2"]
    assert infos["node-1"].extra["authentication.kubernetes.io/node-uid"] != \
        infos["node-2"].extra["authentication.kubernetes.io/node-uid"]
    assert "system:serviceaccounts:nodewarden" in infos["node-1"].groups
    # The webhook's token is not bound to a node.
    own = client.AuthenticationV1Api(api_for(server, WEBHOOK)).create_self_subject_review({}).status.user_info
    assert own.username == WEBHOOK_USER and not own.extra


def test_self_subject_rules_review_lists_the_callers_rules(webhook: client.ApiClient) -> None:
    status = client.AuthorizationV1Api(webhook).create_self_subject_rules_review(
        {"spec": {"namespace": "nodewarden"}}).status
    assert {"verbs": ["get", "list", "watch", "create", "update"], "api_groups": [""], "resources": ["configmaps"],
            "resource_names": ["switch"]} in [r.to_dict() for r in status.resource_rules]
    assert not status.incomplete


# -- kubectl -----------------------------------------------------------------------------


def kubectl(server: ApiServer, handle: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = server.workdir / f"kubectl-{abs(hash(handle))}.kubeconfig"
    server.write_kubeconfig(path, handle)
    return subprocess.run(["kubectl", "--kubeconfig", str(path), "--cache-dir", str(server.workdir / "kcache"),
                           *args], capture_output=True, text=True, timeout=60)


def test_kubectl_auth_can_i_and_whoami(server: ApiServer) -> None:
    """kubectl sends these reviews in protobuf; its exit code is the answer."""
    no = kubectl(server, WEBHOOK, "auth", "can-i", "create", "namespaces")
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    yes = kubectl(server, WEBHOOK, "auth", "can-i", "get", "configmaps/switch", "-n", "nodewarden")
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes"), yes.stderr
    assert kubectl(server, ADMIN, "auth", "can-i", "create", "namespaces").stdout.strip() == "yes"
    listed = kubectl(server, WEBHOOK, "auth", "can-i", "--list", "-n", "nodewarden")
    assert listed.returncode == 0 and "configmaps" in listed.stdout and "[switch]" in listed.stdout
    who = kubectl(server, agent_identity("node-3"), "auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == AGENT_USER
    assert info["extra"]["authentication.kubernetes.io/node-name"] == ["node-3"]


def test_kubectl_as_impersonates_only_for_who_may(server: ApiServer) -> None:
    as_webhook = kubectl(server, ADMIN, "auth", "can-i", "create", "namespaces", "--as", WEBHOOK_USER)
    assert (as_webhook.returncode, as_webhook.stdout.strip()) == (1, "no")
    denied = kubectl(server, WEBHOOK, "get", "nodes", "--as", "someone")
    assert denied.returncode == 1
    assert (f'users "someone" is forbidden: User "{WEBHOOK_USER}" cannot impersonate resource "users" '
            f'in API group "" at the cluster scope') in denied.stderr


def test_always_allow_mode_allows_and_can_be_switched(server: ApiServer, webhook: client.ApiClient) -> None:
    core = client.CoreV1Api(webhook)
    refused(core.list_namespace)
    server.enable_rbac(False)
    try:
        assert core.list_namespace().items
        assert client.AuthorizationV1Api(webhook).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}}).status.allowed
    finally:
        server.enable_rbac(True)
    refused(core.list_namespace)


def test_in_process_components_are_not_subject_to_rbac(server: ApiServer) -> None:
    """The simulated cluster's own controllers write through the registry, as the real
    ones run with their own (bootstrap) permissions."""
    server.registry.create(server.resource("configmaps"), "team-b", {"metadata": {"name": "internal"}})
    assert server.registry.get(server.resource("configmaps"), "team-b", "internal")
