"""An operator's kubectl against the emulated API server: `drain` (eviction through a
PodDisruptionBudget, DaemonSet pods left alone), `scale` (the scale subresource) and
`explain` (the OpenAPI v3 schemas, built-in and from a CRD). The machine's kubectl is
the judge; the server follows kube-apiserver's pkg/registry/core/pod/storage/eviction.go,
pkg/registry/apps/*/storage (ScaleREST) and the OpenAPI v3 handler."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from sim.apiserver.errors import ApiError
from sim.apiserver.server import ApiServer

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None,
                       reason="kubectl is required: `make test` installs/checks it (scripts/ensure-tools)"),
]

REPO = Path(__file__).resolve().parents[2]
CHART_CRD = REPO / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"
NS = "ops"

WORKLOADS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec: {{containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {NS}}}
spec:
  replicas: 2
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec: {{containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: db, namespace: {NS}}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: db}}}}
"""


@pytest.fixture(scope="module")
def kubelets(api_server: ApiServer) -> Iterator[None]:
    """What the kubelets do for a graceful deletion: confirm it (delete with grace 0)
    once the pod is terminating. The API server alone never removes a bound pod."""
    pods = api_server.resource("pods")
    stop = threading.Event()

    def confirm() -> None:
        while not stop.wait(0.05):
            for pod in api_server.registry.list_objs(pods):
                meta = pod["metadata"]
                if meta.get("deletionTimestamp"):
                    try:
                        api_server.registry.delete(pods, meta["namespace"], meta["name"], 0)
                    except ApiError:  # gone meanwhile
                        pass

    thread = threading.Thread(target=confirm, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


def owned_pod(kubectl: Callable[..., str], name: str, owner_kind: str, owner: str, labels: str,
              node: str, ready: bool = True) -> None:
    plural = {"DaemonSet": "daemonset", "StatefulSet": "statefulset"}[owner_kind]
    uid = kubectl("get", plural, owner, "-n", NS, "-o", "jsonpath={.metadata.uid}")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": dict([labels.split("=")]),
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner,
                                             "uid": uid, "controller": True}]},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}]}}
    kubectl("create", "-f", "-", stdin=json.dumps(pod))
    status = "True" if ready else "False"
    kubectl("patch", "pod", name, "-n", NS, "--subresource", "status", "--type", "merge",
            "-p", json.dumps({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}}))


def budget_status(kubectl: Callable[..., str], allowed: int, healthy: int = 2, desired: int = 1) -> None:
    """What the disruption controller writes (the API server alone does not run it)."""
    generation = int(kubectl("get", "pdb", "db", "-n", NS, "-o", "jsonpath={.metadata.generation}"))
    kubectl("patch", "pdb", "db", "-n", NS, "--subresource", "status", "--type", "merge", "-p", json.dumps(
        {"status": {"observedGeneration": generation, "disruptionsAllowed": allowed,
                    "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": 2}}))


def evict(core: client.CoreV1Api, pod: str, body: dict | None = None,
          query: str = "") -> tuple[int, dict, dict[str, str]]:
    """POST an Eviction as a client would; (code, Status, headers)."""
    api = core.api_client
    body = body or {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": NS}}
    resp = api.rest_client.pool_manager.request(
        "POST", f"{api.configuration.host}/api/v1/namespaces/{NS}/pods/{pod}/eviction{query}",
        body=json.dumps(body).encode(),
        headers={"Authorization": api.configuration.auth_settings()["BearerToken"]["value"],
                 "Content-Type": "application/json"})
    return resp.status, json.loads(resp.data), dict(resp.headers)


def get(kubectl: Callable[..., str], *args: str) -> dict:
    return json.loads(kubectl("get", *args, "-n", NS, "-o", "json"))


def test_drain_evicts_only_what_the_budget_allows(kubectl: Callable[..., str], kubelets: None,
                                                  api_server: ApiServer, core: client.CoreV1Api) -> None:
    kubectl("apply", "-f", "-", stdin=WORKLOADS)
    owned_pod(kubectl, "agent-n2", "DaemonSet", "agent", "app=agent", "node-2")
    owned_pod(kubectl, "db-0", "StatefulSet", "db", "app=db", "node-2")
    owned_pod(kubectl, "db-1", "StatefulSet", "db", "app=db", "node-3")
    drain = ("drain", "node-2", "--ignore-daemonsets", "--delete-emptydir-data")

    # No disruption allowed: 429, kubectl retries every 5 s, then gives up; nothing is spent.
    budget_status(kubectl, allowed=0)
    out = kubectl(*drain, "--timeout=2s", ok=False)
    assert "Cannot evict pod as it would violate the pod's disruption budget." in out
    assert "global timeout reached" in out
    assert kubectl("get", "pod", "db-0", "-n", NS, "-o", "name") == "pod/db-0\n"
    assert get(kubectl, "node", "node-2")["spec"]["unschedulable"] is True
    code, status, headers = evict(core, "db-0")
    assert (code, status["reason"]) == (429, "TooManyRequests")
    assert status["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
                                            "The disruption budget db needs 1 healthy pods and has 2 currently"}]
    assert "Retry-After" not in headers
    assert get(kubectl, "pdb", "db")["status"]["disruptionsAllowed"] == 0

    # One disruption allowed: db-0 is evicted, the DaemonSet's pod stays.
    budget_status(kubectl, allowed=1)
    out = kubectl(*drain, "--timeout=30s")
    assert "pod/db-0 evicted" in out and "node/node-2 drained" in out
    pods = {p["metadata"]["name"] for p in get(kubectl, "pods")["items"]}
    assert pods == {"agent-n2", "db-1"}
    status = get(kubectl, "pdb", "db")["status"]
    assert status["disruptionsAllowed"] == 0 and set(status["disruptedPods"]) == {"db-0"}
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("DisruptionAllowed", "False", "InsufficientPods")]
    evictions = [r for r in api_server.audit.query(verb="create", resource="pods")
                 if r.subresource == "eviction"]
    assert {(r.name, r.code) for r in evictions} >= {("db-0", 201), ("db-0", 429)}

    # The budget is spent: db-1 cannot go too.
    assert evict(core, "db-1")[0] == 429
    kubectl("uncordon", "node-2")


