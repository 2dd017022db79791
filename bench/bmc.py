"""BMC fence vs watchdog: power-off -> the StatefulSet's replacement pod Running on
another node, at Kubernetes' default timings (scaled in the run, reported scaled back),
the two fencing paths side by side in one run:

- watchdog: every node runs nodewarden's agent with its watchdog; the dead node's fence
  is proven by the AgentHeartbeatStale rule (its deadline: detection + 2 x watchdog +
  margin after the last heartbeat);
- BMC: no node has a watchdog-capable agent; each has an emulated IPMI BMC in the
  policy's fence inventory, and the real fence_ipmilan powers the dead node off; the
  confirmed power-off (BmcPowerOffConfirmed) is proof at once.

The fence agent's own runs (fence_ipmilan off, then status) take real seconds against
the emulated BMC, as against a real one; they are counted as such, not scaled back up
with the rest (`fence_agent_wall_s` in each BMC trial). Both trigger the remediation the same way (an Alertmanager notification as soon as the
node is Ready=Unknown), so the difference is the fencing path. Every trial also records
the fence evidence's rule and the invariant monitor's violations (target: none).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core.clock import parse_rfc3339
from harness.bmc import bmc_inventory
from harness.waits import OOS, ready, running_on, wait_running
from harness.world import nodewarden_world
from sim.bmc.fleet import BmcOptions

from .common import write_result

SCALE = float(os.environ.get("BENCH_BMC_SCALE", "0.1"))
TRIALS = int(os.environ.get("BENCH_BMC_TRIALS", "2"))
PASSWORD = "bench-bmc-pw"


def trial(tmp: Path, path: str, index: int) -> dict[str, Any]:
    bmc = path == "bmc"
    options: dict[str, Any] = {"agent_nodes": [], "bmcs": BmcOptions(users={"admin": PASSWORD}),
                               "fence_inventory": bmc_inventory("fence_ipmilan", PASSWORD)} if bmc else {}
    with nodewarden_world(tmp / f"{path}-{index}", nodes=5, time_scale=SCALE, workloads=["db=statefulset:3"],
                          **options) as w:
        c = w.cluster
        pod = f"db-{index % 3}"
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)[pod]
        t0 = time.time()
        c.fault("power-off", victim)
        c.wait_for(lambda: ready(c, victim) == "Unknown", 300, message="Ready=Unknown")
        alerted = time.time()
        w.alert(victim)
        deadline = time.monotonic() + 900 * SCALE + 60
        while time.monotonic() < deadline and running_on(c, pod) in (None, victim):
            time.sleep(0.05)
        started = c.timeline.first("pod-started", since=t0, obj=f"default/{pod}")
        moved = running_on(c, pod) not in (None, victim)
        taint = next((e for e in c.timeline.events(since=t0, kind="taint-added", node=victim)
                      if e.data.get("key") == OOS["key"]), None)
        status = (w.remediation(victim) or {}).get("status") or {}
        evidence = (status.get("fence") or {}).get("evidence") or {}

        escalation = status.get("escalation") or {}
        began, ended = parse_rfc3339(escalation.get("startedAt")), parse_rfc3339(escalation.get("finishedAt"))
        agent_s = (ended - began) if bmc and began and ended else 0.0  # wall time of the real agent runs

        def after(at: float | None) -> float | None:
            """Cluster seconds since the power-off: scaled time scaled back, except the fence
            agent's runs, which took real seconds (a real BMC takes them too)."""
            if at is None:
                return None
            agent_part = agent_s if ended is not None and at >= ended else 0.0
            return round((at - t0 - agent_part) / SCALE + agent_part, 1)

        return {"victim": victim, "recovered_s": after(started.at) if moved and started else None,
                "milestones_s": {"alert_sent": after(alerted), "taint_added": after(taint.at if taint else None)},
                "fence_agent_wall_s": round(agent_s, 2) if bmc else None,
                "evidence": evidence.get("rule"), "violations": c.invariants()["violations"]}


def _median(trials: list[dict[str, Any]]) -> float | None:
    times = [t["recovered_s"] for t in trials if t["recovered_s"] is not None]
    return statistics.median(times) if times and len(times) == len(trials) else None


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-bmc-") as tmp:
        base = Path(tmp)
        runs = {path: [trial(base, path, i) for i in range(TRIALS)] for path in ("watchdog", "bmc")}
    medians = {path: _median(trials) for path, trials in runs.items()}
    violations = sum(len(t["violations"]) for trials in runs.values() for t in trials)
    rules_ok = all(t["evidence"] == "BmcPowerOffConfirmed" for t in runs["bmc"])
    faster = medians["bmc"] is not None and medians["watchdog"] is not None and medians["bmc"] < medians["watchdog"]
    result = {
        "time_scale": SCALE, "trials_per_path": TRIALS, "watchdog": runs["watchdog"], "bmc": runs["bmc"],
        "watchdog_median_s": medians["watchdog"], "bmc_median_s": medians["bmc"],
        "bmc_saves_s": (medians["watchdog"] - medians["bmc"]) if faster else None,
        "violations": violations,
        "targets": {"bmc_faster_than_watchdog": "yes", "bmc_evidence_is_confirmed_power_off": "yes",
                    "violations": "0"},
        "met": {"bmc_faster_than_watchdog": faster, "bmc_evidence_is_confirmed_power_off": rules_ok,
                "violations": violations == 0},
    }
    write_result("bmc", result)
    return result
