"""Watches, custom resources and the rest of the emulated API server's surface,
through the official Python client."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from sim.apiserver.server import ApiServer
from tests.conftest import start_api_server
from tests.sim.test_client_verbs import make_namespace, raw, unique

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gizmos.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Cluster",
        "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 1, "default": 1},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    }},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                },
            }},
        }],
    },
}


@pytest.fixture(scope="module")
def gizmos(k8s: client.ApiClient) -> client.CustomObjectsApi:
    ext = client.ApiextensionsV1Api(k8s)
    ext.create_custom_resource_definition(CRD)
    return client.CustomObjectsApi(k8s)


def gizmo(name: str, **spec: object) -> dict:
    return {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": name}, "spec": spec}


# --- watch ------------------------------------------------------------------------------


def test_watch_from_resource_version_streams_changes(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version

    def writer() -> None:
        time.sleep(0.2)
        core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}})
        core.patch_namespaced_config_map("w", ns, {"data": {"k": "v"}})
        core.delete_namespaced_config_map("w", ns)

    threading.Thread(target=writer).start()
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_version_starts_with_current_objects(core: client.CoreV1Api) -> None:
    events = []
    w = watch.Watch()
    for event in w.stream(core.list_node, timeout_seconds=2):
        events.append(event)
        if len(events) == 3:
            w.stop()
    assert {e["type"] for e in events} == {"ADDED"}
    assert sorted(e["object"].metadata.name for e in events) == ["node-1", "node-2", "node-3"]


def test_watch_with_selector_sees_objects_leave_and_enter(core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "m", "labels": {"team": "a"}}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version

    def writer() -> None:
        time.sleep(0.2)
        core.patch_namespaced_config_map("m", ns, {"metadata": {"labels": {"team": "b"}}})
        core.patch_namespaced_config_map("m", ns, {"metadata": {"labels": {"team": "a"}}})

    threading.Thread(target=writer).start()
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, label_selector="team=a",
                          resource_version=rv, timeout_seconds=5):
        seen.append(event["type"])
        if len(seen) == 2:
            w.stop()
    assert seen == ["DELETED", "ADDED"]


def test_watch_from_compacted_version_is_410_gone(tmp_path: Path) -> None:
    from kubernetes import config

    server = start_api_server(tmp_path, nodes=1, watch_history=5)
    try:
        cfg = client.Configuration()
        config.load_kube_config(str(tmp_path / "admin.kubeconfig"), client_configuration=cfg)
        core = client.CoreV1Api(client.ApiClient(cfg))
        old = core.list_node().metadata.resource_version
        for i in range(10):
            core.patch_node("node-1", {"metadata": {"labels": {"i": str(i)}}})
        with pytest.raises(ApiException) as err:
            for _ in watch.Watch().stream(core.list_node, resource_version=old, timeout_seconds=2):
                pass
        assert err.value.status == 410
    finally:
        server.stop()


# --- custom resources -------------------------------------------------------------------


def test_crd_becomes_established_and_discoverable(gizmos: client.CustomObjectsApi, k8s: client.ApiClient) -> None:
    crd = client.ApiextensionsV1Api(k8s).read_custom_resource_definition("gizmos.example.com")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    resources = client.ApisApi(k8s).get_api_versions()
    assert "example.com" in [g.name for g in resources.groups]
    listing = client.CustomObjectsApi(k8s).get_api_resources("example.com", "v1")
    names = {r.name for r in listing.resources}
    assert names == {"gizmos", "gizmos/status"}


def test_custom_object_crud_with_defaults_and_pruning(gizmos: client.CustomObjectsApi) -> None:
    name = unique("g")
    body = gizmo(name, color="red", unknown="dropped", extra={"kept": {"deep": 1}})
    created = gizmos.create_cluster_custom_object("example.com", "v1", "gizmos", body)
    assert created["spec"] == {"color": "red", "size": 1, "extra": {"kept": {"deep": 1}}}
    patched = gizmos.patch_cluster_custom_object("example.com", "v1", "gizmos", name,
                                                 {"spec": {"size": 3}})
    assert patched["spec"]["size"] == 3 and patched["metadata"]["generation"] == 2
    gizmos.delete_cluster_custom_object("example.com", "v1", "gizmos", name)
    with pytest.raises(ApiException) as err:
        gizmos.get_cluster_custom_object("example.com", "v1", "gizmos", name)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == f'gizmos.example.com "{name}" not found'


def test_custom_object_schema_violations_are_422(gizmos: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        gizmos.create_cluster_custom_object("example.com", "v1", "gizmos",
                                            gizmo(unique("g"), color="green", size=0))
    assert err.value.status == 422
    fields = {c["field"] for c in json.loads(err.value.body)["details"]["causes"]}
    assert fields == {"spec.color", "spec.size"}


def test_status_subresource_rules(gizmos: client.CustomObjectsApi) -> None:
    name = unique("g")
    body = gizmo(name, color="blue")
    body["status"] = {"phase": "Ignored"}
    created = gizmos.create_cluster_custom_object("example.com", "v1", "gizmos", body)
    assert "status" not in created  # create ignores status
    gizmos.patch_cluster_custom_object("example.com", "v1", "gizmos", name,
                                       {"status": {"phase": "AlsoIgnored"}})
    assert "status" not in gizmos.get_cluster_custom_object("example.com", "v1", "gizmos", name)
    after = gizmos.patch_cluster_custom_object_status("example.com", "v1", "gizmos", name,
                                                      {"spec": {"color": "red"}, "status": {"phase": "Running"}})
    assert after["status"] == {"phase": "Running"}
    assert after["spec"]["color"] == "blue"  # /status ignores everything but status
    assert after["metadata"]["generation"] == 1


def test_custom_object_update_needs_resource_version(gizmos: client.CustomObjectsApi) -> None:
    name = unique("g")
    obj = gizmos.create_cluster_custom_object("example.com", "v1", "gizmos", gizmo(name))
    stale = dict(obj)
    gizmos.replace_cluster_custom_object("example.com", "v1", "gizmos", name, obj)
    with pytest.raises(ApiException) as err:
        gizmos.replace_cluster_custom_object("example.com", "v1", "gizmos", name, stale)
    assert err.value.status == 409
    no_version = gizmo(name)
    with pytest.raises(ApiException) as err:
        gizmos.replace_cluster_custom_object("example.com", "v1", "gizmos", name, no_version)
    assert err.value.status == 422


def test_strategic_merge_patch_on_custom_object_is_415(gizmos: client.CustomObjectsApi, k8s: client.ApiClient) -> None:
    name = unique("g")
    gizmos.create_cluster_custom_object("example.com", "v1", "gizmos", gizmo(name))
    code, _ = raw(k8s, "PATCH", f"/apis/example.com/v1/gizmos/{name}", b'{"spec":{"size":2}}',
                  content_type="application/strategic-merge-patch+json")
    assert code == 415


def test_custom_object_watch(gizmos: client.CustomObjectsApi) -> None:
    name = unique("g")
    rv = gizmos.list_cluster_custom_object("example.com", "v1", "gizmos")["metadata"]["resourceVersion"]
    threading.Timer(0.2, lambda: gizmos.create_cluster_custom_object(
        "example.com", "v1", "gizmos", gizmo(name))).start()
    w = watch.Watch()
    for event in w.stream(gizmos.list_cluster_custom_object, "example.com", "v1", "gizmos",
                          resource_version=rv, timeout_seconds=5):
        assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == name
        w.stop()


# --- events in both versions ------------------------------------------------------------


def test_events_are_one_resource_in_two_versions(k8s: client.ApiClient, core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    events_v1 = client.EventsV1Api(k8s)
    events_v1.create_namespaced_event(ns, {
        "metadata": {"name": "e1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "nodewarden.io/test", "reportingInstance": "t-1",
        "action": "Fence", "reason": "FenceOrdered", "type": "Normal",
        "regarding": {"kind": "Node", "name": "node-1", "apiVersion": "v1"},
        "note": "fence ordered"})
    as_core = core.read_namespaced_event("e1", ns)
    assert as_core.message == "fence ordered"
    assert as_core.involved_object.name == "node-1"
    found = core.list_namespaced_event(ns, field_selector="involvedObject.name=node-1,reason=FenceOrdered")
    assert [e.metadata.name for e in found.items] == ["e1"]
    # events.k8s.io requires what core/v1 left optional (the typed client refuses to send it)
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
            "reason": "X", "regarding": {"kind": "Node", "name": "node-1"}}
    code, status = raw(k8s, "POST", f"/apis/events.k8s.io/v1/namespaces/{ns}/events",
                       json.dumps(body).encode())
    assert code == 422
    assert "eventTime" in status["message"]


# --- audit and discovery ----------------------------------------------------------------


def test_audit_log_names_the_caller(api_server: ApiServer, core: client.CoreV1Api) -> None:
    name = unique("audited")
    core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    records = api_server.audit.query(name=name)
    assert [(r.user, r.verb, r.resource, r.code) for r in records] == [("admin", "create", "configmaps", 201)]


def test_version_and_health(k8s: client.ApiClient) -> None:
    info = client.VersionApi(k8s).get_code()
    assert (info.major, info.minor) == ("1", "32")
    code = k8s.rest_client.pool_manager.request("GET", k8s.configuration.host + "/readyz").status
    assert code == 200


def test_other_kinds_are_served(k8s: client.ApiClient, core: client.CoreV1Api) -> None:
    ns = make_namespace(core)
    storage = client.StorageV1Api(k8s)
    va = storage.create_volume_attachment({
        "metadata": {"name": f"csi-{uuid.uuid4().hex}"},
        "spec": {"attacher": "sim.csi.k8s.io", "nodeName": "node-1",
                 "source": {"persistentVolumeName": "pv-1"}}})
    assert va.spec.node_name == "node-1"
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 2
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "data": {"k": "dg=="}})
    core.create_persistent_volume({"metadata": {"name": unique("pv")},
                                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                            "hostPath": {"path": "/tmp"}}})
