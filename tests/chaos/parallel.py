"""Run many chaos seeds, several worlds at once, each in its own pytest process.

    .venv/bin/python -m tests.chaos.parallel --seeds 1-40
    .venv/bin/python -m tests.chaos.parallel --seeds 101-300 --chaos-workers 2 --out results/chaos-101
    .venv/bin/python -m tests.chaos.parallel --seeds 7,12,40 --no-attacks
    .venv/bin/python -m tests.chaos.parallel --seeds 1-40 --minimize-failures   # then shrink each failure
    .venv/bin/python -m tests.chaos.parallel --minimize 19                      # shrink one failing seed

One world is about 20 processes (7 agents, the webhook's workers, two controllers, the
simulator's threads), so the default is one world per two cores (`os.cpu_count() // 2`,
at least 1); `--chaos-workers` overrides it. Every world runs under `nice -n 10`.

Beside each result the runner prints the 1-minute load average when the seed started,
the highest seen while it ran (sampled every 2 s) and the number of cores: a timing
finding from a run whose load was far above the cores is to be run again on a quiet
machine before it is trusted (the chaos test says so in its failure too). Results go to
`<out>/results.jsonl`, one line per seed, and each world's logs to `<out>/seed-<n>/`.

A world that did not start (the webhook or the agents not ready within the harness's
start-up wait, which an overloaded machine misses) ran no schedule and found nothing: it
is started again, up to WORLD_START_TRIES times, and reported as such if it never starts.
Stopping the runner (Ctrl-C or SIGTERM) interrupts every running seed with SIGINT, so
that each world stops its agents and servers, then kills what is left.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.chaos.reintroduce import BUGS

ROOT = Path(__file__).resolve().parents[2]
FINDING = re.compile(r"^\s+- (.+)$")
SEED_TIMEOUT_S = 1800.0
WORLD_START_TRIES = 3
NOT_STARTED = re.compile(r"not ready within|waiting for agents published|timed out after [\d.]+s waiting for "
                         r"(a leader|web pods running)|waiting for db-")
# A failed seed's "finding" that is no finding: nothing to minimize.
NO_FINDING = ("the world never started", "the run did not finish", "try ")
_running: set[subprocess.Popen[str]] = set()
_running_lock = threading.Lock()


def parse_seeds(text: str) -> list[int]:
    """"1-40", "7,12,40" or a mix ("1-3,9")."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"empty range {part!r}")
            seeds += range(lo, hi + 1)
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError("no seeds")
    return seeds


