"""The chaos runner's recovery judgement, on a recorded timeline (no world is started)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from sim.world.timeline import Timeline
from tests.chaos.judge import finding_kind
from tests.chaos.judge_world import kcm_restart_s
from tests.chaos.runner import Runner, Transition
from tests.chaos.schedule import Schedule, Step
from tests.chaos.world_faults import WebhookRestart

NODES = ("node-1", "node-2", "node-3")


def judge(steps: list[Step], events: list[tuple[float, str, str]]) -> Runner:
    """Judge `db-1`, running on node-1 when the schedule starts, on a timeline of
    (cluster second, kind, node) events for it. Time scale 1, t0 = 0."""
    clock = {"now": 0.0}
    timeline = Timeline(clock=lambda: clock["now"])
    for at, kind, node in events:
        clock["now"] = at
        timeline.add(kind, node, "default/db-1")
    runner = Runner.__new__(Runner)
    runner.c = SimpleNamespace(timeline=timeline, nodes=NODES, get=lambda *_: {})
    runner.scale, runner.t0 = 1.0, 0.0
    runner.schedule = Schedule(seed=None, steps=steps)
    runner.step_at = {s: s.at for s in steps}
    runner.pods_at_fault = {steps[0]: ["db-1"]}
    runner.recoveries = []
    runner.transitions = []
    runner.judge_recoveries()
    return runner


def test_a_pod_that_does_not_move_within_the_bound_is_late() -> None:
    runner = judge([Step(10.0, "power-off", "node-1")], [(600.0, "pod-started", "node-2")])
    (recovery,) = runner.recoveries
    assert recovery.deadline < 600.0 and not recovery.ok()


def test_a_replacement_placed_on_a_node_already_down_is_judged_from_that_node_s_fault() -> None:
    steps = [Step(10.0, "power-off", "node-1"), Step(150.0, "power-off", "node-2"),
             Step(250.0, "power-on", "node-2")]
    events = [(160.0, "scheduled", "node-2"), (260.0, "pod-started", "node-2")]
    carried = judge(steps, events).recoveries[0]
    alone = judge(steps[:1], events).recoveries[0]
    assert alone.deadline < 260.0 and not alone.ok()  # without the carry-over: late
    assert carried.deadline == alone.deadline + 140.0 and carried.ok() and carried.checked
    assert "placed on node-2, itself down since t=150.0s" in carried.note


def test_a_replacement_placed_on_a_healthy_node_keeps_the_first_bound() -> None:
    steps = [Step(10.0, "power-off", "node-1"), Step(150.0, "power-off", "node-2")]
    events = [(140.0, "scheduled", "node-3"), (600.0, "pod-started", "node-3")]
    (recovery,) = [r for r in judge(steps, events).recoveries if r.pod == "db-1"]
    assert recovery.note == "" and not recovery.ok()


def test_a_replacement_that_comes_home_to_its_first_node_once_back_counts() -> None:
    steps = [Step(10.0, "kubelet-stop", "node-1"), Step(150.0, "power-off", "node-2"),
             Step(200.0, "kubelet-start", "node-1")]
    events = [(160.0, "scheduled", "node-2"), (250.0, "scheduled", "node-1"), (255.0, "pod-started", "node-1")]
    (recovery, *_) = judge(steps, events).recoveries
    assert recovery.moved_to == "node-1" and recovery.ok() and recovery.checked


# -- attacks: no fence without cause, delays reported --------------------------------------


def bare_runner(steps: list[Step], events: list[tuple[float, str, str, dict[str, str]]]) -> Runner:
    clock = {"now": 0.0}
    timeline = Timeline(clock=lambda: clock["now"])
    for at, kind, node, data in events:
        clock["now"] = at
        timeline.add(kind, node, f"node/{node}", **data)
    runner = Runner.__new__(Runner)
    runner.c = SimpleNamespace(timeline=timeline, nodes=NODES, get=lambda *_: {})  # type: ignore[assignment]
    runner.scale, runner.t0 = 1.0, 0.0
    runner.schedule = Schedule(seed=None, steps=steps)
    runner.step_at = {s: s.at for s in steps}
    runner.transitions = []
    return runner


def test_fenced_after_a_refused_order_without_a_reset_is_a_finding() -> None:
    runner = bare_runner([Step(10.0, "partition", "node-1", scope="api")], [])
    runner.transitions = [Transition(100.0, "node-1", "u1", "Fencing", "OrderStored", "o1"),
                          Transition(101.0, "node-1", "u1", "Fencing", "OrderStored", "o1", "Rejected/BadSignature"),
                          Transition(120.0, "node-1", "u1", "Fenced", "FenceProven", "o1", "Rejected/BadSignature")]
    (finding,) = runner.judge_refused()
    assert "refused the order (Rejected/BadSignature)" in finding


def test_fenced_after_a_refused_order_and_a_reset_is_not() -> None:
    runner = bare_runner([Step(10.0, "partition", "node-1", scope="api")],
                         [(110.0, "watchdog-fired", "node-1", {})])
    runner.transitions = [Transition(100.0, "node-1", "u1", "Fencing", "OrderStored", "o1", "Rejected/BadSignature"),
                          Transition(120.0, "node-1", "u1", "Fenced", "FenceProven", "o1", "Rejected/BadSignature")]
    assert runner.judge_refused() == []


def test_fenced_after_an_acknowledged_order_is_not() -> None:
    runner = bare_runner([], [])
    runner.transitions = [Transition(100.0, "node-1", "u1", "Fencing", "OrderStored", "o1", "Fencing/"),
                          Transition(120.0, "node-1", "u1", "Fenced", "FenceProven", "o1", "Fencing/")]
    assert runner.judge_refused() == []


def test_a_taint_on_a_node_without_a_fault_or_reset_is_a_finding() -> None:
    oos = {"key": "node.kubernetes.io/out-of-service"}
    steps = [Step(10.0, "power-off", "node-2"), Step(20.0, "forge-status", "node-1", scope="phase-fenced", by="node-3")]
    runner = bare_runner(steps, [(50.0, "taint-added", "node-1", oos), (60.0, "taint-added", "node-2", oos),
                                 (70.0, "taint-added", "node-3", {"key": "node.kubernetes.io/unreachable"})])
    (finding,) = runner.judge_taints()
    assert finding.startswith("node-1 tainted out-of-service at t=50.0s")


def test_an_attack_extends_the_bound_and_the_delay_is_reported() -> None:
    steps = [Step(10.0, "power-off", "node-1"), Step(5.0, "untrusted-key", duration=300.0)]
    plain = judge(steps[:1], [(400.0, "pod-started", "node-2")]).recoveries[0]
    runner = judge(steps, [(400.0, "pod-started", "node-2")])
    (attacked,) = runner.recoveries
    assert attacked.attacked == "untrusted-key"
    assert attacked.deadline == plain.deadline + (305.0 - 10.0)  # the count restarts at the attack's end
    assert attacked.base_deadline == plain.deadline
    assert plain.deadline < 400.0 < attacked.deadline
    assert attacked.ok() and attacked.delay_s(1.0) == 400.0 - plain.deadline
    assert not plain.ok()


def test_a_reset_while_the_node_s_agent_is_stopped_has_its_cause() -> None:
    """An agent stopped while it cannot withdraw its capability keeps its watchdog armed."""
    steps = [Step(10.0, "agent-stop", "node-1", restart_after=100.0)]
    runner = bare_runner(steps, [(50.0, "watchdog-fired", "node-1", {}), (50.0, "watchdog-fired", "node-2", {})])
    runner.out = Path("/nonexistent")
    (finding,) = runner.judge_resets()
    assert finding.startswith("node-2 reset by its watchdog at t=50.0s")


def test_fenced_with_a_refusal_on_record_for_a_node_powered_off_before_the_order_is_not() -> None:
    """A peer relaying the order to a dead node may refuse it itself (seed 35): the node
    is off, so Fenced is right."""
    runner = bare_runner([Step(10.0, "power-off", "node-1")], [(10.0, "node-power", "node-1", {"power": "off"})])
    runner.transitions = [Transition(100.0, "node-1", "u1", "Fencing", "OrderStored", "o1", "Rejected/BadSignature"),
                          Transition(120.0, "node-1", "u1", "Fenced", "FenceProven", "o1", "Rejected/BadSignature")]
    assert runner.judge_refused() == []


# -- world faults (tests/chaos/judge_world.py) ----------------------------------------------

OOS = {"key": "node.kubernetes.io/out-of-service"}


def group_judge(steps: list[Step], events: list[tuple[float, str, str]]) -> Runner:
    """`judge`, with db-1 on node-1 when the group partition (the first step) began."""
    clock = {"now": 0.0}
    timeline = Timeline(clock=lambda: clock["now"])
    for at, kind, node in events:
        clock["now"] = at
        timeline.add(kind, node, "default/db-1")
    runner = bare_runner(steps, [])
    runner.c.timeline = timeline
    runner.pods_at_fault = {replace(steps[0], node="node-1"): ["db-1"], replace(steps[0], node="node-2"): []}
    runner.recoveries = []
    runner.judge_recoveries()
    return runner


def test_a_group_partition_s_nodes_are_dead_from_the_partition_on() -> None:
    group = [Step(10.0, "group-partition", "node-1,node-2"), Step(500.0, "heal", "node-1,node-2")]
    alone = judge([Step(10.0, "partition", "node-1", scope="all"), Step(500.0, "heal", "node-1")],
                  [(600.0, "pod-started", "node-3")]).recoveries[0]
    late = group_judge(group, [(600.0, "pod-started", "node-3")]).recoveries
    assert [r.pod for r in late] == ["db-1"]  # node-1's pod, once: node-2 held none
    assert late[0].deadline == alone.deadline and late[0].checked and not late[0].ok()
    (moved,) = group_judge(group, [(alone.deadline - 1.0, "pod-started", "node-3")]).recoveries
    assert moved.ok()


def test_a_reset_inside_a_group_partition_has_its_cause_and_one_outside_it_does_not() -> None:
    steps = [Step(10.0, "group-partition", "node-1,node-2"), Step(300.0, "heal", "node-1,node-2")]
    runner = bare_runner(steps, [(50.0, "watchdog-fired", "node-1", {}), (60.0, "watchdog-fired", "node-2", {}),
                                 (70.0, "watchdog-fired", "node-3", {})])
    runner.out = Path("/nonexistent")
    (finding,) = runner.judge_resets()
    assert finding.startswith("node-3 reset by its watchdog at t=70.0s")  # the majority side keeps running


@pytest.mark.parametrize("fault", [Step(5.0, "api-slow", duration=300.0, delay=3.0),
                                   Step(5.0, "api-throttle", duration=300.0, retry_after=1, fraction=0.6),
                                   Step(5.0, "csi-stall", duration=300.0)])
def test_api_slowness_throttling_or_a_csi_stall_restarts_the_bound_at_its_end(fault: Step) -> None:
    plain = judge([Step(10.0, "power-off", "node-1")], [(400.0, "pod-started", "node-2")]).recoveries[0]
    (slowed,) = judge([Step(10.0, "power-off", "node-1"), fault], [(400.0, "pod-started", "node-2")]).recoveries
    assert slowed.started_from == 305.0 and slowed.deadline == plain.deadline + (305.0 - 10.0)
    assert not plain.ok() and slowed.ok()


def test_a_controller_manager_restart_restarts_the_bound_at_its_end() -> None:
    plain = judge([Step(10.0, "power-off", "node-1")], []).recoveries[0]
    (restarted,) = judge([Step(10.0, "power-off", "node-1"), Step(20.0, "kcm-restart")], []).recoveries
    assert restarted.started_from == 20.0 + kcm_restart_s()
    assert restarted.deadline == plain.deadline + (restarted.started_from - 10.0)


def test_api_slowness_throttling_a_kcm_restart_or_a_csi_stall_excuse_no_reset() -> None:
    steps = [Step(5.0, "api-slow", duration=300.0, delay=3.0), Step(5.0, "api-throttle", duration=300.0),
             Step(5.0, "kcm-restart"), Step(5.0, "csi-stall", duration=300.0)]
    runner = bare_runner(steps, [(50.0, "watchdog-fired", "node-1", {})])
    runner.out = Path("/nonexistent")
    (finding,) = runner.judge_resets()
    assert finding_kind(finding) == "reset-without-cause"


@pytest.mark.parametrize("api", [Step(5.0, "api-throttle", duration=100.0, retry_after=1, fraction=0.6),
                                 Step(5.0, "api-slow", duration=100.0, delay=3.0),
                                 Step(5.0, "api-outage", duration=100.0)])
def test_a_node_cut_off_from_its_peers_while_the_api_fails_its_checks_has_its_cause(api: Step) -> None:
    """Seed 206: node-5, cut from its peers while 60 % of API requests were answered 429,
    fenced itself with NoQuorum: to the agent a throttled check is a failed one."""
    steps = [api, Step(20.0, "partition", "node-1", scope="peers"), Step(200.0, "heal", "node-1")]
    runner = bare_runner(steps, [(50.0, "watchdog-fired", "node-1", {}), (60.0, "watchdog-fired", "node-2", {}),
                                 (180.0, "watchdog-fired", "node-1", {})])
    runner.out = Path("/nonexistent")
    found = runner.judge_resets()
    assert [f.split(" reset")[0] for f in found] == ["node-2", "node-1"], found  # node-1 at 180 s: the API was fine
    assert "t=180.0s" in found[1]


def test_api_slowness_within_the_agents_check_timeout_excuses_no_reset_of_a_cut_off_node() -> None:
    steps = [Step(5.0, "api-slow", duration=100.0, delay=0.5), Step(20.0, "partition", "node-1", scope="peers"),
             Step(200.0, "heal", "node-1")]
    runner = bare_runner(steps, [(50.0, "watchdog-fired", "node-1", {})])
    runner.out = Path("/nonexistent")
    (finding,) = runner.judge_resets()  # answers 0.5 s late still pass the agent's 2 s check
    assert finding.startswith("node-1 reset by its watchdog at t=50.0s")


def test_a_taint_on_a_node_whose_agent_clock_is_beyond_the_bound_is_a_finding() -> None:
    steps = [Step(10.0, "power-off", "node-1"), Step(10.0, "power-off", "node-2"), Step(10.0, "power-off", "node-3")]
    runner = bare_runner(steps, [(20.0, "node-booted", "node-2", {}), (50.0, "taint-added", "node-1", OOS),
                                 (50.0, "taint-added", "node-2", OOS), (50.0, "taint-added", "node-3", OOS)])
    runner.schedule.clock_offsets = {"node-1": -60.0, "node-2": 60.0, "node-3": 0.4}
    (finding,) = runner.judge_clock()  # node-2 booted again since; node-3's clock is within the bound
    assert finding.startswith("node-1 tainted out-of-service at t=50.0s") and "-60s off" in finding
    assert finding_kind(finding) == "taint-on-untrusted-clock"


def test_a_dead_node_with_its_agent_clock_off_that_escalates_is_not_held_to_the_bound() -> None:
    steps = [Step(10.0, "power-off", "node-1")]
    for offsets, escalated in (({"node-1": 60.0}, True), ({"node-1": 60.0}, False), ({"node-1": 0.3}, True)):
        runner = bare_runner(steps, [])
        runner.schedule.clock_offsets = offsets
        runner.pods_at_fault, runner.recoveries = {steps[0]: ["db-1"]}, []
        if escalated:
            runner.transitions = [Transition(200.0, "node-1", "u1", "AwaitingApproval", "ClockSkewTooLarge", "")]
        runner.judge_recoveries()
        (r,) = runner.recoveries
        excused = escalated and offsets["node-1"] == 60.0
        assert r.checked is not excused and r.ok() is excused, (offsets, escalated)
        assert ("clock is +60s off" in r.note) is excused


def test_a_webhook_restart_restarts_the_bound_once_the_webhook_is_ready_again() -> None:
    steps = [Step(10.0, "power-off", "node-1")]
    plain = judge(steps, [(400.0, "pod-started", "node-2")]).recoveries[0]
    runner = bare_runner(steps, [(400.0, "pod-started", "node-2", {})])
    runner.c.timeline = judge(steps, [(400.0, "pod-started", "node-2")]).c.timeline
    runner.webhook_restarts = [SimpleNamespace(window=(100.0, 305.0))]  # type: ignore[list-item]
    runner.pods_at_fault, runner.recoveries = {steps[0]: ["db-1"]}, []
    runner.judge_recoveries()
    (restarted,) = runner.recoveries
    assert restarted.started_from == 305.0 and restarted.ok() and not plain.ok()


def test_a_webhook_restart_kills_once_at_the_first_firing_delivery_for_its_node() -> None:
    calls: list[str] = []
    world = SimpleNamespace(scale=0.001, kill_webhook=lambda replica: calls.append(f"kill {replica}"),
                            start_webhook=lambda replica: calls.append(f"start {replica}"))
    notes: list[str] = []
    restart = WebhookRestart(world, Step(10.0, "webhook-restart", "node-2", restart_after=5.0),  # type: ignore[arg-type]
                             notes.append)
    restart.on_post("node-1", "firing")
    restart.on_post("node-2", "resolved")
    assert calls == [] and not restart.busy and restart.window is None
    restart.on_post("node-2", "firing")
    restart.on_post("node-2", "firing")  # a retry of the same delivery: no second restart
    deadline = time.time() + 10
    while restart.busy and time.time() < deadline:
        time.sleep(0.01)
    assert calls == ["kill 0", "start 0"] and restart.window is not None
    assert restart.window[0] < restart.window[1] and "killed mid-delivery of node-2's alert" in notes[0]
