"""The production entry point for real: gunicorn with two workers, against the simulated
API server, serving /metrics that add up over both workers (prometheus_client's
multiprocess mode), limits enforced on chunked bodies, and a bad policy file that stops
start-up with a message naming the field."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_api_server
from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, alert, message

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


def webhook_env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    (tmp / "am").write_text(AM_TOKEN)
    (tmp / "op").write_text(OPERATOR_TOKEN)
    (tmp / "metrics").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEWARDEN_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        NODEWARDEN_KUBECONFIG=str(tmp / "webhook.kubeconfig"),
        NODEWARDEN_ALERTMANAGER_TOKEN_FILE=str(tmp / "am"),
        NODEWARDEN_OPERATOR_TOKEN_FILE=str(tmp / "op"),
        NODEWARDEN_POLICY_FILE=str(ROOT / "rules" / "remediation.yaml"),
        NODEWARDEN_BIND=f"127.0.0.1:{port}",
        NODEWARDEN_WORKERS="2",
        NODEWARDEN_MAX_BODY_BYTES="65536",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
    )
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen[str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("the webhook did not become ready")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    server = start_api_server(tmp)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(tmp / "admin.kubeconfig"), client_configuration=cfg)
    admin = client.ApiClient(cfg)
    client.ApiextensionsV1Api(admin).create_custom_resource_definition(
        yaml.safe_load(CRD.read_text())
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(GUNICORN), "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"],
        cwd=ROOT,
        env=webhook_env(tmp, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield {"url": url, "proc": proc, "tmp": tmp, "admin": admin}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        admin.close()
        server.stop()


def scrape(url: str) -> str:
    response = requests.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (label order does not matter)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_two_workers_serve_and_metrics_add_up(served: dict[str, Any]) -> None:
    url, proc = served["url"], served["proc"]
    assert len(children(proc.pid)) == 2
    before = scrape(url)
    n = 40
    for i in range(n):
        with requests.Session() as s:  # a new connection each time: both workers serve
            r = s.post(
                url + "/api/v1/alerts",
                json=message(alert(f"node-{i % 3 + 1}")),
                headers={"Authorization": f"Bearer {AM_TOKEN}", "Connection": "close"},
                timeout=10,
            )
        assert r.status_code == 200, r.text
        assert r.json()["alerts"][0]["reason"] == "NodeReady"
    for _ in range(6):  # whichever worker answers the scrape, the totals are the same
        text = scrape(url)
        firing = value(text, "nodewarden_webhook_alerts_received_total", status="firing")
        assert (
            firing - value(before, "nodewarden_webhook_alerts_received_total", status="firing") == n
        )
        decisions = value(
            text, "nodewarden_webhook_decisions_total", verdict="rejected", reason="NodeReady"
        )
        assert decisions >= n
        posts = value(
            text,
            "nodewarden_webhook_request_duration_seconds_count",
            endpoint="/api/v1/alerts",
            method="POST",
            code="200",
        )
        assert posts >= n
        assert value(text, "nodewarden_webhook_nodes") == 3  # this worker's cluster view
        assert value(text, "nodewarden_webhook_cache_synced") == 1
        assert text.count("# TYPE nodewarden_webhook_storm_protection_active gauge") == 1
        assert value(text, "nodewarden_webhook_last_decision_timestamp_seconds") > 1e9


def test_operator_api_through_gunicorn(served: dict[str, Any]) -> None:
    url = served["url"]
    op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    r = requests.get(url + "/api/v1/remediations", headers=op, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"items": []}
    am = requests.get(
        url + "/api/v1/remediations", headers={"Authorization": f"Bearer {AM_TOKEN}"}, timeout=5
    )
    assert am.status_code == 403
    assert requests.get(url + "/openapi.json", timeout=5).json()["openapi"] == "3.0.3"


def test_chunked_body_over_the_limit_is_413(served: dict[str, Any]) -> None:
    url = served["url"]
    payload = b'{"version": "4", "status": "firing", "alerts": [' + b'{"x": 1},' * 20_000 + b"{}]}"

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    r = requests.post(
        url + "/api/v1/alerts",
        data=chunks(),
        headers={"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 413
    assert r.json()["code"] == 413


def test_a_bad_policy_file_stops_start_up_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("stormProtection:\n  maxUnhealthy: lots\n")
    (tmp_path / "webhook.kubeconfig").write_text("")
    env = webhook_env(tmp_path, free_port(), NODEWARDEN_POLICY_FILE=str(tmp_path / "policy.yaml"))
    proc = subprocess.run(
        [str(GUNICORN), "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "stormProtection.maxUnhealthy" in proc.stderr
    assert "Traceback" not in proc.stderr
