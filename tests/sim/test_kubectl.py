"""The emulated API server driven by the machine's kubectl (client-go): every verb we
document as working in docs/sim.md is exercised here."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable

import pytest
import yaml

from sim.apiserver.server import ApiServer

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None,
                       reason="kubectl is required: `make test` installs/checks it (scripts/ensure-tools)"),
]

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            properties:
              phase: {type: string}
"""


def test_get_nodes_table(kubectl: Callable[..., str]) -> None:
    out = kubectl("get", "nodes").splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [line.split()[:2] for line in out[1:]] == [["node-1", "Ready"], ["node-2", "Ready"],
                                                      ["node-3", "Ready"]]


def test_get_output_formats(kubectl: Callable[..., str]) -> None:
    as_json = json.loads(kubectl("get", "node", "node-1", "-o", "json"))
    assert as_json["metadata"]["name"] == "node-1"
    as_yaml = yaml.safe_load(kubectl("get", "nodes", "-o", "yaml"))
    assert as_yaml["kind"] == "List" and len(as_yaml["items"]) == 3
    boot = kubectl("get", "node", "node-2", "-o", "jsonpath={.status.nodeInfo.bootID}")
    assert len(boot) == 36
    wide = kubectl("get", "nodes", "-o", "wide")
    assert "INTERNAL-IP" in wide and "10.0.0.11" in wide


def test_describe_node(kubectl: Callable[..., str]) -> None:
    out = kubectl("describe", "node", "node-1")
    assert "Name:               node-1" in out
    assert "KubeletReady" in out


def test_label_annotate_taint(kubectl: Callable[..., str], api_server: ApiServer) -> None:
    kubectl("label", "node", "node-2", "zone=west")
    kubectl("annotate", "node", "node-2", "example.com/note=hello")
    kubectl("taint", "node", "node-2", "dedicated=db:NoSchedule")
    kubectl("taint", "node", "node-2", "other=x:NoExecute")
    node = json.loads(kubectl("get", "node", "node-2", "-o", "json"))
    assert node["metadata"]["labels"]["zone"] == "west"
    assert node["metadata"]["annotations"]["example.com/note"] == "hello"
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("dedicated", "NoSchedule"), ("other", "NoExecute")}
    kubectl("taint", "node", "node-2", "dedicated-")
    node = json.loads(kubectl("get", "node", "node-2", "-o", "json"))
    assert [t["key"] for t in node["spec"]["taints"]] == ["other"]
    assert "zone=west" in kubectl("get", "nodes", "-l", "zone=west", "--show-labels")
    users = {r.user for r in api_server.audit.query(name="node-2", verb="patch")}
    assert users == {"admin"}


def test_patch_types(kubectl: Callable[..., str]) -> None:
    kubectl("patch", "node", "node-3", "-p", '{"spec":{"unschedulable":true}}')
    kubectl("patch", "node", "node-3", "--type", "merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    kubectl("patch", "node", "node-3", "--type", "json",
            "-p", '[{"op":"add","path":"/metadata/labels/j","value":"2"}]')
    assert "SchedulingDisabled" in kubectl("get", "node", "node-3")
    labels = json.loads(kubectl("get", "node", "node-3", "-o", "jsonpath={.metadata.labels}"))
    assert labels["m"] == "1" and labels["j"] == "2"
    kubectl("patch", "node", "node-3", "-p", '{"spec":{"unschedulable":false}}')


def test_apply_crd_and_custom_object(kubectl: Callable[..., str]) -> None:
    assert "created" in kubectl("apply", "-f", "-", stdin=CRD)
    kubectl("wait", "--for", "condition=established", "crd/widgets.example.com", "--timeout=10s")
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n"
    assert "created" in kubectl("apply", "-f", "-", stdin=widget)
    assert "configured" in kubectl("apply", "-f", "-", stdin=widget.replace("size: 3", "size: 4"))
    assert kubectl("get", "widget", "w1", "-o", "jsonpath={.spec.size}") == "4"
    kubectl("patch", "wd", "w1", "--subresource", "status", "--type", "merge",
            "-p", '{"status":{"phase":"Running"}}')
    table = kubectl("get", "widgets").splitlines()
    assert table[0].split() == ["NAME", "PHASE", "AGE"] or table[0].split()[:2] == ["NAME", "PHASE"]
    assert table[1].split()[:2] == ["w1", "Running"]
    strict = kubectl("apply", "-f", "-", stdin=widget.replace("size: 3", "size: 3, bogus: 1"), ok=False)
    assert 'unknown field "spec.bogus"' in strict
    assert "deleted" in kubectl("delete", "widget", "w1")
    assert "No resources found" in kubectl("get", "widgets", ok=False)


def test_apply_builtin_objects_and_delete(kubectl: Callable[..., str]) -> None:
    manifest = """
apiVersion: v1
kind: Namespace
metadata: {name: kubectl-test}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: kubectl-test}
data: {a: "1"}
"""
    kubectl("apply", "-f", "-", stdin=manifest)
    kubectl("apply", "-f", "-", stdin=manifest.replace('a: "1"', 'a: "2"'))
    assert kubectl("get", "cm", "settings", "-n", "kubectl-test", "-o", "jsonpath={.data.a}") == "2"
    kubectl("delete", "configmap", "settings", "-n", "kubectl-test")
    kubectl("delete", "namespace", "kubectl-test")
    assert "NotFound" in kubectl("get", "ns", "kubectl-test", ok=False)


def test_errors_are_reported_like_a_real_server(kubectl: Callable[..., str]) -> None:
    out = kubectl("get", "node", "nope", ok=False)
    assert 'Error from server (NotFound): nodes "nope" not found' in out
    out = kubectl("get", "nodes", "--field-selector", "spec.bogus=1", ok=False)
    assert "field label not supported" in out


def test_api_resources_lists_custom_kinds(kubectl: Callable[..., str]) -> None:
    out = kubectl("api-resources")
    assert "volumeattachments" in out and "leases" in out
