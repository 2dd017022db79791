"""Shrink a failing chaos schedule to a minimal one that still fails the same way, and
write it as a replayable file and a pytest-ready scenario.

    .venv/bin/python -m tests.chaos.minimize --seed 19
    .venv/bin/python -m tests.chaos.minimize --seed 4 --no-attacks --kind fence-not-observed --out /tmp/min-4
    .venv/bin/python -m tests.chaos.minimize --schedule chaos-schedule.json --match "reset by its watchdog"
    .venv/bin/python -m tests.chaos.parallel --minimize 19            # the same, from the parallel runner
    .venv/bin/python -m tests.chaos.minimize --seed 19 --reintroduce forged-report-trusted   # the proof

"The same way": the kind of finding (tests/chaos/judge.py, `finding_kind`) the original
run's most serious finding had, e.g. `invariant:unsafe-taint`, unless `--kind` or
`--match` (a text a finding must contain) says otherwise. The original is run first:
one that does not fail so is not minimized.

Each try runs one world in its own pytest process (tests/chaos/parallel.py's
`run_world`, under `nice`, started again if it never started), about a minute and a half
on a 2-core machine: the shrinking (tests/chaos/shrink.py: drop fault units by delta
debugging, shorten what is left, move it earlier) stops after `--max-tries` runs with the
smallest failing schedule so far. A run that fails is evidence; one that passes may have
been lucky, so the result is run `--confirm` times more and the report says how often it
failed.

Written to `--out`: `minimal.json` (run it with `--chaos-schedule=`), `test_found_snippet.py`
(a scenario for tests/chaos/test_found.py, asserting the finding's kind does not occur),
`minimize.txt` (every try), `smallest-so-far.json` while it runs, and each try's world under
`try-<n>/`.
"""

from __future__ import annotations

import argparse
import pprint
import sys
import time
from pathlib import Path

from tests.chaos.judge import FINDING_KINDS, finding_kind, worst_kind
from tests.chaos.parallel import ROOT, run_schedule_file
from tests.chaos.reintroduce import BUGS
from tests.chaos.runner import reproduce_command
from tests.chaos.schedule import Schedule, generate
from tests.chaos.shrink import Shrunk, shrink, units

DEFAULT_MAX_TRIES = 40
QUOTES = '"' * 3
# How the runner notes a step that did not take place (Runner.executed).
NOT_DONE = ("not written", "could not read", "not sent", "in Fencing, but no alert", "nothing fired", "fault refused", "no agent process",
            "no live leader")


def matches(findings: list[str], kind: str = "", text: str = "") -> list[str]:
    """The findings that count as the same failure: of `kind`, or containing `text`."""
    return [f for f in findings if (text and text in f) or (kind and finding_kind(f) == kind)]


