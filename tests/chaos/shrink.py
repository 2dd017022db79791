"""Shrinking a failing chaos schedule to a minimal one that still fails the same way.

Pure: the only judge is the injected predicate `fails(schedule) -> bool` (a world run in
tests/chaos/minimize.py, a plain function in tests/chaos/test_shrink.py); nothing here
starts a world or reads a clock.

A schedule is cut into units that only make sense whole (`units`): a node's fault with
the step that ends it and the alert steps about it, an API outage, a leader kill, one
attack or mistake. Three passes, each keeping a change only if the predicate still says
the schedule fails:

1. drop units: delta debugging (Zeller's ddmin) over the units, first in halves, then in
   finer parts, down to a schedule from which no single unit can be dropped (1-minimal);
   then each alert step of a kept fault on its own;
2. shorten: halve each unit's length (a fault's time to its end step, an outage's or
   attack's duration, an agent's time to its restart) while it still fails, down to
   MIN_LENGTH_S;
3. move earlier: the whole schedule to start at LEAD_S, then each unit to the start of
   the one before it, so that the failure comes as early as it can (a shorter run).

Every schedule tried is remembered (a world run costs a minute): the same candidate is
never run twice. With `max_tries`, shrinking stops once that many runs were made and
returns the smallest failing schedule found so far (`Shrunk.complete` is False).

A run that fails is evidence (the failure happened); a run that passes may have been
lucky, so a timing failure can shrink less than it could. Run the result again before
trusting it (`tests/chaos/minimize.py` does, `--confirm`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from tests.chaos.schedule import DURATION_ACTIONS, Schedule, Step

T = TypeVar("T")
Unit = tuple[Step, ...]

ALERT_STEPS = ("alert-flap", "alert-stale")
RESTART_ACTIONS = ("agent-kill", "agent-stop")
MIN_LENGTH_S = 10.0  # no unit is shortened below this (cluster seconds)
LEAD_S = 10.0  # a moved schedule starts here: the world has run its schedule's first second


def units(schedule: Schedule) -> list[Unit]:
    """The schedule's steps grouped into units that are dropped, shortened and moved whole,
    in the order of their first step."""
    grouped: list[list[Step]] = []
    taken: set[int] = set()
    for inc in schedule.incidents():
        unit = [s for s in (inc.start_step, inc.end_step) if s is not None]
        unit += [s for s in schedule.steps if s.action in ALERT_STEPS and s.node == inc.node
                 and inc.start <= s.at <= inc.end + inc.tail_s]
        unit = [s for s in dict.fromkeys(unit) if id(s) not in taken]
        taken |= {id(s) for s in unit}
        if unit:
            grouped.append(unit)
    grouped += [[s] for s in schedule.steps if id(s) not in taken]
    return sorted((tuple(sorted(u, key=lambda s: s.at)) for u in grouped), key=lambda u: u[0].at)


def assemble(base: Schedule, parts: Sequence[Unit]) -> Schedule:
    """A schedule of `parts`, with `base`'s seed, limits, Alertmanager behaviour and agent
    clock offsets."""
    steps = sorted((s for u in parts for s in u), key=lambda s: s.at)
    return Schedule(base.seed, steps, base.max_unhealthy, base.delivery, dict(base.clock_offsets))


def key(schedule: Schedule) -> str:
    """Two schedules with the same key run the same (for the memory of tries)."""
    return json.dumps(schedule.to_json()["steps"], sort_keys=True)


# -- delta debugging ------------------------------------------------------------------------


def _split(items: list[T], n: int) -> list[list[T]]:
    size, extra = divmod(len(items), n)
    out, at = [], 0
    for i in range(n):
        end = at + size + (1 if i < extra else 0)
        out.append(items[at:end])
        at = end
    return [c for c in out if c]


def ddmin(items: list[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """Zeller's ddmin: a sublist of `items` (which must fail) that fails, from which no
    single item can be removed and still fail. Tries each part alone, then each
    complement, and splits finer when neither fails."""
    n = 2
    while len(items) >= 2:
        parts = _split(items, n)
        for part in parts:
            if fails(part):
                items, n = part, 2
                break
        else:
            for i in range(len(parts) if len(parts) > 2 else 0):  # with 2 parts the complements are the parts
                rest = [x for j, p in enumerate(parts) if j != i for x in p]
                if fails(rest):
                    items, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(items):
                    return items
                n = min(len(items), 2 * n)
    return items


# -- shortening and moving --------------------------------------------------------------------


def length(unit: Unit) -> float:
    """The unit's one length knob (0: none): start to end step, duration, or restart time."""
    first = unit[0]
    ends = [s for s in unit[1:] if s.action not in ALERT_STEPS]
    if ends:
        return ends[0].at - first.at
    if first.action in DURATION_ACTIONS:
        return first.duration
    if first.action in RESTART_ACTIONS and first.restart_after is not None:
        return first.restart_after
    return 0.0