def test_drain_can_delete_instead_of_evicting(kubectl: Callable[..., str], kubelets: None) -> None:
    """`--disable-eviction` sends protobuf DeleteOptions, which bypass the budget as on a real server."""
    owned_pod(kubectl, "db-9", "StatefulSet", "db", "app=db", "node-1")
    out = kubectl("drain", "node-1", "--ignore-daemonsets", "--delete-emptydir-data",
                  "--disable-eviction", "--timeout=30s")
    assert "pod/db-9 deleted" in out and "node/node-1 drained" in out
    assert "NotFound" in kubectl("get", "pod", "db-9", "-n", NS, ok=False)
    kubectl("uncordon", "node-1")


def test_scale_statefulset_deployment_and_replicaset(kubectl: Callable[..., str]) -> None:
    assert "statefulset.apps/db scaled" in kubectl("scale", "statefulset/db", "-n", NS, "--replicas=5")
    assert get(kubectl, "statefulset", "db")["spec"]["replicas"] == 5
    kubectl("scale", "sts", "db", "-n", NS, "--current-replicas=5", "--replicas=3")
    assert get(kubectl, "statefulset", "db")["spec"]["replicas"] == 3
    out = kubectl("scale", "sts", "db", "-n", NS, "--current-replicas=7", "--replicas=1", ok=False)
    assert "Expected replicas to be 7, was 3" in out

    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}
    kubectl("apply", "-f", "-", stdin=json.dumps(web))
    kubectl("scale", "deployment/web", "-n", NS, "--replicas=0")
    assert get(kubectl, "deployment", "web")["spec"]["replicas"] == 0
    rs = {**web, "kind": "ReplicaSet", "metadata": {"name": "web-rs", "namespace": NS}}
    kubectl("apply", "-f", "-", stdin=json.dumps(rs))
    kubectl("scale", "rs", "web-rs", "-n", NS, "--replicas=4")
    assert get(kubectl, "replicaset", "web-rs")["spec"]["replicas"] == 4
    assert 'statefulsets.apps "nope" not found' in kubectl("scale", "sts", "nope", "-n", NS, "--replicas=1", ok=False)


def test_explain_builtin_kinds(kubectl: Callable[..., str]) -> None:
    out = kubectl("explain", "pods.spec.tolerations")
    assert "KIND:       Pod" in out and "FIELD: tolerations <[]Toleration>" in out
    assert "tolerationSeconds\t<integer>" in out
    out = kubectl("explain", "statefulset.spec.podManagementPolicy")
    assert "GROUP:      apps" in out and "OrderedReady" in out
    out = kubectl("explain", "pdb.status")
    assert "GROUP:      policy" in out and "disruptionsAllowed\t<integer> -required-" in out
    assert "ports\t<[]ContainerPort>" in kubectl("explain", "pod.spec.containers")


