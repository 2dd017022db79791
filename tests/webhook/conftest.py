"""Webhook test worlds: the real app over the in-memory fake API, built in one line.

`world()` gives a 5-node cluster (all Ready), the app with a fake clock, and helpers to
post alerts and operator requests with the right credentials. The app's watcher threads
run against the fake's watch; `world.settle()` waits until the cache saw every write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.clock import FakeClock, rfc3339
from tests.webhook.fake_kube import FakeWebhookKube
from webhook.app import create_app
from webhook.auth import load_credentials
from webhook.kube import Resource
from webhook.metrics import WebhookMetrics
from webhook.policy import Policy, parse_policy
from webhook.services import Services
from webhook.settings import WebhookSettings

AM_TOKEN = "am-token-0123456789"
OPERATOR_TOKEN = "op-token-9876543210"
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def alert(
    node: str | None = "node-1",
    status: str = "firing",
    name: str = "NodeNotReady",
    starts_at: float = START - 600,
    fingerprint: str | None = None,
    label: str = "node",
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": name, **labels}
    if node is not None:
        all_labels[label] = node
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{node} is not ready"},
        "startsAt": rfc3339(starts_at),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(START),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint or f"fp-{name}-{node}",
    }


def message(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="NodeNotReady"}',
        "truncatedAlerts": 0,
        "status": status
        or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved"),
        "receiver": "nodewarden",
        "groupLabels": {"alertname": "NodeNotReady"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@dataclass
class World:
    kube: FakeWebhookKube
    clock: FakeClock
    app: Flask
    client: FlaskClient
    svc: Services
    metrics: WebhookMetrics
    tmp: Path

    def settle(self, timeout_s: float = 5.0) -> None:
        """Wait until the cache has seen every write and every queued Event went out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.svc.cache.synced() and all(
                int(self.svc.cache.resource_version(r) or 0) >= self.kube.latest_for(r)
                for r in Resource
            ):
                break
            time.sleep(0.002)
        else:
            raise AssertionError("the cache did not catch up with the fake API")
        assert self.svc.recorder.drain(timeout_s)

    def post_alerts(self, body: Any, token: str | None = AM_TOKEN, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.post("/api/v1/alerts", json=body, headers=headers, **kwargs)
        self.settle()
        return response

    def op(
        self, method: str, path: str, body: Any = None, token: str | None = OPERATOR_TOKEN
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        response = self.client.open(path, method=method, **kwargs)
        self.settle()
        return response

    def remediation(self, node: str = "node-1") -> dict[str, Any] | None:
        return self.kube.stored(Resource.REMEDIATIONS, node)

    def events_for(self, node: str) -> list[dict[str, Any]]:
        return [e for e in self.kube.events if e["regarding"]["name"] == node]

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


WorldFactory = Callable[..., World]


def make_world(
    tmp_path: Path,
    policy: dict[str, Any] | Policy | None = None,
    nodes: int = 5,
    labels: dict[str, dict[str, str]] | None = None,
    **settings: Any,
) -> World:
    """A 5-node fake cluster (all Ready) and the app over it, synced."""
    (tmp_path / "am").write_text(AM_TOKEN + "\n")
    (tmp_path / "op").write_text(f"alice:{OPERATOR_TOKEN}\n")
    config = WebhookSettings(
        alertmanager_token_file=str(tmp_path / "am"),
        operator_token_file=str(tmp_path / "op"),
        watch_timeout_s=settings.pop("watch_timeout_s", 2.0),
        cache_sync_wait_s=settings.pop("cache_sync_wait_s", 2.0),
        instance="test-instance",
        **settings,
    )
    clock = FakeClock(START)
    kube = FakeWebhookKube(clock)
    for i in range(1, nodes + 1):
        name = f"node-{i}"
        kube.put_node(name, "True", (labels or {}).get(name))
    parsed = policy if isinstance(policy, Policy) else parse_policy(policy or {})
    metrics = WebhookMetrics()
    app = create_app(
        config, kube, clock, policy=parsed, credentials=load_credentials(config), metrics=metrics
    )
    w = World(kube, clock, app, app.test_client(), app.extensions["nodewarden"], metrics, tmp_path)
    w.settle()
    return w


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WorldFactory]:
    """`world(policy={...}, nodes=5, labels={...}, **settings)` builds a World."""
    built: list[World] = []

    def build(*args: Any, **kwargs: Any) -> World:
        w = make_world(tmp_path, *args, **kwargs)
        built.append(w)
        return w

    yield build
    for w in built:
        w.svc.stop()
