"""The webhook's Prometheus metrics, correct under several gunicorn workers.

Counters and histograms are process-local objects; with `PROMETHEUS_MULTIPROC_DIR` set
(gunicorn.conf.py sets it before any worker imports this module), prometheus_client
writes them to per-process files and `/metrics` merges every worker's files. The two
process gauges choose a multiprocess mode that means something when merged: the last
decision time is the `max` over workers, the event queue length the `livesum`.

Cluster-state gauges (remediations by phase, storm protection, pause, unhealthy nodes,
cache synced) are not stored per worker at all: every worker watches the same API, so
the worker that answers a scrape reports them from its own cache at scrape time
(`ClusterStateCollector`). Summing or maxing per-worker copies could only be wrong.

Names follow `nodewarden_<subsystem>_<name>_<unit>`; every label is bounded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.remediation import Phase
from webhook.cache import ClusterCache
from webhook.policy import Policy

PREFIX = "nodewarden_webhook_"
PHASES = tuple(str(phase) for phase in Phase)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            PREFIX + "alerts_received_total",
            "Alerts received from Alertmanager, by the alert's status.",
            ["status"],
            registry=r,
        )
        self.decisions = Counter(
            PREFIX + "decisions_total",
            "Policy decisions, by verdict and reason.",
            ["verdict", "reason"],
            registry=r,
        )
        self.request_duration = Histogram(
            PREFIX + "request_duration_seconds",
            "HTTP request handling time, by route, method and status code.",
            ["endpoint", "method", "code"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.invalid_payloads = Counter(
            PREFIX + "invalid_payloads_total",
            "Alert posts refused as malformed (400, 413, 415).",
            ["code"],
            registry=r,
        )
        self.auth_failures = Counter(
            PREFIX + "auth_failures_total",
            "Requests refused for their credentials, by reason.",
            ["reason"],
            registry=r,
        )
        self.auth_reviews = Histogram(
            PREFIX + "auth_review_duration_seconds",
            "Time the API server took to answer an operator's TokenReview (review=token) "
            "or SubjectAccessReview (review=access); cached answers are not timed.",
            ["review"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.auth_review_failures = Counter(
            PREFIX + "auth_review_failures_total",
            "Reviews of operators' Kubernetes credentials that gave no answer, by review and "
            "reason (unavailable, refused, malformed: answered 503; busy: 429).",
            ["review", "reason"],
            registry=r,
        )
        self.kube_errors = Counter(
            PREFIX + "kube_errors_total",
            "Kubernetes API calls that failed, by operation and error.",
            ["operation", "error"],
            registry=r,
        )
        self.events = Counter(
            PREFIX + "events_total",
            "Kubernetes Events, by result (sent, deduplicated, dropped, failed).",
            ["result"],
            registry=r,
        )
        self.watch_errors = Counter(
            PREFIX + "watch_errors_total",
            "Watches of the cluster view that failed, by resource.",
            ["resource"],
            registry=r,
        )
        self.last_decision = Gauge(
            PREFIX + "last_decision_timestamp_seconds",
            "When the last policy decision was made (unix seconds).",
            registry=r,
            multiprocess_mode="max",
        )
        self.event_queue = Gauge(
            PREFIX + "event_queue_length",
            "Events waiting to be sent, summed over live workers.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self._event_queue_written: int | None = None

    def set_event_queue(self, length: int, always: bool = False) -> None:
        """`event_queue.set(length)`, skipped when `length` is what this process wrote
        last (unless `always`, as before a scrape): in multiprocess mode the value is a
        write to a shared file, and every decision reports the queue's length, almost
        always the same (0)."""
        if always or length != self._event_queue_written:
            self._event_queue_written = length
            self.event_queue.set(length)

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """`metric.labels(*values)`, memoized. prometheus_client validates the values and
        takes a lock on every `labels()` call; the request path asks for the same few
        children again and again (every label is bounded, so the memo is too)."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


class ClusterStateCollector(Collector):
    """Gauges derived from the watch-fed cache, computed when scraped."""

    def __init__(self, cache: ClusterCache, policy: Policy) -> None:
        self.cache = cache
        self.policy = policy

    def collect(self) -> Iterator[GaugeMetricFamily]:
        synced = self.cache.synced()
        yield GaugeMetricFamily(
            PREFIX + "cache_synced",
            "1 when the watch-fed cluster view is current.",
            value=int(synced),
        )
        if not synced:
            return
        counts = self.cache.phase_counts()
        by_phase = GaugeMetricFamily(
            PREFIX + "remediations", "NodeRemediations by phase.", labels=["phase"]
        )
        for phase in PHASES:
            by_phase.add_metric([phase], counts.get(phase, 0))
        yield by_phase
        unhealthy, total, limit, engaged = self.cache.storm_state(self.policy)
        yield GaugeMetricFamily(
            PREFIX + "storm_protection_active",
            "1 while more nodes are unhealthy than maxUnhealthy allows.",
            value=int(engaged),
        )
        yield GaugeMetricFamily(
            PREFIX + "unhealthy_nodes",
            "Nodes not Ready or with an active remediation.",
            value=unhealthy,
        )
        yield GaugeMetricFamily(PREFIX + "nodes", "Nodes in the cluster.", value=total)
        yield GaugeMetricFamily(
            PREFIX + "max_unhealthy_nodes", "maxUnhealthy resolved to a node count.", value=limit
        )
        paused = self.policy.paused or self.cache.paused()[0]
        yield GaugeMetricFamily(
            PREFIX + "paused", "1 while remediation is paused.", value=int(paused)
        )


def exposition(
    metrics: WebhookMetrics, state: Collector, before: Callable[[], None]
) -> tuple[bytes, str]:
    """The text for GET /metrics: every worker's counters plus this worker's cluster view."""
    before()
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(state)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    registry.register(_Merged(metrics.registry, state))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Merged(Collector):
    def __init__(self, registry: CollectorRegistry, state: Collector) -> None:
        self.registry = registry
        self.state = state

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from self.registry.collect()
        yield from self.state.collect()
