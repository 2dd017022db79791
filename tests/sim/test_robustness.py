"""Nothing a client sends can crash the emulated API server or corrupt its store:
property-based requests of every shape against every route."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.apiserver.server import ApiServer
from tests.conftest import start_api_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_api_server(tmp_path_factory.mktemp("fuzz"), nodes=2)
    srv.registry.create(srv.resource("customresourcedefinitions", "apiextensions.k8s.io"), "", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "things", "kind": "Thing"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}}}}]}})
    srv.registry.create(srv.resource("statefulsets", "apps"), "default", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
        "spec": {"replicas": 1, "serviceName": "s", "selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "pause"}]}}}})
    srv.registry.create(srv.resource("poddisruptionbudgets", "policy"), "default", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"name": "p1"}}}})
    yield srv
    srv.stop()


class Client:
    def __init__(self, server: ApiServer) -> None:
        ctx = ssl.create_default_context(cadata=server.tls.ca_pem.decode())  # type: ignore[union-attr]
        self.conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
        self.token = server.identities.token_for("admin")

    def request(self, method: str, path: str, body: bytes | None, ctype: str) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": ctype}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            raise


PATHS = [
    "/api/v1/nodes", "/api/v1/nodes/node-1", "/api/v1/nodes/node-1/status", "/api/v1/namespaces",
    "/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/p1",
    "/api/v1/namespaces/default/pods/p1/status", "/api/v1/namespaces/default/configmaps/c",
    "/api/v1/pods", "/api/v1/namespaces/default/events", "/apis/events.k8s.io/v1/namespaces/default/events",
    "/apis/coordination.k8s.io/v1/namespaces/default/leases/l",
    "/apis/storage.k8s.io/v1/volumeattachments", "/apis/apps/v1/namespaces/default/statefulsets",
    "/apis/example.com/v1/namespaces/default/things", "/apis/example.com/v1/namespaces/default/things/t/status",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "/api", "/apis", "/api/v1", "/version",
    "/openapi/v3", "/openapi/v3/api/v1", "/sim/v1/invariants", "/metrics",
    "/api/v1/namespaces/default/pods/p1/eviction", "/apis/apps/v1/namespaces/default/statefulsets/s/scale",
    "/apis/policy/v1/namespaces/default/poddisruptionbudgets/b", "/apis/apps/v1/namespaces/default/daemonsets",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["metadata", "spec", "status", "name", "taints", "kind", "apiVersion",
                         "resourceVersion", "labels", "finalizers", "op", "path", "value", "$patch",
                         "conditions", "key", "effect", "nodeName", "containers"]) | st.text(max_size=8),
        children, max_size=5),
    max_leaves=20)
objects = st.fixed_dictionaries({"metadata": st.fixed_dictionaries(
    {"name": st.sampled_from(["p1", "c", "l", "t", "node-1", "x"]) | st.text(max_size=10)},
    optional={"labels": st.dictionaries(st.text(max_size=10), json_values, max_size=2),
              "resourceVersion": st.text(max_size=5) | st.integers(),
              "finalizers": st.lists(st.text(max_size=8), max_size=2)})},
    optional={"spec": json_values, "status": json_values, "kind": st.text(max_size=10),
              "apiVersion": st.text(max_size=10), "data": json_values})
bodies = st.one_of(st.none(), st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                   objects.map(lambda v: json.dumps(v).encode()), st.just(b"[" * 5000), st.just(b"{\"a\":" * 3000))
queries = st.dictionaries(
    st.sampled_from(["labelSelector", "fieldSelector", "resourceVersion", "limit", "continue",
                     "fieldValidation", "dryRun", "gracePeriodSeconds", "includeObject"]),
    st.text(max_size=15), max_size=3)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
       path=st.sampled_from(PATHS) | st.builds(lambda a, b: f"/{a}/{b}", st.text(max_size=10), st.text(max_size=10)),
       query=queries, body=bodies,
       ctype=st.sampled_from(["application/json", "application/merge-patch+json",
                              "application/json-patch+json", "application/strategic-merge-patch+json",
                              "application/yaml", "text/plain", "application/vnd.kubernetes.protobuf"]))
def test_no_request_makes_the_server_fail(server: ApiServer, method: str, path: str, query: dict[str, str],
                                          body: bytes | None, ctype: str) -> None:
    from urllib.parse import quote, urlencode

    target = quote(path, safe="/") + ("?" + urlencode(query) if query else "")
    status, data = Client(server).request(method, target, body, ctype)
    assert status < 500, (status, data[:300])
    if data and status >= 400 and not path.startswith("/metrics"):
        assert json.loads(data)["kind"] == "Status"


def test_store_is_intact_after_fuzzing(server: ApiServer) -> None:
    client = Client(server)
    status, data = client.request("GET", "/api/v1/nodes", None, "application/json")
    assert status == 200 and json.loads(data)["kind"] == "NodeList"  # nodes may have been deleted
    for table in server.store.tables():
        for (_ns, name), entry in server.store.items(table):
            obj: dict[str, Any] = json.loads(entry.raw)
            assert obj["metadata"]["name"] == name
            assert obj["metadata"]["resourceVersion"] == str(entry.rv)


def test_watch_with_bad_version_is_a_clean_error(server: ApiServer, tmp_path: Path) -> None:
    client = Client(server)
    status, data = client.request("GET", "/api/v1/nodes?watch=true&resourceVersion=abc", None, "application/json")
    assert status == 400 and json.loads(data)["reason"] == "BadRequest"
