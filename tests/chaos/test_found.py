"""What the chaos suite found, each minimized to the smallest world and steps that show
it, kept as scenarios of their own (docs/results.md, "The chaos suite", lists them).

A scenario whose fix has not landed yet is marked `xfail(strict=True, raises=Unsafe)` with
the issue that fixes it: once the fix lands it passes, strict turns that into a failure,
and the mark is to be removed (the three adversary scenarios below have had theirs
removed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.fence_order import generate_private_key, private_key_pem
from harness.waits import ready, wait_running
from harness.world import nodewarden_world
from tests.chaos.adversary import AGENT_SLOW_CONNECTIONS, SlowClients, forge_status, parse_address

SCALE = 0.05
# The 7-agent worlds below run at a gentler scale: at 0.05 an agent's API check times out
# after 0.25 s and a peer's answer after 0.05 s, shorter than a loaded 2-core machine can
# schedule eight Python processes, and every agent then sees a slow API server and silent
# peers that a real cluster (5 s and 1 s) would not show. The decisions under test depend
# on the ratios of the timings, which every scale keeps.
WIDE_SCALE = 0.2


def test_a_kubelet_back_just_after_the_fence_order_is_no_fence_not_observed(tmp_path: Path) -> None:
    """Seed 4: a kubelet stopped long enough for the alert, then started again right after
    the controller stored the fence order. The agent fenced (it reaches the API), the kubelet
    posted Ready on the old boot, then the watchdog reset the machine. Kubernetes keeps that
    Ready=True for a grace period after the last heartbeat, and the controller took it for a
    node that survived its fence: Failed/FenceNotObserved, the taint left on the node for
    good (stale-taint once it came back). Fixed in controller/machine.py: Ready on
    the fenced boot counts only with a kubelet Lease renewed after the node must have died."""
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, workloads=("db=statefulset:3",)) as w:
        c = w.cluster
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)["db-0"]
        c.fault("kubelet-stop", victim)
        c.wait_for(lambda: ready(c, victim) == "Unknown", 15, message=f"{victim} Ready=Unknown")
        assert w.alert(victim).status_code == 200
        w.wait_phase(victim, "Fencing", timeout=30)
        c.fault("kubelet-start", victim)
        rem = w.wait_phase(victim, "Succeeded", "Failed", timeout=60)
        assert (rem["status"]["phase"], rem["status"]["reason"]) in (
            ("Succeeded", "NodeReturned"), ("Succeeded", "NodeRebooted")), rem["status"]
        c.wait_for(lambda: not w.has_taint(victim), 10, message="the taint removed")
        assert c.node_state(victim)["resets"] == 1
        report = c.invariants()
        assert report["violations"] == [], report


def test_an_api_outage_with_one_node_cut_off_from_its_peers_fences_only_that_node(tmp_path: Path) -> None:
    """Seeds 1, 3, 10, 13: during an API outage, with one node cut off from its peers
    (packets dropped), every agent fenced with NoQuorum ("2 peer(s) answered, none reaches
    the API, 2 of 6 is no majority") and the whole cluster was reset. Only the cut-off node
    may fence: it reaches neither the API nor its peers. The silent peer held every batch
    it was in for the whole peer timeout while the other answers aged past the isolation
    timeout. Fixed in node_agent/peers.py: a batch is waited on for one loop tick at
    most, a late answer counts when it arrives, and a peer is not asked again while its
    request runs."""
    with nodewarden_world(tmp_path, nodes=7, time_scale=WIDE_SCALE, workloads=(), webhook=False, controllers=0) as w:
        c = w.cluster
        t0 = c.clock()
        c.fault("partition", "node-7", from_="peers")
        c.fault("api-outage", duration_s=100.0)
        time.sleep(100 * WIDE_SCALE + 2.0)
        fired = sorted({e.node for e in c.timeline.events(kind="watchdog-fired", since=t0)})
        assert fired in ([], ["node-7"]), f"reset: {fired}"


# In make test's budget the same claim is covered by tests/node_agent/test_agent_loop.py
# (which reproduces the race every time, where this world does not); `make test-extended`
# runs this world too.
@pytest.mark.extended
def test_a_node_cut_off_from_the_api_survives_a_control_plane_outage(tmp_path: Path) -> None:
    """Seed 37: a node cut off from the API (not from its peers) ran on their word with its
    isolation question open for minutes. When the API server then went down, the first
    peers to answer said "cannot reach the API" too, no majority yet, and the long-open
    question made that an immediate NoQuorum fence. Nothing was wrong with the node.
    Fixed in node_agent/isolation.py: the time is up only once the answers the last Run
    rested on are an isolation timeout old. Whether the first batch after the onset finds
    the other answers already expired is a race, so this world does not reproduce the bug
    every time; tests/node_agent/test_agent_loop.py does (`...gets_time_to_hear_its_peers`).
    Here the whole scenario runs with real agents."""
    with nodewarden_world(tmp_path, nodes=7, time_scale=WIDE_SCALE, workloads=(), webhook=False, controllers=0) as w:
        c = w.cluster
        c.fault("partition", "node-7", from_="api")
        time.sleep(60 * WIDE_SCALE + 2.0)  # the question has been open far longer than the isolation timeout
        t0 = c.clock()
        assert c.timeline.events(kind="watchdog-fired") == []
        c.fault("api-outage", duration_s=100.0)
        time.sleep(100 * WIDE_SCALE + 2.0)
        fired = sorted({e.node for e in c.timeline.events(kind="watchdog-fired", since=t0)})
        assert fired == [], f"reset: {fired}"


# -- found by the adversaries (issue 16) on the code before the fixes of issues 13 and 14 ----

FENCED_OR_LATER = ("Fenced", "Recovering", "AwaitingNodeReady", "Succeeded")


class Unsafe(AssertionError):
    """The safety claim under test broke. The xfail marks below expect this and nothing
    else: a scenario whose preconditions fail (a world that did not start, a node reset
    by an overloaded machine) fails as itself instead of passing as the known bug."""


def claim(condition: object, message: object) -> None:
    if not condition:
        raise Unsafe(str(message))


# In make test's budget the same claim is covered by tests/controller/integration/test_trust.py; `make test-extended`
# runs this world too.
@pytest.mark.extended
def test_another_node_s_credential_forging_an_agent_report_gets_no_taint(tmp_path: Path) -> None:
    """Adversary seeds (docs/results.md): a node's agent stopped (it withdrew its
    capability and disarmed its watchdog) and its kubelet stopped, so its containers run
    on and the controller, with no agent to count on, escalates to a person. Another
    node's agent credential then writes `agentReport.lastFeedAt` = the node's kubelet
    Lease renewTime with its bootId: the controller proved AcknowledgedWatchdog at once
    and tainted a running node (invariant unsafe-taint, then at-most-one for db-0).
    Fixed (issue 13) twice over: the admission policy nodewarden-agent-writes refuses the
    write, and the controller would not count such a report unless that policy exists
    (tests/controller/integration/test_trust.py forges it where the policy is absent)."""
    with nodewarden_world(tmp_path, nodes=5, time_scale=WIDE_SCALE, workloads=("db=statefulset:3",)) as w:
        c = w.cluster
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)["db-0"]
        attacker = next(n for n in c.nodes if n != victim)
        c.processes[victim].terminate()  # cleanly: not self-fence capable, watchdog disarmed
        c.fault("kubelet-stop", victim)
        c.wait_for(lambda: ready(c, victim) == "Unknown", 60, message=f"{victim} Ready=Unknown")
        assert w.alert(victim).status_code == 200
        note = forge_status(c, victim, attacker, "agent-report", time.time() + 120, w.remediation)
        assert "HTTP 403" in note, note  # refused by the admission policy nodewarden-agent-writes
        time.sleep(60 * WIDE_SCALE)  # far longer than the controller needs to act on it
        status = (w.remediation(victim) or {}).get("status") or {}
        assert c.node_state(victim)["resets"] == 0  # the machine runs on: nothing may count it fenced
        claim(not w.has_taint(victim), status)
        claim(status.get("phase") not in FENCED_OR_LATER, status)
        claim(c.invariants()["violations"] == [], c.invariants()["violations"])


# In make test's budget the same claim is covered by tests/controller/integration/test_trust.py; `make test-extended`
# runs this world too.
@pytest.mark.extended
def test_an_order_the_agent_refuses_is_not_counted_as_a_fence(tmp_path: Path) -> None:
    """Adversary seeds with `untrusted-key` (docs/results.md): the controller signs with a
    key the agents do not trust (a rotation that did not reach them) and a node is cut off
    from the API only. Its agent refuses the order (Rejected/BadSignature) and stays up,
    its peers answering that they reach the API; the controller recorded the refusal, yet
    proved the fence by AgentHeartbeatStale and tainted the running node. Fixed (issue 13):
    a refused order escalates (OrderRefused) and is never proven by the heartbeat; the
    agent no longer counts peers relaying the order it refused as support, so, still cut
    off, it fences itself within its bound (row 16a) - a reset is now expected, a taint
    is not."""
    untrusted = tmp_path / "untrusted-signing.pem"
    untrusted.parent.mkdir(parents=True, exist_ok=True)
    untrusted.write_bytes(private_key_pem(generate_private_key()))
    with nodewarden_world(tmp_path / "w", nodes=5, time_scale=WIDE_SCALE, workloads=("db=statefulset:3",),
                          controllers=0) as w:
        c = w.cluster
        w.start_controller("rotated", SIGNING_KEY_FILE=str(untrusted))
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)["db-0"]
        c.fault("partition", victim, from_="api")
        c.wait_for(lambda: ready(c, victim) == "Unknown", 60, message=f"{victim} Ready=Unknown")
        assert w.alert(victim).status_code == 200

        def answer() -> str:
            status = (w.remediation(victim) or {}).get("status") or {}
            return str(((status.get("fence") or {}).get("lastAnswer") or {}).get("outcome") or "")

        c.wait_for(lambda: answer() == "Rejected", 60, message="the agent's refusal of the order")
        time.sleep(150 * WIDE_SCALE)  # past every evidence deadline (D + 2W + margin from the order)
        status = (w.remediation(victim) or {}).get("status") or {}
        claim(not w.has_taint(victim), status)
        escalation = status.get("escalation") or {}
        claim("OrderRefused" in (str(status.get("reason")), str(escalation.get("cause"))), status)
        claim(status.get("phase") not in FENCED_OR_LATER, status)
        claim(c.invariants()["violations"] == [], c.invariants()["violations"])


# In make test's budget the same claim is covered by tests/controller/test_machine.py; `make test-extended`
# runs this world too.
@pytest.mark.extended
def test_a_node_back_on_its_boot_after_a_refused_order_ends_its_remediation_and_keeps_no_order(
        tmp_path: Path) -> None:
    """Seed 138: the controller signed with a key the agents did not trust; the agent
    refused the order, the controller turned to a person, and the kubelet came back on the
    same boot. The remediation stayed AwaitingApproval with its signed order in the status
    for as long as the order was valid (30 min), asking a person to confirm that a running
    node was off. Fixed: it ends Cancelled/NodeRecovered and the order is withdrawn."""
    untrusted = tmp_path / "untrusted-signing.pem"
    untrusted.parent.mkdir(parents=True, exist_ok=True)
    untrusted.write_bytes(private_key_pem(generate_private_key()))
    with nodewarden_world(tmp_path / "w", nodes=5, time_scale=WIDE_SCALE, workloads=("db=statefulset:3",),
                          controllers=0) as w:
        c = w.cluster
        w.start_controller("rotated", SIGNING_KEY_FILE=str(untrusted))
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)["db-0"]
        c.fault("kubelet-stop", victim)
        c.wait_for(lambda: ready(c, victim) == "Unknown", 60, message=f"{victim} Ready=Unknown")
        assert w.alert(victim).status_code == 200
        w.wait_phase(victim, "AwaitingApproval", timeout=60)
        c.fault("kubelet-start", victim)
        rem = w.wait_phase(victim, "Cancelled", "Succeeded", "Failed", timeout=60)
        status = rem.get("status") or {}
        assert (status.get("phase"), status.get("reason")) == ("Cancelled", "NodeRecovered"), status
        assert "order" not in (status.get("fence") or {}), status
        assert c.node_state(victim)["resets"] == 0
        claim(not w.has_taint(victim), status)
        claim(c.invariants()["violations"] == [], c.invariants()["violations"])


# In make test's budget the same claim is covered by tests/chaos/test_held_ports.py; `make test-extended`
# runs this world too.
@pytest.mark.extended
def test_slow_clients_on_every_agent_s_peer_port_during_an_api_outage_reset_nothing(tmp_path: Path) -> None:
    """Adversary seeds with `slow-clients --at agents` over an API outage (docs/results.md):
    40 connections per agent, each declaring a 16,000-byte body and sending a byte every
    2 s, hold every request slot. The outage alone leaves the agents in ControlPlaneOutage;
    with the hold, no peer answers, each agent decides it is isolated, and every node's
    watchdog fires (no fence order, no fault cutting any node off). Fixed (issue 14): the
    agent authenticates from the headers, holds strangers' connections off its pool and
    answers its peers and its probes whatever they send."""
    with nodewarden_world(tmp_path, nodes=5, time_scale=WIDE_SCALE, workloads=(), webhook=False,
                          controllers=0) as w:
        c = w.cluster
        attack = SlowClients([parse_address(n.address) for n in c.nodes.values()], AGENT_SLOW_CONNECTIONS).start()
        try:
            time.sleep(3.0)  # the connections are open and holding
            t0 = c.clock()
            c.fault("api-outage", duration_s=60.0)
            time.sleep(60 * WIDE_SCALE + 3.0)
        finally:
            attack.stop()
        fired = sorted({e.node for e in c.timeline.events(kind="watchdog-fired", since=t0)})
        claim(fired == [], f"reset: {fired}")


def test_a_node_reset_while_cut_off_and_back_after_its_fence_order_never_starts_its_old_pods(
        tmp_path: Path) -> None:
    """Seed 116: a group of nodes cut off from the API and from the rest fenced themselves,
    as they must, and rebooted while still cut off; when the partition healed, a kubelet
    read its pods from the API and started the old StatefulSet pod, and 1-2 s later the
    controller's sound proof (the old boot is dead) led to the out-of-service taint, which
    lets the replacement start elsewhere (invariant unsafe-taint). Here the alert comes
    once the machine is back on a new boot, still cut off, so the proof is due at once, and
    the partition heals right after the proof. Fixed: the fencing taint
    (nodewarden.io/fencing:NoExecute) goes on at the proof, a returning kubelet refuses
    the old pods at admission, and recovery waits until the taint has settled."""
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, workloads=("db=statefulset:3",)) as w:
        c = w.cluster
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)["db-0"]
        old = (c.get("pods", "db-0", "default") or {})["metadata"]["uid"]
        c.fault("partition", victim, from_="all")
        c.wait_for(lambda: c.timeline.first("node-booted", node=victim) is not None and
                   c.node_state(victim)["resets"] >= 1 and c.node_state(victim)["power"] == "Running",
                   60, message=f"{victim} reset by its own watchdog and booted again, still cut off")
        # On a loaded machine the machine can be back before the node lifecycle controller
        # has marked the node Unknown, and the webhook then refuses the alert (NodeReady).
        c.wait_for(lambda: ready(c, victim) == "Unknown", 15, message=f"{victim} Ready=Unknown")
        back_at = c.clock()
        assert w.alert(victim).status_code == 200
        assert w.remediation(victim) is not None, "the alert was accepted"

        def fencing_taint() -> bool:
            node = c.get("nodes", victim) or {}
            return any(t.get("key") == "nodewarden.io/fencing" for t in (node.get("spec") or {}).get("taints") or [])

        try:
            c.wait_for(fencing_taint, 30, message="the fencing taint, put on at the proof")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; remediation status {(w.remediation(victim) or {}).get('status')}") from exc
        assert not w.has_taint(victim)  # the out-of-service taint waits for the fencing taint to settle
        c.fault("heal", victim)
        w.wait_phase(victim, "Succeeded", "Failed", timeout=60)
        c.wait_for(lambda: c.get("pods", "db-0", "default") is not None and
                   (c.get("pods", "db-0", "default") or {}).get("status", {}).get("phase") == "Running", 60,
                   message="db-0 Running again")
        started = [e for e in c.timeline.events(since=back_at, kind="pod-started", node=victim)
                   if (e.data or {}).get("uid") == old]
        assert started == [], f"the old db-0 started again on {victim}'s new boot: {started}"
        c.wait_for(lambda: not fencing_taint(), 30, message="the fencing taint removed once nothing needs it")
        report = c.invariants()
        assert report["violations"] == [], report
