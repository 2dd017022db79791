"""What the official Python client's own e2e tests (harness.client_e2e) found different from
a real API server, each pinned here through the official client, with the Kubernetes source
the simulator now follows."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable

import pytest
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def service(name: str, ports: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": ports, "selector": {"app": name}}}


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}


def test_already_exists_status_is_the_real_servers_json_text(k8s: client.ApiClient) -> None:
    """metav1.Status and StatusDetails are encoded in their declaration order (kind, apiVersion,
    metadata, status, message, reason, details{name, group, kind}, code) by Go's
    json.Encoder, which ends the body with a newline (apimachinery's runtime/serializer/json).
    utils.create_from_yaml quotes that body verbatim in its FailToCreateError."""
    name = unique("dup")
    utils.create_from_dict(k8s, deployment(name))
    with pytest.raises(utils.FailToCreateError) as err:
        utils.create_from_dict(k8s, deployment(name))
    assert str(err.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        f'"status":"Failure","message":"deployments.apps \\"{name}\\" already exists",'
        f'"reason":"AlreadyExists","details":{{"name":"{name}","group":"apps",'
        '"kind":"deployments"},"code":409}\n')
    client.AppsV1Api(k8s).delete_namespaced_deployment(name, "default")


def test_deleting_a_service_or_service_account_answers_with_the_object(core: client.CoreV1Api) -> None:
    """`ReturnDeletedObject: true` in pkg/registry/core/service/storage and
    serviceaccount/storage: DELETE answers with the deleted object, which the client decodes
    as that kind (a Status there fails its model validation); a ConfigMap's storage does not
    set it and answers with a `Success` Status."""
    name = unique("svc")
    core.create_namespaced_service("default", service(name, [{"port": 80}]))
    deleted = core.delete_namespaced_service(name, "default")
    assert isinstance(deleted, client.V1Service)
    assert deleted.metadata.name == name and deleted.spec.ports[0].port == 80

    core.create_namespaced_service_account("default", {"metadata": {"name": name}})
    gone = core.delete_namespaced_service_account(name, "default")
    assert isinstance(gone, client.V1ServiceAccount) and gone.metadata.name == name

    core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    status = core.delete_namespaced_config_map(name, "default")
    status = status if isinstance(status, dict) else status.to_dict()
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert list(status["details"]) == ["name", "kind", "uid"]


def test_service_ports_merge_on_port_in_a_strategic_merge_patch(core: client.CoreV1Api) -> None:
    """core/v1 ServiceSpec.Ports carries `patchMergeKey:"port"`: a strategic merge patch
    adds a port with a new number and merges into the one with the same number."""
    name = unique("svc")
    core.create_namespaced_service("default", service(name, [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]))
    patched = core.patch_namespaced_service(name, "default", service(name, [
        {"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}]))
    assert sorted((p.name, p.port) for p in patched.spec.ports) == [("http", 80), ("new", 8080)]
    patched = core.patch_namespaced_service(name, "default", {"spec": {"ports": [
        {"port": 80, "targetPort": 8081}]}})
    by_port = {p.port: p for p in patched.spec.ports}
    assert len(by_port) == 2 and by_port[80].name == "http" and by_port[80].target_port == 8081
    core.delete_namespaced_service(name, "default")


def test_a_patch_item_without_its_merge_key_is_quoted_as_go_prints_it(core: client.CoreV1Api) -> None:
    """apimachinery's mergepatch.ErrNoMergeKey: `map: %v does not contain declared merge key:
    %s`, the map printed by Go's fmt (`map[k:v ...]`, keys sorted), not a Python dict."""
    name = unique("svc")
    core.create_namespaced_service("default", service(name, [{"port": 80}]))
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_service(name, "default", {"spec": {"ports": [
            {"name": "x", "targetPort": 81}]}})
    assert "map: map[name:x targetPort:81] does not contain declared merge key: port" in err.value.body
    core.delete_namespaced_service(name, "default")


# --- server-side apply (sim/apiserver/apply.py) ------------------------------------------


def test_server_side_apply_creates_merges_and_drops_what_the_manager_stopped_applying(
        k8s: client.ApiClient) -> None:
    """Server-side apply (k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager): applying to
    a missing object creates it; the manager's fields are its `Apply` entry in
    managedFields; a field it applied before and leaves out is removed, while lists with a
    merge key merge by item (a Deployment's containers by name) and fields set by another
    verb stay."""
    from kubernetes.dynamic import DynamicClient

    deployments = DynamicClient(k8s).resources.get(api_version="apps/v1", kind="Deployment")
    name = unique("ssa")
    config = deployment(name)
    config["metadata"]["labels"] = {"team": "a", "tier": "web"}
    created = deployments.server_side_apply(body=config, namespace="default",
                                            field_manager="e2e").to_dict()
    assert created["metadata"]["labels"] == {"team": "a", "tier": "web"}
    entries = [e for e in created["metadata"]["managedFields"] if e["manager"] == "e2e"]
    assert entries and entries[0]["operation"] == "Apply"
    assert "f:tier" in entries[0]["fieldsV1"]["f:metadata"]["f:labels"]

    apps = client.AppsV1Api(k8s)
    apps.patch_namespaced_deployment(name, "default", {"metadata": {"annotations": {"by": "patch"}}})
    again = deployment(name)
    again["metadata"]["labels"] = {"team": "a"}
    again["spec"]["replicas"] = 2
    again["spec"]["template"]["spec"]["containers"][0]["image"] = "pause:2"
    deployments.server_side_apply(body=again, namespace="default", field_manager="e2e")
    updated = apps.read_namespaced_deployment(name, "default")
    assert updated.metadata.labels == {"team": "a"}, "the label it stopped applying is gone"
    assert updated.metadata.annotations == {"by": "patch"}
    assert updated.spec.replicas == 2
    assert [c.image for c in updated.spec.template.spec.containers] == ["pause:2"]
    apps.delete_namespaced_deployment(name, "default")


def test_server_side_apply_needs_a_field_manager(k8s: client.ApiClient) -> None:
    """apimachinery's ValidatePatchOptions: an apply patch without `fieldManager` is a 422."""
    name = unique("ssa")
    headers = {"Authorization": k8s.configuration.auth_settings()["BearerToken"]["value"],
               "Content-Type": "application/apply-patch+yaml"}
    resp = k8s.rest_client.pool_manager.request(
        "PATCH", f"{k8s.configuration.host}/api/v1/namespaces/default/configmaps/{name}",
        body=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
        headers=headers)
    assert resp.status == 422
    assert json.loads(resp.data)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
    resp = k8s.rest_client.pool_manager.request(
        "PATCH", f"{k8s.configuration.host}/api/v1/namespaces/default/configmaps/{name}?fieldManager=m",
        body=f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n",
        headers=headers)
    assert resp.status == 201 and json.loads(resp.data)["data"] == {"k": "v"}


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is required (scripts/ensure-tools)")
def test_kubectl_apply_server_side(kubectl: Callable[..., str]) -> None:
    """`kubectl apply --server-side` sends the apply patch with `fieldManager=kubectl`; the
    label it stops applying goes, and the object answers `serverside-applied`."""
    name = unique("ssa")
    manifest = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n  labels: {}\n"
                "data:\n  k: {}\n")
    out = kubectl("apply", "--server-side", "-f", "-",
                  stdin=manifest.format(name, '{a: "1", b: "2"}', "v1"))
    assert f"configmap/{name} serverside-applied" in out
    kubectl("apply", "--server-side", "-f", "-", stdin=manifest.format(name, '{a: "1"}', "v2"))
    cm = json.loads(kubectl("get", "configmap", name, "-o", "json", "--show-managed-fields"))
    assert cm["metadata"]["labels"] == {"a": "1"} and cm["data"] == {"k": "v2"}
    assert [(e["manager"], e["operation"]) for e in cm["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    kubectl("delete", "configmap", name)


def test_apply_removes_a_keyed_list_item_the_manager_stopped_applying() -> None:
    """structured-merge-diff tracks an item of a keyed list as `k:{"name":...}`: an applier
    that leaves a container out removes it, and keeps the one another manager added."""
    from sim.apiserver import apply as ssa

    def pod(*names: str) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": n, "image": "i"} for n in names]}}

    live = ssa.apply({"metadata": {}}, pod("a", "b"), "m", "v1", "t0", custom=False)
    assert live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"][
        'k:{"name":"b"}'] == {".": {}, "f:image": {}, "f:name": {}}
    live["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    after = ssa.apply(live, pod("a"), "m", "v1", "t1", custom=False)
    assert [c["name"] for c in after["spec"]["containers"]] == ["a", "sidecar"]
