"""The parallel chaos runner's pieces that need no world (tests/chaos/parallel.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.parallel import (
    default_workers,
    findings_of,
    kill_leftovers,
    parse_seeds,
    world_not_started,
)


def test_seeds_are_ranges_lists_or_both() -> None:
    assert parse_seeds("1-3") == [1, 2, 3]
    assert parse_seeds("7,12, 40") == [7, 12, 40]
    assert parse_seeds("1-2,9") == [1, 2, 9]
    with pytest.raises(ValueError):
        parse_seeds("5-1")
    with pytest.raises(ValueError):
        parse_seeds(",")


def test_one_world_per_two_cores_and_never_none() -> None:
    assert default_workers(1) == 1
    assert default_workers(2) == 1
    assert default_workers(8) == 4


def test_the_findings_of_a_failing_seed_are_read_from_its_output() -> None:
    output = ("chaos seed-12 failed:\n  - invariant unsafe-taint at t=90.1s on node-2: x: y\n"
              "  - node-2 still has the out-of-service taint (Ready=True)\n\nreproduce: ...\n  - not a finding\n")
    assert findings_of(output) == ["invariant unsafe-taint at t=90.1s on node-2: x: y",
                                   "node-2 still has the out-of-service taint (Ready=True)"]
    assert findings_of("1 passed") == []


def test_a_world_that_never_started_is_told_from_a_finding() -> None:
    setup = "E       AssertionError: http://127.0.0.1:1/readyz not ready within 30.0s: [..] Starting gunicorn"
    assert world_not_started(setup)
    assert world_not_started("TimeoutError: timed out after 90.0s waiting for a leader")
    ran = "chaos seed-4 failed:\n  - invariant unsafe-taint ...\nexecuted (cluster seconds since the start):"
    assert not world_not_started(ran + "\n" + setup)
    assert not world_not_started("1 failed: AssertionError: something else")


def test_what_a_world_left_running_is_killed_by_its_directory(tmp_path: Path) -> None:
    mine = tmp_path / "seed-1"
    mine.mkdir()
    other = tmp_path / "seed-10"
    other.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(d / "x")])
             for d in (mine, other)]
    try:
        assert kill_leftovers(mine) == 1
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
        assert procs[1].poll() is None  # another seed's directory only shares a prefix
    finally:
        for p in procs:
            p.kill()
            p.wait()
