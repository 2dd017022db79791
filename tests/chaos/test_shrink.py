"""The shrinking of failing chaos schedules (tests/chaos/shrink.py), with pure predicates:
no world, each test a fraction of a second."""

from __future__ import annotations

import random

import pytest

from tests.chaos.schedule import Schedule, Step, generate
from tests.chaos.shrink import (
    LEAD_S,
    MIN_LENGTH_S,
    assemble,
    ddmin,
    length,
    moved,
    shrink,
    units,
    with_length,
)


def test_ddmin_finds_the_one_item_that_matters() -> None:
    tried: list[list[int]] = []

    def fails(items: list[int]) -> bool:
        tried.append(items)
        return 7 in items

    assert ddmin(list(range(16)), fails) == [7]
    assert len(tried) <= 2 * 4 + 2  # halving: about two tries per level


def test_ddmin_keeps_every_item_of_a_failing_combination_and_nothing_else() -> None:
    def fails(items: list[int]) -> bool:
        return {3, 11, 12}.issubset(items)

    assert ddmin(list(range(20)), fails) == [3, 11, 12]


def test_ddmin_result_is_one_minimal_for_a_random_predicate() -> None:
    rng = random.Random(5)
    for _ in range(30):
        needed = set(rng.sample(range(25), rng.randint(1, 4)))
        alternative = set(rng.sample(range(25), 2))

        def fails(items: list[int], needed: set[int] = needed, alternative: set[int] = alternative) -> bool:
            return needed.issubset(items) or alternative.issubset(items)

        out = ddmin(list(range(25)), fails)
        assert fails(out)
        for i in range(len(out)):
            assert not fails(out[:i] + out[i + 1:]), (out, i)


def _seed19_like() -> Schedule:
    return generate(19)


def test_a_fault_is_one_unit_with_the_step_that_ends_it_and_its_alerts() -> None:
    schedule = _seed19_like()
    parts = units(schedule)
    assert sorted(map(repr, (s for u in parts for s in u))) == sorted(map(repr, schedule.steps))  # every step, once
    kubelet = next(u for u in parts if u[0].action == "kubelet-stop")
    assert [s.action for s in kubelet] == ["kubelet-stop", "alert-flap", "kubelet-start"]
    assert {s.node for s in kubelet} == {"node-2"}
    assert next(u for u in parts if u[0].action == "forge-status") == (
        next(s for s in schedule.steps if s.action == "forge-status"),)
    assert assemble(schedule, parts).steps == schedule.steps


def test_a_unit_s_length_is_its_fault_its_duration_or_its_restart() -> None:
    fault = (Step(20.0, "power-off", "node-1"), Step(80.0, "alert-flap", "node-1"),
             Step(200.0, "power-on", "node-1"), Step(230.0, "alert-stale", "node-1"))
    assert length(fault) == 180.0
    shorter = with_length(fault, 40.0)
    assert [(s.action, s.at) for s in shorter] == [("power-off", 20.0), ("alert-flap", 60.0), ("power-on", 60.0),
                                                    ("alert-stale", 90.0)]
    outage = (Step(50.0, "api-outage", duration=120.0),)
    assert length(with_length(outage, 60.0)) == 60.0
    stop = (Step(50.0, "agent-stop", "node-2", restart_after=300.0),)
    assert with_length(stop, 150.0)[0].restart_after == 150.0
    assert length((Step(5.0, "leader-kill"),)) == 0.0
    assert [s.at for s in moved(fault, 10.0)] == [10.0, 70.0, 190.0, 220.0]


def _bug(schedule: Schedule) -> bool:
    """A made-up bug: a forged report on a node whose kubelet has been stopped for at least
    100 s, with the node's agent stopped, fails; nothing else does."""
    stop = next((s for s in schedule.steps if s.action == "kubelet-stop" and s.node == "node-2"), None)
    start = next((s for s in schedule.steps if s.action == "kubelet-start" and s.node == "node-2"), None)
    forged = any(s.action == "forge-status" and s.node == "node-2" for s in schedule.steps)
    agent = any(s.action == "agent-stop" and s.node == "node-2" for s in schedule.steps)
    return bool(stop and start and forged and agent and start.at - stop.at >= 100.0)


def test_a_ten_unit_schedule_shrinks_to_the_three_units_that_matter() -> None:
    schedule = _seed19_like()
    assert len(units(schedule)) >= 10 and _bug(schedule)
    tried: list[int] = []
    out = shrink(schedule, lambda s: tried.append(len(s.steps)) or _bug(s))
    assert out.complete and out.original_units == len(units(schedule))
    actions = sorted(s.action for s in out.schedule.steps)
    assert actions == ["agent-stop", "forge-status", "kubelet-start", "kubelet-stop"]  # the alert-flap went
    stop, start = (next(s for s in out.schedule.steps if s.action == a) for a in ("kubelet-stop", "kubelet-start"))
    assert 100.0 <= start.at - stop.at < 200.0  # halved while it failed
    assert min(s.at for s in out.schedule.steps) == LEAD_S  # moved to the start
    assert next(s for s in out.schedule.steps if s.action == "agent-stop").restart_after == MIN_LENGTH_S
    assert _bug(out.schedule)
    assert out.tries == len(tried) == len(out.attempts) < 60  # every candidate ran once at most


def test_a_schedule_that_does_not_fail_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fail"):
        shrink(_seed19_like(), lambda s: False)


def test_out_of_tries_it_returns_the_smallest_failure_so_far() -> None:
    schedule = _seed19_like()
    out = shrink(schedule, _bug, max_tries=4)
    assert not out.complete and out.tries == 4
    assert _bug(out.schedule) and len(out.schedule.steps) <= len(schedule.steps)


def test_a_failure_that_needs_the_timing_keeps_it() -> None:
    """A failure only when the outage overlaps the partition: moving either apart passes,
    so the shrinker must not keep such a move."""
    schedule = Schedule(1, [Step(100.0, "partition", "node-7", scope="peers"), Step(300.0, "heal", "node-7"),
                            Step(150.0, "api-outage", duration=100.0), Step(400.0, "leader-kill"),
                            Step(420.0, "reboot", "node-3")])
    schedule.steps.sort(key=lambda s: s.at)

    def overlap(s: Schedule) -> bool:
        part = next((x for x in s.steps if x.action == "partition"), None)
        heal = next((x for x in s.steps if x.action == "heal"), None)
        outage = next((x for x in s.steps if x.action == "api-outage"), None)
        return bool(part and heal and outage and part.at < outage.at + outage.duration and outage.at < heal.at)

    out = shrink(schedule, overlap)
    assert sorted(s.action for s in out.schedule.steps) == ["api-outage", "heal", "partition"]
    assert overlap(out.schedule)


def test_an_alert_step_alone_is_dropped_whole() -> None:
    """A late redelivery about no fault of the schedule is a unit of its own."""
    schedule = Schedule(2, [Step(20.0, "power-off", "node-1"), Step(60.0, "alert-stale", "node-5"),
                            Step(200.0, "power-on", "node-1"), Step(230.0, "alert-stale", "node-1")])
    assert [len(u) for u in units(schedule)] == [3, 1]
    out = shrink(schedule, lambda s: any(x.action == "power-off" for x in s.steps))
    assert [s.action for s in out.schedule.steps] == ["power-off", "power-on"]
