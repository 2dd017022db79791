"""The processes the webhook benchmark starts, and what it sends them: the simulated API
server in a child process (nodes as plain objects whose Ready condition the benchmark
sets, no kubelets), gunicorn running the real webhook or a bare Flask endpoint with the
shipped `webhook/gunicorn.conf.py`, the Alertmanager payloads, and one-shot GET/POST
helpers. Each server is its own process group so its CPU can be measured apart.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).parent / "gunicorn"
CRD = ROOT / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"
POLICY = ROOT / "rules" / "remediation.yaml"
AM_TOKEN = "bench-alertmanager-token-0123456789abcdef"
OPERATOR_TOKEN = "bench-operator-token-0123456789abcdef"

# -- payloads ---------------------------------------------------------------------------


def alert(node: str, starts_at: str = "2026-01-02T03:04:05Z") -> dict[str, Any]:
    return {"status": "firing",
            "labels": {"alertname": "NodeNotReady", "node": node, "severity": "critical",
                       "namespace": "monitoring", "prometheus": "monitoring/k8s"},
            "annotations": {"summary": f"{node} is not Ready",
                            "runbook_url": "https://example.com/runbooks/NodeNotReady"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=kube_node_status_condition",
            "fingerprint": f"fp-{node}"}


def message(nodes: list[str]) -> dict[str, Any]:
    """One Alertmanager notification (webhook payload version 4)."""
    alerts = [alert(n) for n in nodes]
    common = alerts[0]["labels"] if len(alerts) == 1 else {"alertname": "NodeNotReady"}
    return {"version": "4", "groupKey": '{}:{alertname="NodeNotReady"}', "truncatedAlerts": 0,
            "status": "firing", "receiver": "nodewarden", "groupLabels": {"alertname": "NodeNotReady"},
            "commonLabels": common, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "alerts": alerts}


def raw_post(port: int, body: bytes) -> bytes:
    return (f"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {AM_TOKEN}\r\nContent-Type: application/json\r\n"
            f"User-Agent: Alertmanager/0.28.1\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


# -- the bare endpoint (a gunicorn app factory: "bench.webhook_servers:bare_app()") -----------------


def bare_app() -> Any:
    from flask import Flask, request

    app = Flask("bare")

    @app.post("/api/v1/alerts")
    def alerts() -> Any:
        request.get_json()
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Any:
        return {"status": "ok"}

    return app


# -- the simulated API server, in a process of its own -------------------------------------


def api_child() -> None:
    """argv: workdir, nodes, not-ready count. Prints one JSON line when serving, then
    serves until stdin closes."""
    from sim.apiserver.server import ADMIN, WEBHOOK, ApiServer, node_object

    workdir, nodes, not_ready = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    server = ApiServer(workdir=workdir, watch_history=20000)
    import yaml

    crd = yaml.safe_load(CRD.read_text())
    registry = server.registry
    registry.create(registry.types.by_kind(crd["apiVersion"], crd["kind"]), "", crd)
    registry.create(server.resource("namespaces"), "", {"metadata": {"name": "nodewarden"}})
    rt, now = server.resource("nodes"), time.time()
    for i in range(1, nodes + 1):
        obj = node_object(f"node-{i}", i, now)
        if i <= not_ready:
            for cond in obj["status"]["conditions"]:
                if cond["type"] == "Ready":
                    cond.update(status="Unknown", reason="NodeStatusUnknown",
                                message="Kubelet stopped posting node status.")
        registry.create(rt, "", obj)
    server.start()
    server.write_kubeconfig(workdir / "webhook.kubeconfig", WEBHOOK)
    server.write_kubeconfig(workdir / "admin.kubeconfig", ADMIN)
    print(json.dumps({"port": server.port}), flush=True)
    sys.stdin.read()
    server.stop()


@dataclass
class Api:
    proc: subprocess.Popen[str]
    workdir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "webhook.kubeconfig"


@contextmanager
def api_server(workdir: Path, nodes: int, not_ready: int) -> Iterator[Api]:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bench.webhook_servers import api_child; api_child()",
         str(workdir), str(nodes), str(not_ready)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the simulated API server did not start")
        yield Api(proc, workdir)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- gunicorn servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]


@contextmanager
def gunicorn(name: str, app: str, workdir: Path, kubeconfig: Path) -> Iterator[Server]:
    """`gunicorn -c webhook/gunicorn.conf.py APP` with the webhook's environment (the
    configuration file validates it at start, whichever app it serves)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "am-token").write_text(AM_TOKEN)
    (workdir / "op-token").write_text(OPERATOR_TOKEN)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NODEWARDEN_") or k in ("NODEWARDEN_WORKERS", "NODEWARDEN_WORKER_CONNECTIONS")}
    env.update(NODEWARDEN_KUBECONFIG=str(kubeconfig),
               NODEWARDEN_ALERTMANAGER_TOKEN_FILE=str(workdir / "am-token"),
               NODEWARDEN_OPERATOR_TOKEN_FILE=str(workdir / "op-token"),
               NODEWARDEN_POLICY_FILE=str(POLICY), NODEWARDEN_BIND=f"127.0.0.1:{port}",
               PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"))
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(GUNICORN), "-c", "webhook/gunicorn.conf.py", app], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, proc, port, log)
    try:
        deadline = time.monotonic() + 180  # a loaded shared machine can take minutes
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post(port: int, body: bytes) -> tuple[int, bytes, float]:
    """One post on a fresh connection; (status, body, seconds until the whole answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.connect()
        start = time.perf_counter()
        conn.request("POST", "/api/v1/alerts", body=body,
                     headers={"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - start
    finally:
        conn.close()


