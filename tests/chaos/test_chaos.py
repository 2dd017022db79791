"""The chaos suite: seeded random fault schedules on a 7-node world (real agents, the
webhook under gunicorn, two controller processes, the simulated cluster with its
invariant monitor), judged after each schedule.

Faults (tests/chaos/schedule.py): power-offs, reboots, partitions (API only, peers only,
everything), API-server outages, kubelet stops, agent crashes, SIGKILL of the controller
holding the Lease (a new one is started), and Alertmanager's misbehaviour: duplicate and
reordered notifications, a resolved notification mid-fence, late redeliveries. And
adversaries and mistakes: another node's agent credential forging a remediation's status,
controllers signing with a key the agents do not trust, an agent stopped cleanly, slow
clients and floods on the agents' peer ports and on the webhook.

Alerts are posted the way Alertmanager posts them (tests/chaos/alerts.py), for the nodes
that are down, rather than through the real Prometheus and Alertmanager: that chain is
tested end to end in tests/e2e/test_chain.py, and is too slow to start for many seeds
(and cannot be told to duplicate or reorder).

A failing seed prints its findings, the command that runs it again, its steps, and where
the world's logs are (the controllers', the webhook's, every agent's, the simulator's
timeline, the schedule as JSON, and a report of the run).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.chaos.reintroduce import reintroduced
from tests.chaos.runner import reproduce_command, run_schedule
from tests.chaos.schedule import ATTACK_ACTIONS, Schedule


# A schedule is about a minute of wall time; on a shared machine under heavy load a world
# takes minutes to start, settle and stop, past the suite's default 300 s.
@pytest.mark.timeout(900)
@pytest.mark.extended  # make chaos runs the schedules; make test-extended runs the default seed
def test_chaos_schedule(chaos_schedule: Schedule, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    name = f"seed-{chaos_schedule.seed}" if chaos_schedule.seed is not None else "schedule"
    out = tmp_path / name
    bug = request.config.getoption("chaos_reintroduce", default=None)
    with reintroduced(bug) if bug else nullcontext({}) as overrides:  # a fixed bug back, to test the tools
        runner, findings = run_schedule(chaos_schedule, out, controller_overrides=overrides or None)
    report = runner.report(findings)
    print(report)
    print("wall seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in runner.wall.items()))
    if findings:
        file = request.config.getoption("chaos_schedule", default=None)
        attacks = any(s.action in ATTACK_ACTIONS for s in chaos_schedule.steps)
        command = reproduce_command(chaos_schedule.seed, Path(file) if file else None, attacks, bug or "")
        pytest.fail("\n".join(
            [f"chaos {name} failed" + (f" (on purpose: the world carries the bug {bug})" if bug else "") + ":"] + [f"  - {f}" for f in findings]
            + ([runner.overloaded()] if runner.overloaded() else [])
            + ["", f"reproduce: {command}", f"logs, timeline and report: {out}", "", chaos_schedule.describe()]),
            pytrace=False)
