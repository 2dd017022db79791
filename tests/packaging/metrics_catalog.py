"""Every metric name nodewarden exposes, read from the code's own metric definitions, so
rules and dashboard queries are checked against what the processes really serve."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from controller.metrics import ControllerMetrics
from node_agent.metrics import AgentMetrics
from webhook.metrics import ClusterStateCollector, WebhookMetrics

# Series the rules and the dashboard use from other exporters.
EXTERNAL = {
    "up",  # Prometheus, per target
    "kube_node_status_condition", "kube_node_created", "kube_lease_renew_time",  # kube-state-metrics
}
NAME = re.compile(r"\b(nodewarden_[a-z0-9_]+|kube_[a-z0-9_]+|up)\b")


class _SyncedCache:
    """Just enough of webhook.cache.ClusterCache for ClusterStateCollector to emit everything."""

    def synced(self) -> bool:
        return True

    def phase_counts(self) -> dict[str, int]:
        return {}

    def storm_state(self, policy: Any) -> tuple[int, int, int, bool]:
        return 0, 0, 0, False

    def paused(self) -> tuple[bool, str]:
        return False, ""


def _sample_names(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count", ""),
            "info": ("_info",),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def nodewarden_metric_names() -> set[str]:
    names: set[str] = set()
    names |= _sample_names(WebhookMetrics().registry)
    names |= _sample_names(ControllerMetrics().registry)
    names |= _sample_names(AgentMetrics().registry)
    state = CollectorRegistry()
    state.register(ClusterStateCollector(_SyncedCache(), SimpleNamespace(paused=False)))  # type: ignore[arg-type]
    names |= _sample_names(state)
    return names


def names_in(expr: str) -> set[str]:
    """Metric names an expression refers to (label values and strings aside)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    return set(NAME.findall(without_labels))
