"""A real Alertmanager (Debian's prometheus-alertmanager) delivers to the real webhook.

Two Alertmanagers that do not gossip (the worst case of an HA pair: both notify) post
to the webhook under gunicorn through the receiver config docs/webhook.md documents
(`http_config.authorization` with a `credentials_file`), and the webhook works against
the simulated cluster (5 nodes, Kubernetes timings scaled by 0.05), where a powered-off
node really goes NotReady. Alerts are pushed the way Prometheus pushes them (API v2, to
every Alertmanager, again and again); repeats, the HA duplicate and the resolved
notification all arrive, and exactly one NodeRemediation is ever created."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sim.world.cluster import Cluster
from tests.webhook.serving import CRD, free_port, gunicorn_webhook, metric, scrape, stop, wait_ready

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus-alertmanager") is None,
        reason="prometheus-alertmanager is required (make debs installs it)",
    ),
]

CONFIG = """\
route:
  receiver: nodewarden
  group_by: [alertname, node]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: nodewarden
    webhook_configs:
      - url: {url}/api/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""


def start_alertmanager(tmp: Path, name: str, webhook_url: str) -> tuple[str, subprocess.Popen[str]]:
    home = tmp / name
    home.mkdir()
    (home / "alertmanager.yml").write_text(
        CONFIG.format(url=webhook_url, token_file=tmp / "am-token")
    )
    check = subprocess.run(
        ["amtool", "check-config", str(home / "alertmanager.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(home / "log").open("w"),
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, path="/-/ready")
    return url, proc


def push(alertmanagers: list[str], node: str, ends_at: datetime | None = None) -> None:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": {"alertname": "NodeNotReady", "node": node, "severity": "critical"},
        "annotations": {"summary": f"{node} is not Ready"},
        "startsAt": STARTS_AT.isoformat(),
        "generatorURL": "http://prometheus.test/graph",
    }
    alert["endsAt"] = (ends_at or now + timedelta(minutes=5)).isoformat()
    for url in alertmanagers:
        r = requests.post(url + "/api/v2/alerts", json=[alert], timeout=5)
        assert r.status_code == 200, r.text


STARTS_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def eventually(
    check: Callable[[], Any], timeout_s: float = 30.0, every: Callable[[], None] | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        if every:
            every()
        time.sleep(0.25)
    raise AssertionError(f"not reached in {timeout_s}s (last: {last!r})")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("alertmanager")
    with Cluster(nodes=5, time_scale=0.05, workdir=tmp / "cluster") as cluster:
        cluster.apply_file(CRD)
        # The release namespace, as the chart's install has it: the rate-limit ledger lives there.
        cluster.apply_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: nodewarden}\n")
        with gunicorn_webhook(
            tmp, cluster.kubeconfig("webhook"), NODEWARDEN_ALERT_RECORD_INTERVAL_S="0"
        ) as (url, _proc):
            procs = []
            try:
                ams = []
                for name in ("am-a", "am-b"):
                    am_url, proc = start_alertmanager(tmp, name, url)
                    ams.append(am_url)
                    procs.append(proc)
                yield {"cluster": cluster, "webhook": url, "alertmanagers": ams, "tmp": tmp}
            finally:
                for proc in procs:
                    stop(proc)


def creates(cluster: Cluster, name: str) -> list[Any]:
    return [
        r
        for r in cluster.api.audit.query(verb="create", name=name)
        if r.resource.startswith("noderemediations") and r.code < 300
    ]


def writes(cluster: Cluster, name: str) -> str:
    """Every write to the NodeRemediation `name`, one per line: what a failure shows."""
    return "\n".join(
        f"{r.at:.3f} {r.verb} {r.subresource or '-'} {r.code} {r.user} {r.detail}"
        for r in cluster.api.audit.query(name=name)
        if r.resource.startswith("noderemediations") and r.verb not in ("get", "list", "watch")
    )


def remediation(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The stored NodeRemediation, read over HTTPS with the official client."""
    api = admin_client(cluster)
    try:
        obj: dict[str, Any] = client.CustomObjectsApi(api).get_cluster_custom_object(
            "nodewarden.io", "v1alpha1", "noderemediations", name
        )
        return obj
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    finally:
        api.close()


def admin_client(cluster: Cluster) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig("admin")), client_configuration=cfg)
    return client.ApiClient(cfg)


def ready(cluster: Cluster, node: str) -> str:
    obj = cluster.get("nodes", node) or {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return ""


def test_firing_repeats_ha_duplicates_and_resolved(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    ams: list[str] = world["alertmanagers"]
    webhook: str = world["webhook"]
    cluster.fault("power-off", "node-1")
    eventually(lambda: ready(cluster, "node-1") == "Unknown")  # node lifecycle controller
    time.sleep(0.3)  # the webhook's watch sees it too

    push(ams, "node-1")

    created = eventually(lambda: remediation(cluster, "node-1"))
    uid = created["metadata"]["uid"]
    assert created["spec"]["trigger"]["alertName"] == "NodeNotReady"
    assert created["spec"]["trigger"]["startsAt"] == STARTS_AT.strftime("%Y-%m-%dT%H:%M:%SZ")

    # Repeats (repeat_interval 2s, from both Alertmanagers) land on the same record.
    def repeated() -> bool:
        obj = remediation(cluster, "node-1") or {}
        entries = (obj.get("status") or {}).get("alerts") or []
        return any(e["status"] == "firing" and e["count"] >= 4 for e in entries)

    eventually(repeated, every=lambda: push(ams, "node-1"))
    assert remediation(cluster, "node-1")["metadata"]["uid"] == uid  # type: ignore[index]
    assert len(creates(cluster, "node-1")) == 1, writes(cluster, "node-1")
    text = scrape(webhook)
    assert (
        metric(
            text, "nodewarden_webhook_decisions_total", verdict="duplicate", reason="AlreadyActive"
        )
        >= 3
    )
    assert (
        metric(text, "nodewarden_webhook_decisions_total", verdict="accepted", reason="Accepted")
        == 1
    )

    # Resolved: the Alertmanagers learn the alert ended and send resolved notifications.
    push(ams, "node-1", ends_at=datetime.now(UTC) - timedelta(seconds=1))

    def cancelled() -> Any:
        obj = remediation(cluster, "node-1") or {}
        return (obj.get("status") or {}).get("phase") == "Cancelled" and obj

    final = eventually(cancelled)
    assert final["status"]["reason"] == "AlertResolved"
    assert final["status"]["cancellation"]["requestedBy"] == "alertmanager"
    assert final["metadata"]["uid"] == uid
    assert len(creates(cluster, "node-1")) == 1, writes(cluster, "node-1")
    eventually(
        lambda: (
            metric(scrape(webhook), "nodewarden_webhook_alerts_received_total", status="resolved")
            >= 2
        )
    )


def test_alerts_for_ready_nodes_are_delivered_and_rejected(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    push(world["alertmanagers"], "node-2")
    eventually(
        lambda: (
            metric(
                scrape(world["webhook"]),
                "nodewarden_webhook_decisions_total",
                verdict="rejected",
                reason="NodeReady",
            )
            >= 2
        )
    )
    assert remediation(cluster, "node-2") is None


def test_wrong_credentials_are_refused_and_alertmanager_does_not_retry(
    world: dict[str, Any],
) -> None:
    tmp: Path = world["tmp"]
    (tmp / "bad").mkdir(exist_ok=True)
    config = CONFIG.format(url=world["webhook"], token_file=tmp / "bad" / "token")
    (tmp / "bad" / "token").write_text("not-the-token")
    (tmp / "bad" / "alertmanager.yml").write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp / 'bad' / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'bad' / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, path="/-/ready")
        before = metric(
            scrape(world["webhook"]), "nodewarden_webhook_auth_failures_total", reason="invalid"
        )
        push([url], "node-3")
        eventually(
            lambda: (
                metric(
                    scrape(world["webhook"]),
                    "nodewarden_webhook_auth_failures_total",
                    reason="invalid",
                )
                > before
            )
        )
        assert remediation(world["cluster"], "node-3") is None
    finally:
        stop(proc)
