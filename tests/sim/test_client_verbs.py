"""The emulated API server, driven only through the official Python client:
get, list, create, update, patch, delete and their error paths."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

CONFLICT_MESSAGE = (
    'Operation cannot be fulfilled on nodes "{}": the object has been modified; please '
    "apply your changes to the latest version and try again"
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_body(exc: ApiException) -> dict:
    return json.loads(exc.body)


def raw(k8s: client.ApiClient, method: str, path: str, body: bytes | None = None,
        content_type: str = "application/json", token: str | None = None) -> tuple[int, dict]:
    """A request the typed client would refuse to send (it validates its inputs)."""
    headers = {"Authorization": token or k8s.configuration.auth_settings()["BearerToken"]["value"],
               "Content-Type": content_type}
    resp = k8s.rest_client.pool_manager.request(method, k8s.configuration.host + path,
                                                body=body, headers=headers)
    return resp.status, json.loads(resp.data) if resp.data else {}


def make_namespace(core: client.CoreV1Api) -> str:
    name = unique("ns")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def pod(name: str, node: str | None = None, labels: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


# --- get / list -------------------------------------------------------------------------


def test_get_node_returns_typed_object(core: client.CoreV1Api) -> None:
    node = core.read_node("node-1")
    assert node.metadata.name == "node-1"
    assert node.status.node_info.boot_id
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"


def test_missing_object_is_404_with_real_status(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.read_node("no-such-node")
    assert err.value.status == 404
    body = status_body(err.value)
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert body["message"] == 'nodes "no-such-node" not found'
    assert body["details"] == {"name": "no-such-node", "kind": "nodes"}


def test_list_carries_resource_version_and_label_selector(core: client.CoreV1Api) -> None:
    core.patch_node("node-2", {"metadata": {"labels": {"zone": "b"}}})
    listed = core.list_node(label_selector="zone=b")
    assert [n.metadata.name for n in listed.items] == ["node-2"]
    assert int(listed.metadata.resource_version) > 0
    assert len(core.list_node(label_selector="zone!=b").items) == 2
    assert len(core.list_node(label_selector="zone in (a,b)").items) == 1
    assert len(core.list_node(label_selector="!zone").items) == 2


def test_field_selectors(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_pod(ns, pod("on-1", "node-1"))
    core.create_namespaced_pod(ns, pod("on-2", "node-2"))
    core.create_namespaced_pod(ns, pod("unbound"))
    names = lambda sel: sorted(p.metadata.name for p in core.list_namespaced_pod(ns, field_selector=sel).items)  # noqa: E731
    assert names("spec.nodeName=node-1") == ["on-1"]
    assert names("spec.nodeName!=node-1") == ["on-2", "unbound"]
    assert names("status.phase=Pending") == ["on-1", "on-2", "unbound"]
    assert names("metadata.name=on-2") == ["on-2"]
    all_ns = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert len(all_ns.items) == 3


def test_unsupported_field_selector_is_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.list_node(field_selector="spec.bogus=1")
    assert err.value.status == 400
    assert "field label not supported: spec.bogus" in status_body(err.value)["message"]


def test_list_pagination_with_limit_and_continue(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    for i in range(7):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
    seen, token = [], None
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        assert len(page.items) <= 3
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"cm-{i}" for i in range(7)]


# --- create -----------------------------------------------------------------------------


def test_create_sets_uid_timestamp_version_and_generate_name(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    created = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == 9
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0


def test_create_existing_is_409_already_exists(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    assert err.value.status == 409
    body = status_body(err.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "dup" already exists'


def test_create_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert err.value.status == 404
    assert status_body(err.value)["message"] == 'namespaces "nowhere" not found'


def test_invalid_object_is_422_with_causes(core: client.CoreV1Api) -> None:
    name = unique("bad")
    with pytest.raises(ApiException) as err:
        core.create_node({"metadata": {"name": name},
                          "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}})
    assert err.value.status == 422
    body = status_body(err.value)
    assert body["reason"] == "Invalid"
    assert any(c["field"] == "spec.taints[0].effect" for c in body["details"]["causes"])
    with pytest.raises(ApiException) as err:
        core.create_node({"metadata": {"name": "Not_A_Valid_Name"}})
    assert err.value.status == 422
    assert "metadata.name" in status_body(err.value)["message"]


def test_wrong_json_type_is_400(k8s: client.ApiClient) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": unique("n")},
                       "spec": {"unschedulable": "yes"}}).encode()
    code, status = raw(k8s, "POST", "/api/v1/nodes", body)
    assert code == 400
    assert status["reason"] == "BadRequest"


def test_unknown_fields_are_dropped_with_a_warning(k8s: client.ApiClient, core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
            "data": {"a": "b"}, "bogus": {"x": 1}}
    code, created = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/configmaps", json.dumps(body).encode())
    assert code == 201
    assert "bogus" not in created and created["data"] == {"a": "b"}
    assert core.read_namespaced_config_map("cm", ns).data == {"a": "b"}
    body["metadata"]["name"] = "strict"
    code, status = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict",
                       json.dumps(body).encode())
    assert code == 400
    assert 'unknown field "bogus"' in status["message"]


# --- update and optimistic concurrency --------------------------------------------------


def test_stale_resource_version_is_409_with_real_message(core: client.CoreV1Api) -> None:
    node = core.read_node("node-3")
    node.metadata.labels["first"] = "1"
    core.replace_node("node-3", node)  # bumps the resourceVersion
    node.metadata.labels["second"] = "2"
    with pytest.raises(ApiException) as err:
        core.replace_node("node-3", node)
    assert err.value.status == 409
    body = status_body(err.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == CONFLICT_MESSAGE.format("node-3")


def test_update_of_main_resource_keeps_status(core: client.CoreV1Api) -> None:
    node = core.read_node("node-1")
    boot = node.status.node_info.boot_id
    node.status.node_info.boot_id = "changed-through-main-endpoint"
    updated = core.replace_node("node-1", node)
    assert updated.status.node_info.boot_id == boot


# --- patch ------------------------------------------------------------------------------


def test_strategic_patch_replaces_taints_whole(core: client.CoreV1Api) -> None:
    core.patch_node("node-1", {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"},
                                                   {"key": "b", "effect": "NoExecute"}]}})
    core.patch_node("node-1", {"spec": {"taints": [{"key": "c", "effect": "NoSchedule"}]}})
    taints = core.read_node("node-1").spec.taints
    assert [(t.key, t.effect) for t in taints] == [("c", "NoSchedule")]
    core.patch_node("node-1", {"spec": {"taints": None}})
    assert not core.read_node("node-1").spec.taints


def test_strategic_patch_merges_conditions_by_type(core: client.CoreV1Api) -> None:
    core.patch_node_status("node-2", {"status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
         "message": "Kubelet stopped posting node status."}]}})
    conditions = {c.type: c for c in core.read_node("node-2").status.conditions}
    assert conditions["Ready"].status == "Unknown"
    assert conditions["MemoryPressure"].status == "False"  # untouched, not dropped
    core.patch_node_status("node-2", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}]}})


def test_resource_version_in_patch_is_a_precondition(core: client.CoreV1Api) -> None:
    node = core.read_node("node-3")
    stale = str(int(node.metadata.resource_version) - 1)
    with pytest.raises(ApiException) as err:
        core.patch_node("node-3", {"metadata": {"resourceVersion": stale,
                                                "labels": {"x": "y"}}})
    assert err.value.status == 409
    assert status_body(err.value)["message"] == CONFLICT_MESSAGE.format("node-3")
    ok = core.patch_node("node-3", {"metadata": {"resourceVersion": node.metadata.resource_version,
                                                 "labels": {"x": "y"}}})
    assert ok.metadata.labels["x"] == "y"


def test_merge_and_json_patch(k8s: client.ApiClient, core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}})
    # The client picks the content type: a list body is a JSON patch.
    core.patch_namespaced_config_map("cm", ns, [{"op": "replace", "path": "/data/a", "value": "9"},
                                                {"op": "remove", "path": "/data/b"}])
    assert core.read_namespaced_config_map("cm", ns).data == {"a": "9"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("cm", ns, [{"op": "test", "path": "/data/a", "value": "0"}])
    assert err.value.status == 422
    # An explicit merge patch: null deletes a key.
    code, _ = raw(k8s, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/cm",
                  json.dumps({"data": {"a": None, "c": "3"}}).encode(),
                  content_type="application/merge-patch+json")
    assert code == 200
    assert core.read_namespaced_config_map("cm", ns).data == {"c": "3"}


def test_strategic_patch_unions_finalizers(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm", "finalizers": ["a/x"]}})
    core.patch_namespaced_config_map("cm", ns, {"metadata": {"finalizers": ["b/y"]}})
    assert core.read_namespaced_config_map("cm", ns).metadata.finalizers == ["a/x", "b/y"]


# --- delete -----------------------------------------------------------------------------


def test_pod_delete_is_graceful_and_returns_the_pod(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_pod(ns, pod("p", "node-1"))
    returned = core.delete_namespaced_pod("p", ns)
    assert isinstance(returned, client.V1Pod)
    still_there = core.read_namespaced_pod("p", ns)
    assert still_there.metadata.deletion_timestamp is not None
    assert still_there.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("p", ns)
    assert err.value.status == 404


def test_unbound_pod_is_deleted_at_once(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_pod(ns, pod("p"))
    core.delete_namespaced_pod("p", ns)
    with pytest.raises(ApiException):
        core.read_namespaced_pod("p", ns)


def test_finalizers_hold_deletion_until_removed(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("held", ns)
    held = core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", ns, [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("held", ns)
    assert err.value.status == 404


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}})
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("cm", ns, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    assert err.value.status == 409
    status = core.delete_namespaced_config_map("cm", ns)
    status = status if isinstance(status, dict) else status.to_dict()
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "cm"


def test_deleting_a_namespace_deletes_its_contents(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}})
    core.delete_namespace(ns)
    with pytest.raises(ApiException):
        core.read_namespace(ns)
    assert not core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items


# --- errors that must never break the server --------------------------------------------


def test_malformed_json_is_400_and_server_keeps_serving(k8s: client.ApiClient, core: client.CoreV1Api) -> None:
    code, status = raw(k8s, "POST", "/api/v1/nodes", b"{not json")
    assert code == 400
    assert status["reason"] == "BadRequest"
    assert core.read_node("node-1").metadata.name == "node-1"


def test_unknown_token_is_401(k8s: client.ApiClient) -> None:
    code, status = raw(k8s, "GET", "/api/v1/nodes", token="Bearer nope")
    assert code == 401
    assert status["reason"] == "Unauthorized"


def test_the_bearer_scheme_is_case_insensitive_as_in_kube_apiserver(k8s: client.ApiClient) -> None:
    token = k8s.configuration.auth_settings()["BearerToken"]["value"].split(" ", 1)[1]
    for scheme in ("bearer", "BEARER"):
        code, _ = raw(k8s, "GET", "/api/v1/nodes", token=f"{scheme} {token}")
        assert code == 200, scheme
    code, _ = raw(k8s, "GET", "/api/v1/nodes", token=f"Basic {token}")
    assert code == 401


def test_protobuf_body_is_415(k8s: client.ApiClient) -> None:
    code, status = raw(k8s, "POST", "/api/v1/namespaces", b"k8s\x00",
                       content_type="application/vnd.kubernetes.protobuf")
    assert code == 415
    assert status["reason"] == "UnsupportedMediaType"


def test_strategic_patch_on_lease_and_coordination_api(k8s: client.ApiClient, core: client.CoreV1Api) -> None:
    coord = client.CoordinationV1Api(k8s)
    ns = make_namespace(core)
    lease = coord.create_namespaced_lease(ns, {"metadata": {"name": "l"},
                                               "spec": {"holderIdentity": "a", "leaseDurationSeconds": 40}})
    lease.spec.holder_identity = "b"
    updated = coord.replace_namespaced_lease("l", ns, lease)
    assert updated.spec.holder_identity == "b"
    lease.spec.holder_identity = "c"
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("l", ns, lease)  # stale
    assert err.value.status == 409
