"""Slow clients cannot hold the webhook (issue 14): 64 connections that send their request
head a byte at a time (and 8 that drip a body), each reopened as soon as the webhook drops
it, are held against the webhook under gunicorn while a real Alertmanager delivers alerts
about five nodes of the simulated cluster. `/healthz` answers within 1 s throughout, every
alert is handled, and Alertmanager records no failed notification."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sim.world.cluster import Cluster
from tests.webhook.conftest import AM_TOKEN
from tests.webhook.serving import CRD, gunicorn_webhook, metric, scrape, stop
from tests.webhook.test_alertmanager import eventually, push, ready, remediation, start_alertmanager

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus-alertmanager") is None,
        reason="prometheus-alertmanager is required (make debs installs it)",
    ),
]

SLOW_HEADERS = 64
SLOW_BODIES = 8
NODES = [f"node-{i}" for i in range(1, 6)]


class Holders:
    """Threads that each keep one slow connection open against the webhook."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stopping = threading.Event()
        self.opened = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self, headers: int, bodies: int) -> None:
        for i in range(headers + bodies):
            head = b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
            if i >= headers:
                head += b"Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n"
            t = threading.Thread(target=self._hold, args=(head, i < headers), daemon=True)
            t.start()
            self.threads.append(t)

    def _hold(self, head: bytes, drip_head: bool) -> None:
        while not self.stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    with self._lock:
                        self.opened += 1
                    s.sendall(head[:20] if drip_head else head)
                    while not self.stopping.wait(0.5):
                        s.sendall(b"X" if drip_head else b"[")
            except OSError:
                with self._lock:
                    self.dropped += 1
                self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(5)


# Shorter than the default 30 s, so the 408 test does not wait half a minute.
BODY_TIMEOUT_S = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("slow")
    with Cluster(nodes=5, time_scale=0.05, workdir=tmp / "cluster") as cluster:
        cluster.apply_file(CRD)
        # The release namespace, as the chart's install has it: the rate-limit ledger lives there.
        cluster.apply_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: nodewarden}\n")
        with gunicorn_webhook(
            tmp, cluster.kubeconfig("webhook"), NODEWARDEN_ALERT_RECORD_INTERVAL_S="0",
            NODEWARDEN_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        ) as (url, _proc):
            am_url, am = start_alertmanager(tmp, "am", url)
            try:
                yield {"cluster": cluster, "webhook": url, "alertmanager": am_url}
            finally:
                stop(am)


def am_metric(url: str, name: str, **labels: str) -> float:
    return metric(requests.get(url + "/metrics", timeout=5).text, name, **labels)


def test_slow_clients_hold_nothing_while_alertmanager_delivers(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    webhook: str = world["webhook"]
    am: str = world["alertmanager"]
    cluster.fault("power-off", "node-1")
    eventually(lambda: ready(cluster, "node-1") == "Unknown")
    time.sleep(0.3)  # the webhook's watch sees it too

    holders = Holders(int(webhook.rsplit(":", 1)[1]))
    holders.start(SLOW_HEADERS, SLOW_BODIES)
    try:
        eventually(lambda: holders.opened >= SLOW_HEADERS + SLOW_BODIES)
        for node in NODES:
            push([am], node)
        worst = 0.0
        began = time.monotonic()
        while time.monotonic() - began < 12.0:  # past the header and body deadlines
            started = time.monotonic()
            r = requests.get(webhook + "/healthz", timeout=5)
            took = time.monotonic() - started
            assert r.status_code == 200
            assert took < 1.0, f"/healthz took {took:.2f}s with slow clients attached"
            worst = max(worst, took)
            time.sleep(0.2)

        def handled() -> bool:
            text = scrape(webhook)
            return (
                metric(text, "nodewarden_webhook_decisions_total",
                       verdict="rejected", reason="NodeReady") >= len(NODES) - 1
                and metric(text, "nodewarden_webhook_decisions_total",
                           verdict="accepted", reason="Accepted") == 1
            )

        eventually(handled, timeout_s=20.0, every=lambda: [push([am], n) for n in NODES])
        assert remediation(cluster, "node-1") is not None
        assert am_metric(am, "alertmanager_notifications_total", integration="webhook") >= len(NODES)
        assert am_metric(
            am, "alertmanager_notifications_failed_total", integration="webhook"
        ) == 0
        assert holders.opened > SLOW_HEADERS + SLOW_BODIES  # the deadlines dropped and they came back
    finally:
        holders.stop()
    assert requests.get(webhook + "/healthz", timeout=5).status_code == 200


def test_oversized_headers_are_answered_431_as_json(world: dict[str, Any]) -> None:
    r = requests.get(world["webhook"] + "/healthz", headers={"X-Big": "x" * 20_000}, timeout=5)
    assert r.status_code == 431
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert (body["code"], body["name"]) == (431, "Request Header Fields Too Large")


def test_a_body_slower_than_its_deadline_is_answered_408(world: dict[str, Any]) -> None:
    """NODEWARDEN_BODY_TIMEOUT_S bounds the whole body, however it is dripped."""
    port = int(world["webhook"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + AM_TOKEN.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        began = time.monotonic()
        s.settimeout(0.5)
        answer = b""
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                if not answer:
                    s.sendall(b" ")
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break  # closed after the answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":408' in answer
    assert b"Connection: close" in answer  # and the connection ends with it
    # The configured deadline (the default, 30 s, is the same code with another number).
    assert BODY_TIMEOUT_S - 1 < time.monotonic() - began < BODY_TIMEOUT_S + 10
