"""Worlds whose nodes have no watchdog-capable agent but a BMC: the real fence_ipmilan and
fence_redfish from Debian's fence-agents power a dead node off through its emulated BMC,
the out-of-service taint follows on that proof alone, and the StatefulSet recovers. A
wrong password, an unreachable BMC and a machine that powers itself on again end with
a person asked, no taint; an unreachable BMC shows in the metric the alert reads."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from harness.bmc import bmc_inventory
from harness.waits import running_on, wait_running
from harness.world import World, nodewarden_world
from sim.bmc.fleet import BmcOptions
from sim.world.nodes import Power

SCALE = 0.05
PASSWORD = "bmc-pw-0123"  # IPMI passwords are at most 20 bytes
pytestmark = pytest.mark.skipif(not (shutil.which("fence_ipmilan") and shutil.which("fence_redfish")),
                                reason="Debian's fence-agents package is not installed (make debs)")


def unknown(w: World, node: str) -> None:
    c = w.cluster
    c.wait_for(lambda: c.get("nodes", node)["status"]["conditions"][-1]["status"] == "Unknown", 15,
               message=f"{node} Ready=Unknown")


def no_secrets(w: World) -> None:
    """The password is nowhere the controller writes: status, Events, its log."""
    everything = str([w.remediation(n) for n in w.cluster.nodes])
    everything += str(w.cluster.list("events", group="events.k8s.io"))
    everything += "".join(p.read_text(errors="replace") for p in w.tmp.glob("controller-*.log"))
    assert PASSWORD not in everything


def metric(w: World, name: str, labels: dict[str, str]) -> float | None:
    try:
        text = requests.get(f"http://{next(iter(w.controller_metrics.values()))}/metrics", timeout=5).text
    except requests.RequestException:
        return None  # the controller is still starting
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


@pytest.mark.parametrize("agent", ["fence_ipmilan", "fence_redfish"])
def test_a_dead_node_without_a_watchdog_is_fenced_by_its_bmc_and_its_statefulset_recovers(
        tmp_path: Path, agent: str) -> None:
    with nodewarden_world(tmp_path, nodes=4, time_scale=SCALE, agent_nodes=[],
                          bmcs=BmcOptions(users={"admin": PASSWORD}),
                          fence_inventory=bmc_inventory(agent, PASSWORD)) as w:
        c = w.cluster
        assert c.bmcs is not None
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)["db-0"]
        c.fault("kubelet-stop", victim)  # dead to Kubernetes, but the machine still runs db-0
        unknown(w, victim)
        assert c.nodes[victim].power is Power.RUNNING and c.node_state(victim)["runningPods"]
        assert w.alert(victim).status_code == 200
        rem = w.wait_phase(victim, "AwaitingNodeReady", timeout=60)
        evidence = rem["status"]["fence"]["evidence"]
        assert evidence["rule"] == "BmcPowerOffConfirmed", evidence
        assert evidence["inputs"]["agent"] == agent and evidence["inputs"]["outcome"] == "PoweredOff"
        assert c.nodes[victim].power is Power.OFF  # the real agent powered the machine off
        assert any(e.kind == "node-power" and e.node == victim and "BMC" in e.detail for e in c.timeline.events())
        assert w.has_taint(victim)
        c.wait_for(lambda: running_on(c, "db-0") not in (None, victim), 30, message="db-0 moved")
        assert c.invariants()["violations"] == []
        no_secrets(w)


def test_a_wrong_password_asks_a_person_naming_the_refusal(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=3, time_scale=SCALE, agent_nodes=[], workloads=(),
                          bmcs=BmcOptions(users={"admin": PASSWORD}),
                          fence_inventory=bmc_inventory("fence_ipmilan", "wrong-pw-0123")) as w:
        c = w.cluster
        c.fault("kubelet-stop", "node-1")
        unknown(w, "node-1")
        assert w.alert("node-1").status_code == 200
        rem = w.wait_phase("node-1", "AwaitingApproval", timeout=60)
        escalation = rem["status"]["escalation"]
        assert escalation["cause"] == "FenceAgentCredentialsRefused", escalation
        assert escalation["outcome"] == "CredentialsRefused"
        assert any(h.get("reason") == "FenceAgentCredentialsRefused" for h in rem["status"].get("history", []))
        assert "REFUSED" in escalation["causeMessage"]
        time.sleep(2)
        assert not w.has_taint("node-1") and c.nodes["node-1"].power is Power.RUNNING
        assert w.phase("node-1") == "AwaitingApproval"
        events = [e for e in c.list("events", "default", group="events.k8s.io")
                  if e.get("reason") == "FenceAgentCredentialsRefused"]
        assert events, "a Warning Event names the refusal"
        assert (metric(w, "nodewarden_controller_fence_agent_unusable_nodes", {"result": "CredentialsRefused"})
                or 0) >= 1
        no_secrets(w)


def test_a_machine_that_powers_itself_on_again_is_not_tainted(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=3, time_scale=SCALE, agent_nodes=[], workloads=(),
                          bmcs=BmcOptions(users={"admin": PASSWORD}),
                          fence_inventory=bmc_inventory("fence_redfish", PASSWORD, retries=0)) as w:
        c = w.cluster
        assert c.bmcs is not None
        c.bmcs.powers_on_again.add("node-1")
        c.fault("kubelet-stop", "node-1")
        unknown(w, "node-1")
        assert w.alert("node-1").status_code == 200
        rem = w.wait_phase("node-1", "AwaitingApproval", timeout=60)
        assert rem["status"]["escalation"]["cause"] == "FenceAgentPowerOffDidNotHold", rem["status"]["escalation"]
        assert not w.has_taint("node-1")


def test_an_unreachable_bmc_raises_the_alert_metric_and_is_not_trusted(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=3, time_scale=SCALE, agent_nodes=[], workloads=(),
                          bmcs=BmcOptions(users={"admin": PASSWORD}),
                          fence_inventory=bmc_inventory("fence_ipmilan", PASSWORD, timeout="30s", retries=1,
                                                        retry_interval="0.2s")) as w:
        c = w.cluster
        assert c.bmcs is not None
        c.wait_for(lambda: metric(w, "nodewarden_controller_fence_agent_checks_total", {"result": "On"}), 120,
                   message="the first status checks (the controller starts slowly on a loaded machine)")
        c.bmcs.set_reachable("node-2", False)
        c.wait_for(lambda: metric(w, "nodewarden_controller_fence_agent_unusable_nodes",
                                  {"result": "Unreachable"}) == 1, 120, message="node-2's BMC reported unreachable")
        c.fault("kubelet-stop", "node-2")
        unknown(w, "node-2")
        assert w.alert("node-2").status_code == 200
        rem = w.wait_phase("node-2", "AwaitingApproval", timeout=90)
        assert rem["status"]["escalation"]["cause"] in ("FenceAgentBmcUnreachable", "FenceAgentTimedOut")
        assert not w.has_taint("node-2") and c.nodes["node-2"].power is Power.RUNNING
        c.bmcs.set_reachable("node-2", True)
        c.wait_for(lambda: metric(w, "nodewarden_controller_fence_agent_unusable_nodes",
                                  {"result": "Unreachable"}) == 0, 120, message="the metric clears")
