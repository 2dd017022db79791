"""The timing model (core/timing): its bounds against the formulas the agent and the
controller's evidence rules use, its defaults against the real settings classes, the
timeline's milestones, and the `what-if` command."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from controller.evidence import FenceTiming, evaluate, order_lifetime_ok
from controller.model import Acknowledgement, AgentInfo, FenceRecord
from controller.settings import ControllerSettings
from core import timing
from core.settings import SettingsError
from core.timing import AgentTimings, ControllerTimings, TimingInputs
from core.timing.model import PHASES
from node_agent.settings import AgentSettings
from sim.world.timings import Timings


def test_defaults_are_the_shipped_settings() -> None:
    agent = AgentSettings(node_name="n")
    for f in dataclasses.fields(AgentTimings):
        assert getattr(AgentTimings(), f.name) == getattr(agent, f.name), f.name
    controller = ControllerSettings()
    for f in dataclasses.fields(ControllerTimings):
        assert getattr(ControllerTimings(), f.name) == getattr(controller, f.name), f.name
    k8s, sim = timing.KubernetesTimings(), Timings()
    assert k8s.node_lease_renew_interval_s == sim.lease_renew_interval_s
    assert k8s.node_monitor_grace_period_s == sim.node_monitor_grace_period_s
    assert k8s.node_monitor_period_s == sim.node_monitor_period_s
    assert k8s.pod_gc_period_s == sim.pod_gc_period_s


def test_bounds_with_the_defaults() -> None:
    a, c = AgentTimings(), ControllerTimings()
    assert timing.isolation_detect_s(a) == 3 * 5 + 4 + 10 + (4 + 1) == 34
    assert timing.isolation_to_reset_s(a) == 34 + 15
    assert timing.fence_deadline_s(timing.ACKNOWLEDGED_WATCHDOG, a, c) == 2 * 15 + 2 + 1
    assert timing.fence_deadline_s(timing.AGENT_HEARTBEAT_STALE, a, c) == 34 + 2 * 15 + 2 + 1 == 67
    assert timing.worst_case_fence_s(a, c) == 67
    with pytest.raises(ValueError):
        timing.fence_deadline_s("FenceAgent", a, c)


def test_the_agent_publishes_the_models_bound() -> None:
    slow = AgentSettings(node_name="n", api_check_interval_s=20, api_check_timeout_s=10, isolation_timeout_s=30,
                         peer_request_timeout_s=3, loop_tick_s=1)
    assert slow.isolation_detect_s == timing.isolation_detect_s(timing.from_object(AgentTimings, slow))
    assert slow.isolation_detect_s == 3 * 20 + 20 + 30 + (20 + 2)


@pytest.mark.parametrize("rule", [timing.ACKNOWLEDGED_WATCHDOG, timing.AGENT_HEARTBEAT_STALE])
def test_the_evidence_rules_wait_exactly_the_models_deadline(rule: str) -> None:
    """The controller's evidence rule is WAITING one step before the model's deadline and
    SATISFIED at it: the model and the rule agree on every second."""
    a = AgentTimings(watchdog_timeout_s=7)
    c = ControllerTimings(safety_margin_s=3, max_clock_skew_s=2)
    t = FenceTiming(c.safety_margin_s, c.max_clock_skew_s, ack_timeout_s=60)
    d = timing.isolation_detect_s(a)
    agent = AgentInfo(present=True, self_fence_capable=True, watchdog_timeout_s=7, isolation_detect_s=d,
                      heartbeat_renewed_at=1000.0, heartbeat_duration_s=15.0, boot_id="b")
    fence = FenceRecord(order="o", action="fence", issued_at=990.0, expires_at=1e9, boot_id="b")
    start = 1000.0 if rule == timing.AGENT_HEARTBEAT_STALE else 990.0
    report = None if rule == timing.AGENT_HEARTBEAT_STALE else Acknowledgement(
        at=990.0, via="report", last_feed_at=990.0, watchdog_timeout_s=7)
    deadline = start + timing.fence_deadline_s(rule, a, c)
    before = evaluate(agent, "b", fence, report, t, deadline - 0.01, outage_suspected=False, delivered=True)
    at = evaluate(agent, "b", fence, report, t, deadline, outage_suspected=False, delivered=True)
    assert str(before.rule) == rule and before.verdict == "Waiting"
    assert at.verdict == "Satisfied" and at.deadline == deadline


def test_order_lifetime_uses_the_same_worst_case() -> None:
    a, c = AgentTimings(), ControllerTimings()
    worst = timing.worst_case_fence_s(a, c)
    agent = AgentInfo(present=True, self_fence_capable=True, watchdog_timeout_s=15,
                      isolation_detect_s=timing.isolation_detect_s(a))
    t = FenceTiming(c.safety_margin_s, c.max_clock_skew_s, 60)
    assert order_lifetime_ok(agent, 0.0, worst + 0.01, t)
    assert not order_lifetime_ok(agent, 0.0, worst, t)


def test_the_timeline_is_ordered_and_bracketed() -> None:
    p = timing.predict(TimingInputs())
    for line in (p.earliest, p.expected, p.latest):
        values = [line.at_s[m] for m in timing.MILESTONES]
        assert values == sorted(values)
    for m in timing.MILESTONES:
        assert p.earliest.at_s[m] <= p.expected.at_s[m] <= p.latest.at_s[m]


FAST = TimingInputs()  # the chart's defaults: NodeLeaseStale on
NOT_READY_ONLY = timing.with_overrides(TimingInputs(), {"node_lease_stale_enabled": "false"})


def test_the_timeline_with_node_not_ready_alone() -> None:
    e = timing.predict(NOT_READY_ONLY).expected.at_s
    # NodeNotReady: half a scrape and half an evaluation after the node turned not Ready,
    # then its `for: 30s`, two 15 s evaluations.
    assert e["alert_firing"] == -5 + 50 + 2.5 + 7.5 + 7.5 + 30
    # Ordered 2 s later, proven 2 s after that; the taint once the fencing taint, added at
    # the proof, has settled (11 s + 1 s skew + 0.5 s of rounding); the controller deletes
    # the pods at once; the start.
    assert e["taint_added"] == 92.5 + 2 + 2 + 11 + 1 + 0.5
    assert e["replacement_running"] == 92.5 + 2 + 2 + 12.5 + 12


def test_the_timeline_with_the_lease_rule() -> None:
    e = timing.predict(FAST).expected.at_s
    # The kubelet renewed 5 s before the power-off (half its 10 s period); Unknown after the
    # 50 s grace, half a 5 s monitor period later.
    assert e["node_not_ready"] == -5 + 50 + 2.5
    # NodeLeaseStale: half a scrape and half an evaluation (15 s each) later; no `for:`.
    assert e["alert_firing"] == 47.5 + 7.5 + 7.5
    assert e["alert_received"] == 62.5  # group_wait 0 as the chart ships it
    assert e["fence_ordered"] == 62.5 + 2  # the peers' request timeout
    # The AgentHeartbeatStale deadline (heartbeat 2.5 s before the power-off + 67) is past
    # once peer silence settles: the controller's own time decides.
    assert e["fence_proven"] == max(64.5 + 2, -2.5 + 67)
    # The fencing taint goes on at the proof: the out-of-service taint waits for its settle
    # (11 s + 1 s skew + 0.5 s of rounding).
    assert e["taint_added"] == 66.5 + 12.5
    # The controller deletes the terminating pods at once (the default) ...
    assert e["pod_force_deleted"] == e["taint_added"] and e["replacement_running"] == 79 + 12
    # ... or pod GC does, half its 20 s period later.
    gc = timing.predict(timing.with_overrides(FAST, {"delete_pods_after_taint": "false"})).expected.at_s
    assert gc["pod_force_deleted"] == 79 + 10 and gc["replacement_running"] == 89 + 12


def test_levers_move_the_timeline() -> None:
    base = timing.predict(timing.with_overrides(FAST, {"delete_pods_after_taint": "false"})).expected.at_s
    deletion = timing.predict(timing.with_overrides(FAST, {"strategy": "ResourceDeletion"})).expected.at_s
    assert deletion["pod_force_deleted"] == deletion["taint_added"]
    assert base["replacement_running"] - deletion["replacement_running"] == 10  # pod GC's wait
    now = timing.predict(timing.with_overrides(FAST, {"delete_pods_after_taint": "true"})).expected.at_s
    assert now["replacement_running"] == deletion["replacement_running"]  # both delete at once
    # Without the lease rule, NodeNotReady's `for: 30s` is two 15 s evaluations more.
    assert timing.predict(NOT_READY_ONLY).expected.at_s["alert_firing"] == base["alert_firing"] + 30
    common = timing.with_overrides(FAST, {"kube_state_metrics_scrape_interval_s": "30s",
                                          "rule_evaluation_interval_s": "30s"})
    assert timing.predict(common).expected.at_s["alert_firing"] == base["alert_firing"] + 15
    # NodeNotReady at 30 s evaluations: `for: 30s` is one evaluation, not two.
    slow = timing.with_overrides(NOT_READY_ONLY, {"rule_evaluation_interval_s": "30s"})
    assert timing.predict(slow).expected.at_s["alert_firing"] == 47.5 + 7.5 + 15 + 30
    slow_dog = timing.with_overrides(FAST, {"watchdog_timeout_s": "60s"})
    line = timing.predict(slow_dog).expected
    assert line.fence_waited_for == "deadline"
    assert line.at_s["fence_proven"] == -2.5 + 34 + 120 + 3


def test_phases_are_independent() -> None:
    by_gc = timing.with_overrides(TimingInputs(), {"delete_pods_after_taint": "false"})
    base = timing.timeline(by_gc, 0.5).at_s
    late_gc = timing.timeline(by_gc, {"pod_gc": 1.0}).at_s
    assert late_gc["pod_force_deleted"] == base["pod_force_deleted"] + 10
    assert late_gc["taint_added"] == base["taint_added"]
    assert set(PHASES) >= {"pod_gc", "scrape", "evaluation"}


def test_overrides_by_name_group_and_unit() -> None:
    inputs = timing.with_overrides(TimingInputs(), {"agent.watchdog_timeout_s": "1m", "safety_margin_s": "500ms",
                                                    "api_failure_threshold": "4", "strategy": "ResourceDeletion"})
    assert inputs.agent.watchdog_timeout_s == 60 and inputs.controller.safety_margin_s == 0.5
    assert inputs.agent.api_failure_threshold == 4 and inputs.strategy == "ResourceDeletion"
    with pytest.raises(SettingsError, match="unknown setting"):
        timing.with_overrides(TimingInputs(), {"watchdog": "1"})
    with pytest.raises(SettingsError, match="unknown setting"):  # the group must own the name
        timing.with_overrides(TimingInputs(), {"kubernetes.safety_margin_s": "1"})
    with pytest.raises(SettingsError):
        timing.with_overrides(TimingInputs(), {"strategy": "Reboot"})


def test_what_if_command() -> None:
    out = subprocess.run([sys.executable, "-m", "core.timing", "what-if", "--watchdog_timeout_s=30s"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "watchdog_timeout_s=30s" in out.stdout
    assert "AgentHeartbeatStale (after the heartbeat)" in out.stdout and "97.0" in out.stdout  # 34 + 60 + 3
    assert "replacement_running" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "core.timing", "what-if", "--nope=1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown setting" in bad.stderr
