"""The minimizer's command (tests/chaos/minimize.py) around its world runs, with the
runs replaced by a made-up bug (no world): what it writes, and that the scenario it
writes is a test that fails on the bug and passes without it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.chaos import minimize
from tests.chaos.judge import finding_kind, worst_kind
from tests.chaos.minimize import NOT_DONE
from tests.chaos.parallel import SeedResult
from tests.chaos.schedule import Schedule, generate
from tests.chaos.shrink import units

UNSAFE = ("invariant unsafe-taint at t=107.5s on node-2: node/node-2: out-of-service taint applied while the "
          "node could run pods (power=Running, kubelet=stopped)")


def _findings(schedule: Schedule) -> list[str]:
    """A made-up bug: a forged report on node-2 while its kubelet is stopped taints it;
    a leader kill always leaves a (different) finding."""
    out = []
    if {"kubelet-stop", "forge-status"} <= {s.action for s in schedule.steps if s.node == "node-2"}:
        out.append(UNSAFE)
    if any(s.action == "leader-kill" for s in schedule.steps):
        out.append("db-1 ran on node-3 when power-off began at t=1.0s; not running elsewhere by t=2.0s")
    return out


def test_finding_kinds_name_every_judge_finding() -> None:
    assert finding_kind(UNSAFE) == "invariant:unsafe-taint"
    assert finding_kind("invariant at-most-one at t=1.0s on node-2: default/db-1: x") == "invariant:at-most-one"
    assert finding_kind("node-3 reset by its watchdog at t=140.3s with no fence order for it since it booted "
                        "and no fault cutting it off") == "reset-without-cause"
    assert finding_kind("remediation of node-1 (uid 12345678) Failed/FenceNotObserved at t=3.0s") == "fence-not-observed"
    assert finding_kind("something new") == "other"
    assert worst_kind(["db-1 ran on node-3 ...; not running elsewhere by t=2.0s", UNSAFE]) == "invariant:unsafe-taint"
    assert worst_kind([]) == ""


def test_the_minimizer_writes_a_replayable_minimal_schedule_and_a_scenario(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    runs: list[Path] = []

    def run_schedule_file(path: Path, out: Path, reintroduce: str = "", label: int = 0) -> SeedResult:
        runs.append(path)
        assert reintroduce == "forged-report-trusted"
        found = _findings(Schedule.load(path))
        return SeedResult(label, not found, 90.0, 1.0, 2.0, 2, found, str(out))

    monkeypatch.setattr(minimize, "run_schedule_file", run_schedule_file)
    out = tmp_path / "min"
    assert minimize.main(["--seed", "19", "--reintroduce", "forged-report-trusted", "--out", str(out)]) == 0
    minimal = Schedule.load(out / "minimal.json")
    assert sorted(s.action for s in minimal.steps) == ["forge-status", "kubelet-start", "kubelet-stop"]
    assert len(units(generate(19))) >= 10 and len(units(minimal)) == 2
    assert (out / "smallest-so-far.json").exists() and "try 1 (the original)" in (out / "minimize.txt").read_text()
    assert len(runs) == len(list(out.glob("try-*"))) <= 40  # the confirming run included
    # The scenario: a test that fails while the bug is there and passes once it is gone.
    code = (out / "test_found_snippet.py").read_text()
    assert code in capsys.readouterr().out

    def scenario(bug: bool, happened: bool = True) -> Any:
        def run_schedule(schedule: Schedule, path: Path) -> tuple[Any, list[str]]:
            assert schedule.to_json() == minimal.to_json()  # the scenario runs exactly the minimal schedule
            forged = next(s for s in schedule.steps if s.action == "forge-status")
            note = "node-7's agent credential wrote agent-report in phase Fencing: HTTP 403" if happened \
                else "not written: no remediation (with an order) before the node came back"
            return SimpleNamespace(executed=[(0.0, forged, note)]), _findings(schedule) if bug else []

        namespace: dict[str, Any] = {"pytest": pytest, "Path": Path, "Schedule": Schedule, "NOT_DONE": NOT_DONE,
                                     "finding_kind": finding_kind, "run_schedule": run_schedule}
        exec(compile(code, "snippet", "exec"), namespace)
        (test,) = [v for k, v in namespace.items() if k.startswith("test_seed_19_minimized_invariant_unsafe_taint")]
        return lambda: test(tmp_path)

    with pytest.raises(AssertionError, match="unsafe-taint"):
        scenario(bug=True)()
    scenario(bug=False)()
    with pytest.raises(AssertionError, match="not written"):  # no forgery: no evidence that it is fixed
        scenario(bug=False, happened=False)()


def test_a_seed_that_does_not_fail_the_same_way_is_not_minimized(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minimize, "run_schedule_file", lambda path, out, reintroduce="", label=0: SeedResult(
        label, True, 1.0, 0.0, 0.0, 2, [], str(out)))
    assert minimize.main(["--seed", "19", "--out", str(tmp_path)]) == 1
    assert not (tmp_path / "minimal.json").exists()