def default_workers(cores: int | None = None) -> int:
    return max(1, (cores if cores is not None else (os.cpu_count() or 1)) // 2)


@dataclass
class SeedResult:
    seed: int
    passed: bool
    seconds: float
    load_start: float
    load_peak: float
    cores: int
    findings: list[str]
    out: str

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        head = (f"seed {self.seed:5d} {verdict}  {self.seconds:6.0f}s  load {self.load_start:5.1f} -> peak "
                f"{self.load_peak:5.1f} on {self.cores} cores")
        return "\n".join([head] + [f"      - {f}" for f in self.findings])


def findings_of(output: str) -> list[str]:
    """The findings a failing chaos test prints (after "chaos ... failed:")."""
    found, inside = [], False
    for line in output.splitlines():
        if re.search(r"chaos (seed-\d+|schedule) failed( \(on purpose[^)]*\))?:", line):
            inside = True
            continue
        if inside:
            match = FINDING.match(line)
            if not match:
                break
            found.append(match.group(1))
    return found


def world_not_started(output: str) -> bool:
    """The seed's world failed before its schedule started (no finding was possible)."""
    return "chaos seed-" not in output and "executed (cluster seconds" not in output and bool(
        NOT_STARTED.search(output))


def _run(cmd: list[str]) -> tuple[str, bool]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    with _running_lock:
        _running.add(proc)
    try:
        output, _ = proc.communicate(timeout=SEED_TIMEOUT_S)
        return output, proc.returncode == 0
    except subprocess.TimeoutExpired:
        _interrupt(proc)
        return f"timed out after {SEED_TIMEOUT_S:.0f}s\n", False
    finally:
        with _running_lock:
            _running.discard(proc)


def kill_leftovers(out: Path) -> int:
    """SIGKILL what a seed's world left running (a world interrupted while it started or
    stopped): the processes whose command line or environment names the seed's own
    directory, which no other run uses. Returns how many."""
    mark, killed = str(out.resolve()) + os.sep, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:  # agents name it on their command line; controllers and the webhook in their environment
            seen = b" ".join((entry / part).read_bytes() for part in ("cmdline", "environ"))
        except OSError:
            continue
        if mark in seen.replace(b"\0", b" ").decode(errors="replace"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """SIGINT (the world's context managers stop its processes), then SIGKILL."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def run_world(test_args: list[str], out: Path, label: int = 0, python: str = sys.executable) -> SeedResult:
    """One chaos world in its own pytest process (tests/chaos/test_chaos.py with
    `test_args`), its logs under `out`, started again if it never started; `label` is the
    seed to report it as."""
    out.mkdir(parents=True, exist_ok=True)
    start, load_start = time.time(), os.getloadavg()[0]
    peak = [load_start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            peak.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    notes: list[str] = []
    try:
        for attempt in range(1, WORLD_START_TRIES + 1):
            cmd = ["nice", "-n", "10", python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                   "tests/chaos/test_chaos.py", *test_args, f"--basetemp={out / f'try-{attempt}'}"]
            output, passed = _run(cmd)
            leftovers = kill_leftovers(out)
            if leftovers:
                output += f"\n{leftovers} process(es) of the world were left running: killed\n"
            (out / f"pytest-{attempt}.log").write_text(output)
            if passed or not world_not_started(output):
                break
            notes.append(f"try {attempt}: the world did not start")
    finally:
        done.set()
        sampler.join()
    findings = findings_of(output)
    if not passed and not findings:
        tail = [line for line in output.splitlines() if line.strip()][-3:]
        what = "the world never started" if world_not_started(output) else "the run did not finish"
        findings = [f"{what}: " + " | ".join(tail)[:500]]
    return SeedResult(label, passed, time.time() - start, load_start, max(peak), os.cpu_count() or 1,
                      notes + findings if not passed else findings, str(out))


def seed_args(seed: int, attacks: bool, reintroduce: str = "") -> list[str]:
    return (["--chaos-seeds=1", f"--chaos-first-seed={seed}", "--chaos-attacks" if attacks else "--chaos-no-attacks"]
            + ([f"--chaos-reintroduce={reintroduce}"] if reintroduce else []))


def run_seed(seed: int, out: Path, attacks: bool, python: str = sys.executable, reintroduce: str = "") -> SeedResult:
    return run_world(seed_args(seed, attacks, reintroduce), out, seed, python)


def run_schedule_file(path: Path, out: Path, reintroduce: str = "", label: int = 0) -> SeedResult:
    """Run a schedule saved as JSON (Schedule.save) in its own world."""
    return run_world([f"--chaos-schedule={path.resolve()}"]
                     + ([f"--chaos-reintroduce={reintroduce}"] if reintroduce else []), out, label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", help='"1-40", "7,12,40" or a mix')
    parser.add_argument("--minimize", type=int, metavar="SEED",
                        help="instead of running seeds: shrink this failing seed (tests/chaos/minimize.py)")
    parser.add_argument("--minimize-failures", action="store_true",
                        help="after the run, shrink every seed that failed on a finding, one at a time")
    parser.add_argument("--minimize-tries", type=int, default=None, help="world runs per minimization at most")
    parser.add_argument("--reintroduce", choices=BUGS, default="",
                        help="worlds carry this fixed bug again (tests/chaos/reintroduce.py), to test the tools")
    parser.add_argument("--chaos-workers", type=int, default=None,
                        help=f"worlds at once (default: cores // 2 = {default_workers()})")
    parser.add_argument("--no-attacks", action="store_true", help="benign faults only (no adversaries, no mistakes)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "chaos")
    args = parser.parse_args(argv)
    if args.minimize is not None:
        return minimize_seed(args.minimize, args)
    if not args.seeds:
        parser.error("--seeds or --minimize is required")
    seeds = parse_seeds(args.seeds)
    workers = args.chaos_workers or default_workers()
    if workers < 1:
        parser.error("--chaos-workers must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(seeds)} seed(s), {workers} world(s) at once on {os.cpu_count()} cores, "
          f"attacks {'off' if args.no_attacks else 'on'}; logs under {args.out}", flush=True)
    results: list[SeedResult] = []
    lock = threading.Lock()

    def one(seed: int) -> None:
        result = run_seed(seed, args.out / f"seed-{seed}", not args.no_attacks, reintroduce=args.reintroduce)
        with lock:
            results.append(result)
            with (args.out / "results.jsonl").open("a") as f:
                f.write(json.dumps(asdict(result)) + "\n")
            print(result.line(), flush=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        list(pool.map(one, seeds))
    except KeyboardInterrupt:
        print("stopping: interrupting the running seeds", flush=True)
        pool.shutdown(wait=False, cancel_futures=True)
        with _running_lock:
            running = list(_running)
        for proc in running:
            _interrupt(proc)
        kill_leftovers(args.out)
        return 130
    pool.shutdown()
    failed = sorted(r.seed for r in results if not r.passed)
    print(f"\n{len(results) - len(failed)} of {len(results)} passed; failed: {failed or 'none'}", flush=True)
    if args.minimize_failures:
        for r in sorted(results, key=lambda r: r.seed):
            if not r.passed and any(not f.startswith(NO_FINDING) for f in r.findings):
                minimize_seed(r.seed, args)
    return 1 if failed else 0


def minimize_seed(seed: int, args: argparse.Namespace) -> int:
    """tests/chaos/minimize.py on one seed, its output under `<out>/minimize-<seed>/`."""
    from tests.chaos import minimize  # it runs its worlds with this module

    argv = ["--seed", str(seed), "--out", str(args.out / f"minimize-{seed}")]
    argv += ["--no-attacks"] if args.no_attacks else []
    argv += ["--reintroduce", args.reintroduce] if args.reintroduce else []
    argv += ["--max-tries", str(args.minimize_tries)] if args.minimize_tries else []
    return minimize.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