def with_length(unit: Unit, new: float) -> Unit:
    """The unit with its length set to `new`: an end step moves (with the alert steps after
    it; a mid-fault alert step stays inside the fault), or a duration or restart changes."""
    new = round(new, 1)
    first = unit[0]
    ends = [s for s in unit[1:] if s.action not in ALERT_STEPS]
    if ends:
        end = ends[0]
        shift = (first.at + new) - end.at
        out = []
        for s in unit:
            if s is first:
                out.append(s)
            elif s is end or s.at >= end.at:
                out.append(replace(s, at=round(s.at + shift, 1)))
            else:
                out.append(replace(s, at=min(s.at, round(first.at + new, 1))))
        return tuple(sorted(out, key=lambda s: s.at))
    if first.action in DURATION_ACTIONS:
        return (replace(first, duration=new), *unit[1:])
    if first.action in RESTART_ACTIONS:
        return (replace(first, restart_after=new), *unit[1:])
    return unit


def moved(unit: Unit, start: float) -> Unit:
    """The unit with its first step at `start`, every step keeping its offset."""
    shift = start - unit[0].at
    return tuple(replace(s, at=round(s.at + shift, 1)) for s in unit)


# -- the whole ----------------------------------------------------------------------------------


@dataclass
class Attempt:
    what: str
    units: int
    steps: int
    failed: bool


@dataclass
class Shrunk:
    schedule: Schedule
    original_units: int
    tries: int
    complete: bool  # False: stopped at max_tries
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def units(self) -> int:
        return len(units(self.schedule))


class _OutOfTries(Exception):
    pass


class Shrinker:
    """One shrinking: the predicate, the memory of what was tried, the best so far."""

    def __init__(self, schedule: Schedule, fails: Callable[[Schedule], bool], max_tries: int | None = None,
                 on_attempt: Callable[[Attempt], None] | None = None) -> None:
        self.base = schedule
        self.predicate = fails
        self.max_tries = max_tries
        self.on_attempt = on_attempt
        self.seen: dict[str, bool] = {}
        self.attempts: list[Attempt] = []
        self.best = units(schedule)

    def fails(self, parts: Sequence[Unit], what: str) -> bool:
        candidate = assemble(self.base, parts)
        k = key(candidate)
        if k in self.seen:
            return self.seen[k]
        if not candidate.steps:
            self.seen[k] = False  # nothing happens: not a failure of the product
            return False
        if self.max_tries is not None and len(self.attempts) >= self.max_tries:
            raise _OutOfTries
        failed = bool(self.predicate(candidate))
        self.seen[k] = failed
        attempt = Attempt(what, len(parts), len(candidate.steps), failed)
        self.attempts.append(attempt)
        if self.on_attempt:
            self.on_attempt(attempt)
        if failed:
            self.best = list(parts)
        return failed

    def run(self) -> Shrunk:
        original = len(self.best)
        complete = True
        try:
            if not self.fails(self.best, "the original"):
                raise ValueError("the schedule does not fail: nothing to shrink")
            self.drop()
            self.drop_alerts()
            self.shorten()
            self.move()
        except _OutOfTries:
            complete = False
        return Shrunk(assemble(self.base, self.best), original, len(self.attempts), complete, self.attempts)

    def drop(self) -> None:
        ddmin(list(self.best), lambda parts: self.fails(parts, f"keep {len(parts)} of {len(self.best)} units"))

    def drop_alerts(self) -> None:
        """Alertmanager's misbehaviour about a fault goes with the fault, but may not matter."""
        for i in range(len(self.best)):
            if all(s.action in ALERT_STEPS for s in self.best[i]):
                continue  # an alert step alone is a unit of its own, dropped or not as one
            for step in [s for s in self.best[i] if s.action in ALERT_STEPS]:
                unit = self.best[i]
                candidate = [*self.best[:i], tuple(s for s in unit if s is not step), *self.best[i + 1:]]
                self.fails(candidate, f"without {step.action} {step.node}")

    def shorten(self) -> None:
        changed = True
        while changed:
            changed = False
            for i in range(len(self.best)):
                unit = self.best[i]
                now = length(unit)
                if now <= MIN_LENGTH_S:
                    continue
                shorter = with_length(unit, max(MIN_LENGTH_S, now / 2))
                candidate = [*self.best[:i], shorter, *self.best[i + 1:]]
                if self.fails(candidate, f"{unit[0].action} {unit[0].node} {now:g}s -> {length(shorter):g}s"):
                    changed = True

    def move(self) -> None:
        first = min(u[0].at for u in self.best)
        if first > LEAD_S:
            shift = LEAD_S - first
            earlier = [moved(u, u[0].at + shift) for u in self.best]
            self.fails(earlier, f"everything {-shift:g}s earlier")
        for i in range(1, len(self.best)):
            ordered = sorted(self.best, key=lambda u: u[0].at)
            unit, before = ordered[i], ordered[i - 1]
            if unit[0].at <= before[0].at:
                continue
            candidate = [moved(u, before[0].at) if u is unit else u for u in ordered]
            self.fails(candidate, f"{unit[0].action} {unit[0].node} to t={before[0].at:g}s")


def shrink(schedule: Schedule, fails: Callable[[Schedule], bool], max_tries: int | None = None,
           on_attempt: Callable[[Attempt], None] | None = None) -> Shrunk:
    """The smallest schedule found that `fails` (see the module docstring)."""
    return Shrinker(schedule, fails, max_tries, on_attempt).run()
