"""The production entry point for real: gunicorn with two workers, against the simulated
API server, serving /metrics that add up over both workers (prometheus_client's
multiprocess mode), limits enforced on chunked bodies, and a bad policy file that stops
start-up with a message naming the field."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, alert, message
from tests.webhook.serving import (
    GUNICORN,
    ROOT,
    children,
    free_port,
    gunicorn_webhook,
    metric,
    scrape,
    simulated_cluster,
    webhook_env,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    with simulated_cluster(tmp) as cluster, gunicorn_webhook(tmp) as (url, proc):
        yield {"url": url, "proc": proc, "cluster": cluster, "tmp": tmp}


value = metric


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


def per_worker_alerts(metrics_dir: Path) -> dict[str, float]:
    """Alerts counted in each worker's own multiprocess file."""
    out = {}
    for path in metrics_dir.glob("counter_*.db"):
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            if family.name == "nodewarden_webhook_alerts_received":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        out[path.stem] = total
    return out


def test_metrics_merge_the_counts_of_both_workers(served: dict[str, Any]) -> None:
    url, tmp = served["url"], served["tmp"]

    def post(i: int) -> None:
        with requests.Session() as s:
            r = s.post(
                url + "/api/v1/alerts",
                json=message(alert(f"node-{i % 3 + 1}")),
                headers={"Authorization": f"Bearer {AM_TOKEN}", "Connection": "close"},
                timeout=10,
            )
            assert r.status_code == 200

    for _ in range(20):  # until both workers have served alerts
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(16)))
        counts = per_worker_alerts(tmp / "metrics")
        if sum(1 for v in counts.values() if v > 0) >= 2:
            break
    busy = [v for v in counts.values() if v > 0]
    assert len(busy) >= 2, counts
    text = scrape(url)
    assert value(text, "nodewarden_webhook_alerts_received_total", status="firing") == sum(
        counts.values()
    )


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
