"""The emulated API server's throughput and memory (issue: API emulator).

- GET and PATCH throughput over one HTTPS keep-alive connection, raw and through the
  official Python client. Target: at least 2,000 GETs/s.
- RSS of a store holding 5,000 nodes and 20,000 pods, measured in a process of its own.
  Target: under 500 MiB.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import rss_mib, write_result

DURATION_S = 5.0


def _connection(server: Any) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cadata=server.tls.ca_pem.decode())
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)


def _rate(fn: Any, duration: float = DURATION_S) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def throughput() -> dict[str, float]:
    from kubernetes import client, config

    from sim.apiserver.server import ADMIN, ApiServer, node_object

    # The server runs in a subprocess so that client and server do not share a GIL.
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "admin.kubeconfig"
        proc = subprocess.Popen([sys.executable, "-m", "sim", "serve", "--nodes", "50", "--port", "0",
                                 "--kubeconfig-out", str(kubeconfig)], stdout=subprocess.PIPE, text=True)
        try:
            proc.stdout.readline()  # type: ignore[union-attr]
            cfg = client.Configuration()
            config.load_kube_config(str(kubeconfig), client_configuration=cfg)
            api = client.ApiClient(cfg)
            core = client.CoreV1Api(api)
            token = cfg.auth_settings()["BearerToken"]["value"]
            import base64

            import yaml

            doc = yaml.safe_load(kubeconfig.read_text())
            ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
            port = int(doc["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1])
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                               context=ssl.create_default_context(cadata=ca))
            headers = {"Authorization": token, "Accept": "application/json"}

            def raw_get() -> None:
                conn.request("GET", "/api/v1/nodes/node-1", headers=headers)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200

            counter = iter(range(10**9))

            def raw_patch() -> None:
                body = json.dumps({"metadata": {"labels": {"bench": str(next(counter))}}})
                conn.request("PATCH", "/api/v1/nodes/node-2", body=body,
                             headers={**headers, "Content-Type": "application/strategic-merge-patch+json"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200

            results = {
                "raw_get_per_s": _rate(raw_get),
                "raw_patch_per_s": _rate(raw_patch),
                "client_get_per_s": _rate(lambda: core.read_node("node-3")),
                "client_patch_per_s": _rate(lambda: core.patch_node(
                    "node-4", {"metadata": {"labels": {"bench": str(next(counter))}}})),
            }
            api.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    del ApiServer, ADMIN, node_object
    return results


def _pod(i: int, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"app-{i}", "labels": {"app": f"app-{i % 50}", "tier": "backend"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": f"app-{i % 50}-5d4b", "uid": f"uid-{i % 50}",
                                          "controller": True}]},
        "spec": {"nodeName": node, "containers": [{
            "name": "app", "image": "registry.example.com/team/app:1.2.3",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "production"}, {"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "500m", "memory": "256Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}]},
    }


def memory_child() -> None:
    """Runs in its own process: fill a store, print the RSS as JSON."""
    from sim.apiserver.registry import Registry
    from sim.apiserver.resources import ResourceRegistry
    from sim.apiserver.server import node_object
    from sim.apiserver.store import Store
    from sim.world.workloads import default_tolerations

    baseline = rss_mib()
    store = Store()
    types = ResourceRegistry()
    registry = Registry(store, types)
    registry.admission.append(default_tolerations)
    ns_rt, nodes_rt, pods_rt = (types.lookup("", "v1", p) for p in ("namespaces", "nodes", "pods"))
    registry.create(ns_rt, "", {"metadata": {"name": "default"}})  # type: ignore[arg-type]
    now = time.time()
    for i in range(5000):
        registry.create(nodes_rt, "", node_object(f"node-{i}", i, now))  # type: ignore[arg-type]
    for i in range(20000):
        registry.create(pods_rt, "default", _pod(i, f"node-{i % 5000}"))  # type: ignore[arg-type]
    print(json.dumps({"baseline_rss_mib": baseline, "rss_mib": rss_mib(),
                      "objects": store.count("/nodes") + store.count("/pods"),
                      "stored_bytes_mib": sum(len(e.raw) for t in ("/nodes", "/pods")
                                              for _, e in store.items(t)) / 2**20}))


def memory() -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", "from bench.sim_api import memory_child; memory_child()"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run() -> dict[str, Any]:
    speed = throughput()
    mem = memory()
    result = {
        "throughput": speed, "memory": mem,
        "targets": {"raw_get_per_s": ">= 2000", "rss_mib": "< 500"},
        "met": {"raw_get_per_s": speed["raw_get_per_s"] >= 2000, "rss_mib": mem["rss_mib"] < 500},
    }
    write_result("sim_api", result)
    return result
