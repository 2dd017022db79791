"""The controller with real agents, the real webhook and the simulated cluster:
power-off -> fence proven -> out-of-service taint -> workloads move -> power-on -> taint
removed, with the invariant monitor watching."""

from __future__ import annotations

from pathlib import Path

from harness.waits import running_on, wait_running
from harness.world import nodewarden_world

SCALE = 0.05


def test_power_off_recovery_and_return(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE) as w:
        c = w.cluster
        placed = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)
        victim = placed["db-0"]
        boot = c.node_state(victim)["bootId"]
        t0 = c.clock()
        c.fault("power-off", victim)
        c.wait_for(lambda: c.get("nodes", victim)["status"]["conditions"][-1]["status"] == "Unknown", 10)
        response = w.alert(victim)
        assert response.status_code == 200, response.text
        rem = w.wait_phase(victim, "AwaitingNodeReady", timeout=60)
        evidence = rem["status"]["fence"]["evidence"]
        assert evidence["rule"] == "AgentHeartbeatStale", evidence
        assert w.has_taint(victim)
        c.wait_for(lambda: running_on(c, "db-0") not in (None, victim), 20, message="db-0 moved")
        moved_at = c.clock()
        # bring the node back: the taint goes once it is Ready with a new boot
        c.fault("power-on", victim)
        rem = w.wait_phase(victim, "Succeeded", timeout=60)
        assert rem["status"]["reason"] == "NodeReturned"
        assert not w.has_taint(victim)
        assert c.node_state(victim)["bootId"] != boot
        report = c.invariants()
        assert report["violations"] == [], report
        print(f"recovery took {(moved_at - t0) / SCALE:.0f} cluster seconds")
