"""The chaos run's report: the schedule as run, the recovery bound, each StatefulSet pod's
recovery, the remediations' transitions and Alertmanager's deliveries, written beside the
world's logs with the schedule (replayable) and the simulator's timeline. A mixin of the
runner (tests/chaos/runner.py).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from tests.chaos.judge import Judge
from tests.chaos.schedule import Step

if TYPE_CHECKING:
    from tests.chaos.alerts import Alertmanager


def reproduce_command(seed: int | None, schedule_file: Path | None = None, attacks: bool = True,
                      reintroduce: str = "") -> str:
    bug = f" --chaos-reintroduce={reintroduce}" if reintroduce else ""
    if schedule_file is not None:
        return f".venv/bin/python -m pytest tests/chaos --chaos-schedule={schedule_file} -x{bug}"
    return (f".venv/bin/python -m pytest tests/chaos --chaos-seeds=1 --chaos-first-seed={seed} -x"
            + ("" if attacks else " --chaos-no-attacks") + bug)


class Report(Judge):
    executed: list[tuple[float, Step, str]]
    settled_at: float
    load: list[float]
    am: Alertmanager
    _lock: threading.Lock

    def report(self, findings: list[str]) -> str:
        lines = [self.schedule.describe(), "", "executed (cluster seconds since the start):"]
        with self._lock:
            executed = sorted(self.executed, key=lambda e: e[0])
        for at, step, text in executed:
            lines.append(f"  t={self.ct(at):7.1f}s  {step.describe().split('s  ', 1)[1]}" + (f"  -- {text}" if text else ""))
        if self.settled_at:
            lines.append(f"settled at t={self.ct(self.settled_at):.1f}s")
        bound = self.bound()
        lines += ["", f"recovery bound {sum(bound.values()):.0f} cluster seconds:"]
        lines += [f"  {v:6.1f}  {k}" for k, v in bound.items()]
        lines += ["", "StatefulSet pods of dead nodes:"]
        for r in self.recoveries:
            took = f"ran on {r.moved_to} after {(r.moved_at - r.died_at) / self.scale:.0f}s" if r.moved_at else "never moved"
            verdict = ("ok" if r.ok() else "LATE") if r.checked else "not checked (node back before the bound, or escalated)"
            attacked = (f"; under {r.attacked}: {r.delay_s(self.scale):.0f}s later than the un-attacked bound"
                        if r.attacked else "")
            lines.append(f"  {r.pod} on {r.incident.node} ({r.incident.kind} t={self.ct(r.died_at):.1f}s): {took}; "
                         f"bound {r.bound_s:.0f}s -> {verdict}{attacked}{r.note}")
        lines += ["", "remediations:"]
        lines += [f"  t={self.ct(t.at):7.1f}s  {t.node} {t.uid[:8]} {t.phase}/{t.reason}" + (f" order {t.order}" if t.order else "")
                  for t in self.transitions]
        counts = Counter(f"{d.status}:{d.outcome or d.error or d.code}" for d in self.am.deliveries)
        lines += ["", "Alertmanager deliveries: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))]
        lines += ["  " + d.line(self.t0, self.scale) for d in self.am.deliveries]
        if findings:
            lines += ["", "FINDINGS:"] + [f"  - {f}" for f in findings]
        if self.overloaded():
            lines += ["", self.overloaded()]
        return "\n".join(lines)

    def overloaded(self) -> str:
        """A warning when the machine was oversubscribed during the run: the world's
        timings are scaled 10x down, so a starved agent misses its API checks and peer
        answers and may fence for real (a finding about the machine, not the product)."""
        cores = os.cpu_count() or 1
        peak = max(self.load, default=0.0)
        if peak <= 4 * cores:
            return ""
        return (f"WARNING: the load average reached {peak:.0f} on {cores} cores during this run (other work on "
                "the machine); timing findings may come from starved processes: run the seed again on a quiet "
                "machine before trusting them")

    def save(self, findings: list[str]) -> None:
        self.schedule.save(self.out / "chaos-schedule.json")
        (self.out / "chaos-report.txt").write_text(self.report(findings) + "\n")
        events = self.c.timeline.events()
        (self.out / "chaos-timeline.txt").write_text("\n".join(
            f"t={self.ct(e.at):8.1f}s {e.kind:18} {e.node:8} {e.object:40} {e.detail} "
            f"{json.dumps(e.data) if e.data else ''}".rstrip() for e in events) + "\n")
