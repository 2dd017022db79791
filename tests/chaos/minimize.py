"""Shrink a failing chaos schedule to fewer steps that still fail the same way.

    .venv/bin/python -m tests.chaos.minimize --seed 4 --match FenceNotObserved --out /tmp/min-4
    .venv/bin/python -m tests.chaos.minimize --schedule chaos-schedule.json --match "reset by its watchdog"

Greedy: the schedule is cut into units that only make sense whole (a fault with the step
that ends it and the alert steps about it; an outage; a leader kill), and each unit is
dropped in turn; a drop is kept when the shorter schedule still produces a finding that
contains `--match`. Each try runs a whole world (about a minute), and a run that does not
fail may just have been lucky, so try the result again (`--chaos-schedule=FILE`) before
trusting it. The smallest schedule found is written to `<out>/minimal.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.chaos.runner import reproduce_command, run_schedule
from tests.chaos.schedule import Schedule, Step, generate


def units(schedule: Schedule) -> list[list[Step]]:
    grouped: list[list[Step]] = []
    taken: set[int] = set()
    steps = schedule.steps
    for inc in schedule.incidents():
        unit = [s for s in (inc.start_step, inc.end_step) if s is not None]
        unit += [s for s in steps if s.action in ("alert-flap", "alert-stale") and s.node == inc.node
                 and inc.start <= s.at <= inc.end + inc.tail_s]
        unit = [s for s in unit if id(s) not in taken]
        taken |= {id(s) for s in unit}
        if unit:
            grouped.append(unit)
    grouped += [[s] for s in steps if id(s) not in taken]
    return grouped


def fails(schedule: Schedule, out: Path, match: str) -> list[str]:
    try:
        _, findings = run_schedule(schedule, out)
    except Exception as err:  # a world that could not run is not a reproduction
        print(f"  run error: {err}", file=sys.stderr)
        return []
    return [f for f in findings if match in f]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seed", type=int)
    source.add_argument("--schedule", type=Path)
    parser.add_argument("--match", required=True, help="text a finding must contain")
    parser.add_argument("--out", type=Path, default=Path("results/chaos-minimize"))
    args = parser.parse_args(argv)
    schedule = generate(args.seed) if args.seed is not None else Schedule.load(args.schedule)
    args.out.mkdir(parents=True, exist_ok=True)
    tries = 0

    def attempt(candidate: Schedule) -> list[str]:
        nonlocal tries
        tries += 1
        found = fails(candidate, args.out / f"try-{tries}", args.match)
        print(f"try {tries}: {len(candidate.steps)} steps -> {'fails' if found else 'passes'}", flush=True)
        return found

    if not attempt(schedule):
        print(f"the schedule does not fail with {args.match!r}: nothing to minimize")
        return 1
    kept = units(schedule)
    i = 0
    while i < len(kept):
        candidate_units = kept[:i] + kept[i + 1:]
        steps = sorted((s for u in candidate_units for s in u), key=lambda s: s.at)
        candidate = Schedule(schedule.seed, steps, schedule.max_unhealthy, schedule.delivery)
        if attempt(candidate):
            kept = candidate_units
        else:
            i += 1
    minimal = Schedule(schedule.seed, sorted((s for u in kept for s in u), key=lambda s: s.at),
                       schedule.max_unhealthy, schedule.delivery)
    path = args.out / "minimal.json"
    minimal.save(path)
    print(minimal.describe())
    print(f"\nwritten to {path}; run it again: {reproduce_command(None, path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