def snippet(shrunk: Shrunk, kind: str, finding: str, origin: str, reintroduce: str = "") -> str:
    """A scenario for tests/chaos/test_found.py: the minimal schedule, run in the chaos
    world, must not fail with `kind` (it did when minimized, so it fails until fixed)."""
    s = shrunk.schedule
    name = f"seed_{s.seed}" if s.seed is not None else "schedule"
    slug = kind.replace(":", "_").replace("-", "_")
    steps = "\n".join("        " + st.describe() for st in s.steps)
    broken = (f"\n    Found on a world carrying the fixed bug `{reintroduce}` again (tests/chaos/reintroduce.py):"
              "\n    on the product as it is, it passes." if reintroduce else "")
    doc = pprint.pformat(s.to_json(), width=100, sort_dicts=False).replace("\n", "\n        ")
    finding = finding[:300].replace("\\", "/").replace(QUOTES, "'")
    return f'''# imports for tests/chaos/test_found.py:
#   from pathlib import Path
#   import pytest
#   from tests.chaos.judge import finding_kind
#   from tests.chaos.minimize import NOT_DONE
#   from tests.chaos.runner import run_schedule
#   from tests.chaos.schedule import Schedule


@pytest.mark.timeout(900)
def test_{name}_minimized_{slug}(tmp_path: Path) -> None:
    """{origin}, minimized (tests/chaos/minimize.py) from {shrunk.original_units} fault units
    to {shrunk.units} in {shrunk.tries} runs; it failed with {kind}:
        {finding}
    The steps (cluster seconds):
{steps}{broken}"""
    schedule = Schedule.from_json(
        {doc})
    runner, findings = run_schedule(schedule, tmp_path)
    # A minimal schedule sits at the edge of its failure: a step that did not happen as it
    # did when minimized (a forgery with no order to forge, a flap with no Fencing) makes
    # this run no evidence either way, and fails as itself.
    missed = [f"{{st.describe()}}: {{text}}" for _, st, text in runner.executed if text.startswith(NOT_DONE)]
    assert not missed, missed
    assert not [f for f in findings if finding_kind(f) == {kind!r}], findings
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seed", type=int)
    source.add_argument("--schedule", type=Path)
    parser.add_argument("--no-attacks", action="store_true", help="the seed's benign faults only")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--kind", choices=[k for k, _ in FINDING_KINDS] + ["other"],
                        help="the kind of finding to keep (default: the original's most serious)")
    target.add_argument("--match", default="", help="a text a finding must contain instead")
    parser.add_argument("--reintroduce", choices=BUGS, default="", help="run on a world carrying this fixed bug")
    parser.add_argument("--max-tries", type=int, default=DEFAULT_MAX_TRIES, help="world runs at most (each ~1.5 min)")
    parser.add_argument("--confirm", type=int, default=1, help="runs of the result again")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    schedule = generate(args.seed, attacks=not args.no_attacks, world_faults=not args.no_attacks) if args.seed is not None else Schedule.load(args.schedule)
    origin = (f"Chaos seed {args.seed}" + (" without attacks" if args.no_attacks else "") if args.seed is not None
              else f"The chaos schedule {args.schedule.name}")
    out = (args.out or ROOT / "results" / f"chaos-minimize-{args.seed if args.seed is not None else 'file'}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "minimize.txt").open("a")
    kind, text, first_finding = args.kind or "", args.match, ""
    tries = 0
    started = time.time()

    def say(line: str) -> None:
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    def run(candidate: Schedule, label: str) -> list[str]:
        nonlocal tries
        tries += 1
        folder = out / f"try-{tries}"
        folder.mkdir(parents=True, exist_ok=True)
        candidate.save(folder / "chaos-schedule.json")
        result = run_schedule_file(folder / "chaos-schedule.json", folder / "world", args.reintroduce,
                                   candidate.seed or 0)
        say(f"try {tries} ({label}): {len(units(candidate))} units, {len(candidate.steps)} steps -> "
            f"{'FAILS' if not result.passed else 'passes'} in {result.seconds:.0f}s, load {result.load_start:.1f} "
            f"-> {result.load_peak:.1f}" + "".join(f"\n      - {f}" for f in result.findings))
        return result.findings if not result.passed else []

    def fails(candidate: Schedule) -> bool:
        nonlocal kind, first_finding
        findings = run(candidate, "the original" if tries == 0 else "shrinking")
        if not kind and not text:  # the original decides what "the same way" is
            kind = worst_kind(findings)
            say(f"the original's most serious finding: {kind or 'none'}")
        same = matches(findings, kind, text)
        if same and not first_finding:
            first_finding = same[0]
        if same:
            candidate.save(out / "smallest-so-far.json")
        return bool(same)

    say(f"minimizing {origin.lower()}: {len(units(schedule))} units, {len(schedule.steps)} steps; "
        f"at most {args.max_tries} runs" + (f"; world with the bug {args.reintroduce}" if args.reintroduce else ""))
    say(schedule.describe())
    try:
        shrunk = shrink(schedule, fails, max_tries=args.max_tries,
                        on_attempt=lambda a: say(f"   {'kept' if a.failed else 'no'}: {a.what}"))
    except ValueError:
        say(f"the original does not fail{f' with {kind or text!r}' if kind or text else ''}: nothing to minimize")
        return 1
    confirmed = sum(1 for i in range(args.confirm) if matches(run(shrunk.schedule, f"confirm {i + 1}"), kind, text))
    path = out / "minimal.json"
    shrunk.schedule.save(path)
    code = snippet(shrunk, kind or f"text {text!r}", first_finding, origin, args.reintroduce)
    (out / "test_found_snippet.py").write_text(code)
    say("")
    say(f"{origin}: {shrunk.original_units} units ({len(schedule.steps)} steps) -> {shrunk.units} units "
        f"({len(shrunk.schedule.steps)} steps) in {shrunk.tries} runs, {(time.time() - started) / 60:.0f} min"
        + ("" if shrunk.complete else f" (stopped at --max-tries {args.max_tries})")
        + f"; the result failed again in {confirmed} of {args.confirm} confirming runs")
    say(shrunk.schedule.describe())
    say(f"\nwritten to {path}; run it again: {reproduce_command(None, path, reintroduce=args.reintroduce)}")
    say(f"a scenario for tests/chaos/test_found.py: {out / 'test_found_snippet.py'}\n")
    print(code)
    log.close()
    return 0 if confirmed or not args.confirm else 2


if __name__ == "__main__":
    sys.exit(main())
