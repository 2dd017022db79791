"""Start the real pieces as processes: the simulated API server with the CRD applied,
and the webhook under gunicorn. Used by the gunicorn and Alertmanager tests."""

from __future__ import annotations

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

import requests
import yaml
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_api_server
from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
CRD = ROOT / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@dataclass
class Cluster:
    """The simulated API server, with the CRD applied and an admin client."""

    server: Any
    admin: client.ApiClient
    tmp: Path

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.admin)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.admin)

    def set_ready(self, node: str, status: str) -> None:
        current = self.core.read_node(node)
        conditions = []
        for c in current.status.conditions:
            d = self.admin.sanitize_for_serialization(c)
            if d["type"] == "Ready":
                d["status"] = status
                d["reason"] = "NodeStatusUnknown" if status != "True" else "KubeletReady"
            conditions.append(d)
        self.core.patch_node_status(node, {"status": {"conditions": conditions}})

    def remediation(self, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_cluster_custom_object(
                "nodewarden.io", "v1alpha1", "noderemediations", name
            )
            return obj
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise


@contextmanager
def simulated_cluster(tmp: Path, nodes: int = 3) -> Iterator[Cluster]:
    server = start_api_server(tmp, nodes=nodes)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(tmp / "admin.kubeconfig"), client_configuration=cfg)
    admin = client.ApiClient(cfg)
    try:
        client.ApiextensionsV1Api(admin).create_custom_resource_definition(
            yaml.safe_load(CRD.read_text())
        )
        # The release namespace, as the chart's install has it: the rate-limit ledger lives there.
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": "nodewarden"}})
        yield Cluster(server, admin, tmp)
    finally:
        admin.close()
        server.stop()


def webhook_env(
    tmp: Path, port: int, kubeconfig: Path | None = None, **extra: str
) -> dict[str, str]:
    (tmp / "am-token").write_text(AM_TOKEN)
    (tmp / "op-token").write_text(OPERATOR_TOKEN)
    (tmp / "metrics").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEWARDEN_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        NODEWARDEN_KUBECONFIG=str(kubeconfig or tmp / "webhook.kubeconfig"),
        NODEWARDEN_ALERTMANAGER_TOKEN_FILE=str(tmp / "am-token"),
        NODEWARDEN_OPERATOR_TOKEN_FILE=str(tmp / "op-token"),
        NODEWARDEN_POLICY_FILE=str(ROOT / "rules" / "remediation.yaml"),
        NODEWARDEN_BIND=f"127.0.0.1:{port}",
        NODEWARDEN_WORKERS="2",
        NODEWARDEN_MAX_BODY_BYTES="65536",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
    )
    env.update(extra)
    return env


def wait_ready(
    url: str,
    proc: subprocess.Popen[str],
    path: str = "/readyz",
    timeout_s: float = 90,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log_path.read_text()[-2000:] if log_path else ""
            raise AssertionError(f"process exited: {detail}")
        try:
            if requests.get(url + path, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


def wait_all_workers(url: str, proc: subprocess.Popen[str], workers: int, timeout_s: float = 90) -> None:
    """The first worker's /readyz says nothing of the others, which may still be importing:
    wait for every worker process, then for a run of fresh connections all answered ready."""
    deadline = time.monotonic() + timeout_s
    while len(children(proc.pid)) < workers:
        if time.monotonic() > deadline:
            raise AssertionError(f"gunicorn started {len(children(proc.pid))} of {workers} workers")
        time.sleep(0.1)
    in_a_row = 0
    while in_a_row < 10 * workers:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: not every worker became ready")
        with requests.Session() as s:
            ok = s.get(url + "/readyz", headers={"Connection": "close"}, timeout=2).status_code == 200
        in_a_row = in_a_row + 1 if ok else 0
        if not ok:
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def gunicorn_webhook(
    tmp: Path, kubeconfig: Path | None = None, **extra: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    log = (tmp / "webhook.log").open("w")  # a file, not a pipe nobody drains
    proc = subprocess.Popen(
        [str(GUNICORN), "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"],
        cwd=ROOT,
        env=webhook_env(tmp, port, kubeconfig, **extra),
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log_path=tmp / "webhook.log")
        wait_all_workers(url, proc, int(extra.get("NODEWARDEN_WORKERS", "2")))
        yield url, proc
    finally:
        stop(proc)
        log.close()


def scrape(url: str) -> str:
    response = requests.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    return response.text


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (label order does not matter)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
