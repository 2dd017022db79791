"""The settings the timing model reads, grouped by who owns them.

Field names are the settings' own names (the agent's `AgentSettings`, the controller's
`ControllerSettings`, Kubernetes' flags, Prometheus' and Alertmanager's configuration), and
the defaults are the shipped ones; tests/core/test_timing.py checks both against the real
settings classes, so a default changed in one place and not here fails a test.

`core` imports no side, so these are plain copies of the fields the model needs; build
them from a real settings object with `from_object`, and override single values (the
`what-if` command) with `with_overrides`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from core.settings import SettingsError, parse_duration

T = TypeVar("T")


@dataclass(frozen=True)
class AgentTimings:
    """node_agent.settings.AgentSettings: what bounds an isolated agent's reset."""

    watchdog_timeout_s: float = 15.0
    api_check_interval_s: float = 5.0
    api_check_timeout_s: float = 2.0
    api_failure_threshold: int = 3
    isolation_timeout_s: float = 10.0
    peer_request_timeout_s: float = 2.0
    peer_api_timeout_s: float = 1.0
    loop_tick_s: float = 0.5


@dataclass(frozen=True)
class ControllerTimings:
    """controller.settings.ControllerSettings: the fence deadlines' margins and the time the
    controller itself takes to confirm and order."""

    safety_margin_s: float = 2.0
    max_clock_skew_s: float = 1.0
    silence_settle_s: float = 2.0
    peer_timeout_s: float = 3.0
    # Recovery waits this long (plus the skew) after the fencing taint, added with the order.
    fencing_taint_settle_s: float = 11.0
    # With the out-of-service taint: the controller deletes the pods it evicts at once
    # rather than waiting for pod GC's next run.
    delete_pods_after_taint: bool = True


@dataclass(frozen=True)
class KubernetesTimings:
    """Kubernetes' defaults (1.32): kubelet, node lifecycle and pod GC controllers. The
    last one is not a flag: the time from the old pod's deletion to its replacement
    Running (StatefulSet controller, scheduler, volume attach, image pull and start)."""

    node_lease_renew_interval_s: float = 10.0
    node_monitor_grace_period_s: float = 50.0
    node_monitor_period_s: float = 5.0
    pod_gc_period_s: float = 20.0
    # The StatefulSet controller, the scheduler and the attach/detach controller each at
    # their next pass (about 1 s each), the CSI driver's ControllerUnpublish of the old
    # attachment (about 5 s) and ControllerPublish of the new one (about 2 s), the
    # kubelet's start (about 2 s): sim/world/timings.py's defaults, sourced in docs/sim.md.
    replacement_start_s: float = 12.0


@dataclass(frozen=True)
class AlertingTimings:
    """Prometheus and Alertmanager, as the chart ships them (rules/nodewarden-alerts.yaml,
    helm values `monitoring.*`): the kube-state-metrics scrape interval, the trigger
    groups' evaluation interval, the rules' `for:` and Lease-age threshold, and
    Alertmanager's `group_wait` for a new group. NodeLeaseStale, the faster trigger, is on
    in the chart by default (`monitoring.rules.nodeLeaseStale`; it needs kube-state-metrics'
    Lease series)."""

    kube_state_metrics_scrape_interval_s: float = 15.0
    rule_evaluation_interval_s: float = 15.0
    node_not_ready_for_s: float = 30.0
    node_lease_stale_enabled: bool = True
    node_lease_stale_threshold_s: float = 40.0
    group_wait_s: float = 0.0


@dataclass(frozen=True)
class TimingInputs:
    agent: AgentTimings = AgentTimings()
    controller: ControllerTimings = ControllerTimings()
    kubernetes: KubernetesTimings = KubernetesTimings()
    alerting: AlertingTimings = AlertingTimings()
    # Recovery: "OutOfServiceTaint" waits for pod GC to force-delete the pod; "ResourceDeletion"
    # force-deletes it at once.
    strategy: str = "OutOfServiceTaint"


def from_object(cls: type[T], source: Any) -> T:
    """`cls` with every field that `source` (a settings object) has of the same name."""
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if hasattr(source, f.name) and getattr(source, f.name) is not None}
    return cls(**values)


GROUPS = ("agent", "controller", "kubernetes", "alerting")


def with_overrides(inputs: TimingInputs, overrides: dict[str, str]) -> TimingInputs:
    """Override settings by name ("watchdog_timeout_s", or "agent.watchdog_timeout_s" when
    a name is ambiguous); durations accept "15s", "1m30s". Unknown names are an error."""
    groups: dict[str, Any] = {g: getattr(inputs, g) for g in GROUPS}
    strategy = inputs.strategy
    for key, raw in overrides.items():
        name = key.replace("-", "_")
        if name == "strategy":
            if raw not in ("OutOfServiceTaint", "ResourceDeletion"):
                raise SettingsError("strategy", f"expected OutOfServiceTaint or ResourceDeletion, got {raw!r}")
            strategy = raw
            continue
        group_name, _, field = name.rpartition(".")
        owners = [g for g in GROUPS if (not group_name or g == group_name)
                  and field in {f.name for f in dataclasses.fields(groups[g])}]
        if len(owners) != 1:
            known = sorted(f"{g}.{f.name}" for g in GROUPS for f in dataclasses.fields(groups[g]))
            raise SettingsError(key, ("ambiguous" if owners else "unknown setting") + f" (known: {', '.join(known)})")
        group = groups[owners[0]]
        current = getattr(group, field)
        value: object
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false"):
                raise SettingsError(key, f"expected true or false, got {raw!r}")
            value = raw.lower() == "true"
        elif isinstance(current, int):
            value = int(raw)
        else:
            value = parse_duration(raw, key)
        groups[owners[0]] = dataclasses.replace(group, **{field: value})
    return TimingInputs(**groups, strategy=strategy)