def test_explain_follows_the_crd_schema(kubectl: Callable[..., str]) -> None:
    kubectl("apply", "-f", str(CHART_CRD))
    kubectl("wait", "--for", "condition=established", "crd/noderemediations.nodewarden.io", "--timeout=10s")
    out = kubectl("explain", "noderemediation.spec")
    assert "GROUP:      nodewarden.io" in out and "KIND:       NodeRemediation" in out
    assert "nodeName\t<string> -required-" in out
    assert "trigger\t<Object> -required-" in out and "OutOfServiceTaint" in out
    assert "metadata\t<ObjectMeta>" in kubectl("explain", "noderemediation")

    # A changed schema is a new document hash: kubectl's cache follows it.
    crd = json.loads(kubectl("get", "crd", "noderemediations.nodewarden.io", "-o", "json"))
    version = crd["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["ticket"] = {
        "type": "string", "description": "The change ticket this remediation belongs to."}
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        crd["metadata"].pop(key, None)
    crd.pop("status", None)
    kubectl("replace", "-f", "-", stdin=json.dumps(crd))
    assert "The change ticket this remediation belongs to." in kubectl("explain", "noderemediation.spec.ticket")


def test_eviction_rules_of_the_real_server(kubectl: Callable[..., str], core: client.CoreV1Api,
                                           kubelets: None) -> None:
    """eviction.go's cases a drain does not reach: the name check, dry run, a budget not yet
    observed (429 with Retry-After), two budgets (500), pods that skip the budget."""
    owned_pod(kubectl, "db-5", "StatefulSet", "db", "app=db", "node-1")
    code, status, _ = evict(core, "db-5", {"apiVersion": "policy/v1", "kind": "Eviction",
                                           "metadata": {"name": "db-6"}})
    assert (code, status["message"]) == (400, "name in URL does not match name in Eviction object")

    budget_status(kubectl, allowed=1)
    code, status, _ = evict(core, "db-5", query="?dryRun=All")
    assert (code, status["status"]) == (201, "Success")
    assert get(kubectl, "pdb", "db")["status"]["disruptionsAllowed"] == 1  # nothing spent
    assert kubectl("get", "pod", "db-5", "-n", NS, "-o", "name") == "pod/db-5\n"

    kubectl("patch", "pdb", "db", "-n", NS, "--type", "merge", "-p", '{"spec":{"minAvailable":2}}')
    code, status, headers = evict(core, "db-5")  # (client-go would wait and retry, 10 times)
    assert code == 429 and headers.get("Retry-After") == "10"
    assert status["details"]["causes"][0]["message"] == \
        "The disruption budget db is still being processed by the server."

    second = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": {"name": "db-too", "namespace": NS},
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}}}
    kubectl("create", "-f", "-", stdin=json.dumps(second))
    code, status, _ = evict(core, "db-5")
    assert code == 500 and "more than one PodDisruptionBudget" in status["message"]

    # A pending pod has disrupted nothing yet: evicted without a look at either budget.
    kubectl("patch", "pod", "db-5", "-n", NS, "--subresource", "status", "--type", "merge",
            "-p", '{"status":{"phase":"Pending"}}')
    assert evict(core, "db-5")[0] == 201
    assert "NotFound" in kubectl("get", "pod", "db-5", "-n", NS, ok=False)
    kubectl("delete", "pdb", "db-too", "-n", NS)


def test_scale_subresource_rules(kubectl: Callable[..., str], core: client.CoreV1Api) -> None:
    """ScaleREST through the official client: the Scale's fields, a stale resourceVersion
    (409), a negative replica count (422)."""
    apps = client.AppsV1Api(core.api_client)
    kubectl("apply", "-f", "-", stdin=WORKLOADS)
    scale = apps.read_namespaced_stateful_set_scale("db", NS)
    sts = apps.read_namespaced_stateful_set("db", NS)
    assert (scale.metadata.uid, scale.metadata.resource_version) == (sts.metadata.uid, sts.metadata.resource_version)
    assert (scale.spec.replicas, scale.status.selector) == (sts.spec.replicas, "app=db")

    apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": 2}})
    with pytest.raises(client.ApiException) as stale:
        apps.replace_namespaced_stateful_set_scale("db", NS, scale)  # carries the old resourceVersion
    assert stale.value.status == 409
    with pytest.raises(client.ApiException) as negative:
        apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": -1}})
    assert negative.value.status == 422
    assert json.loads(negative.value.body)["message"] == (
        'Scale.autoscaling "db" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0')
    assert apps.read_namespaced_stateful_set("db", NS).spec.replicas == 2


def test_an_unready_pod_is_evicted_without_spending_a_met_budget(kubectl: Callable[..., str],
                                                                 core: client.CoreV1Api, kubelets: None) -> None:
    kubectl("apply", "-f", "-", stdin=WORKLOADS)
    owned_pod(kubectl, "db-7", "StatefulSet", "db", "app=db", "node-1", ready=False)
    budget_status(kubectl, allowed=0, healthy=1, desired=1)
    assert evict(core, "db-7")[0] == 201
    assert "disruptedPods" not in get(kubectl, "pdb", "db")["status"] or \
        "db-7" not in get(kubectl, "pdb", "db")["status"]["disruptedPods"]
    assert "NotFound" in kubectl("get", "pod", "db-7", "-n", NS, ok=False)
