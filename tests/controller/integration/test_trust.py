"""Fencing that cannot be fooled (issue 13), each forgery tried in a real world: the
simulated cluster, real agent processes, the webhook, the controller. None may end in an
out-of-service taint on a node that still runs its workloads; each refusal is a Warning
Event and a metric that name it. The simulator's invariant monitor must report nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from core import names
from core.fence_order import generate_private_key, private_key_pem
from core.kube import load_kube
from harness.waits import ready, running_on, wait_running
from harness.world import World, nodewarden_world

SCALE = 0.05
# Past the AgentHeartbeatStale deadline the controller would have used without the checks
# (isolation-detect ~3 s + 2 x watchdog 1 s + margin, scaled), with room for a loaded machine.
PAST_EVERY_DEADLINE_S = 10.0


def unknown(w: World, node: str) -> None:
    w.cluster.wait_for(lambda: ready(w.cluster, node) == "Unknown", 20, message=f"{node} Ready=Unknown")


def no_violations(w: World) -> None:
    report = w.cluster.invariants()
    assert report["violations"] == [], report


def warning_reasons(w: World, node: str) -> set[str]:
    events = w.cluster.list("events", "default", "events.k8s.io")
    return {str(e.get("reason")) for e in events
            if e.get("type") == "Warning" and (e.get("regarding") or {}).get("name") == node}


def metric(w: World, name: str, **labels: str) -> float:
    total = 0.0
    for bind in w.controller_metrics.values():
        try:
            text = requests.get(f"http://{bind}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
    return total


def still_no_taint(w: World, node: str, seconds: float = PAST_EVERY_DEADLINE_S) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not w.has_taint(node), w.logs()
        time.sleep(0.1)


def escalated_on_refusal(w: World, node: str, agent_reason: str) -> dict[str, Any]:
    w.wait_phase(node, "AwaitingApproval", "Failed", timeout=60)

    def refused() -> dict[str, Any] | None:
        rem = w.remediation(node) or {}
        return rem if ((rem.get("status") or {}).get("escalation") or {}).get("cause") == "OrderRefused" else None

    try:
        rem = w.cluster.wait_for(refused, 30, message="the escalation naming the refused order")
    except TimeoutError:
        raise AssertionError(f"{(w.remediation(node) or {}).get('status')}\n{w.logs()}") from None
    status = rem["status"]
    escalation = status.get("escalation") or {}
    assert escalation.get("cause") == "OrderRefused", status
    assert agent_reason in escalation.get("causeMessage", ""), escalation
    assert agent_reason in status["fence"]["refusal"]["reason"], status["fence"]
    return rem


def test_agents_distrusting_the_key_escalate_with_the_refused_order(tmp_path: Path) -> None:
    """The key-rotation mistake: the controller signs with a key no agent trusts, and one
    node is cut off from the API only. Its peers relay the order; it refuses it."""
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, controllers=0) as w:
        (w.tmp / "signing.pem").write_bytes(private_key_pem(generate_private_key()))
        w.start_controller("controller-0")
        c = w.cluster
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=30)["db-0"]
        c.wait_for(lambda: w.leader() in w.controllers, 90, message="a leader")
        c.fault("partition", victim, from_="api")
        unknown(w, victim)
        assert w.alert(victim).status_code == 200
        escalated_on_refusal(w, victim, "BadSignature")
        still_no_taint(w, victim)
        assert w.phase(victim) == "AwaitingApproval"
        assert {"OrderRefused", "AgentDistrustsKey"} <= warning_reasons(w, victim)
        assert metric(w, "nodewarden_controller_evidence_refusals_total", reason="OrderRefused") >= 1
        # The refusing agent was not kept up by its peers relaying that order (row 16a).
        c.wait_for(lambda: c.timeline.first("watchdog-fired", victim), 30, message=f"{victim} fenced itself")
        no_violations(w)


def test_an_agent_clock_60s_behind_escalates_without_a_taint(tmp_path: Path) -> None:
    victim = "node-2"
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, agent_clock_offsets={victim: -60.0}) as w:
        c = w.cluster
        wait_running(c, ["db-0", "db-1", "db-2"], timeout=30)
        c.wait_for(lambda: w.leader() in w.controllers, 90, message="a leader")
        c.fault("partition", victim, from_="api")
        unknown(w, victim)
        assert w.alert(victim).status_code == 200
        # The agent cannot take the order: it refuses it (NotYetValid), or, as here where the
        # peer protocol's own replay window already turns the controller's requests away, never
        # hears it; either way the escalation names why, and no deadline on its clock is used.
        rem = w.wait_phase(victim, "AwaitingApproval", timeout=60)
        cause = rem["status"]["escalation"]
        assert cause["cause"] == "ClockSkewTooLarge" or (
            cause["cause"] == "OrderRefused" and "NotYetValid" in cause["causeMessage"]), cause
        still_no_taint(w, victim)
        assert w.phase(victim) == "AwaitingApproval"
        assert "ClockSkewTooLarge" in warning_reasons(w, victim)
        lease = c.get("leases", names.agent_lease_name(victim), "nodewarden", "coordination.k8s.io") or {}
        offset = float(lease["metadata"]["annotations"][names.ANN_CLOCK_OFFSET_S])
        assert offset == pytest.approx(60.0, abs=1.0)  # the API server is 60 s ahead of this agent
        no_violations(w)


def nodes_without_agent(victim: str) -> list[str]:
    return [f"node-{i}" for i in range(1, 6) if f"node-{i}" != victim]


def escalated_node_without_agent(w: World, victim: str) -> None:
    c = w.cluster
    c.wait_for(lambda: w.leader() in w.controllers, 90, message="a leader")
    c.fault("kubelet-stop", victim)  # its containers keep running: the danger
    unknown(w, victim)
    assert w.alert(victim).status_code == 200
    rem = w.wait_phase(victim, "AwaitingApproval", timeout=60)
    assert rem["status"]["escalation"]["cause"] == "NoAgent", rem["status"]


def test_another_nodes_agent_forging_a_report_gets_no_taint(tmp_path: Path) -> None:
    """Node A has no running agent and a stopped kubelet: the controller must escalate.
    Node B's agent credential writes A's agentReport as if A's agent had fenced."""
    victim = "node-3"
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, agent_nodes=nodes_without_agent(victim),
                          workloads=("db=statefulset:5",)) as w:
        c = w.cluster
        wait_running(c, [f"db-{i}" for i in range(5)], timeout=30)
        on_victim = [p for p in (f"db-{i}" for i in range(5)) if running_on(c, p) == victim]
        escalated_node_without_agent(w, victim)
        node_lease = c.get("leases", victim, names.NODE_LEASE_NAMESPACE, "coordination.k8s.io") or {}
        boot = c.node_state(victim)["bootId"]
        report = {"fenceStartedAt": node_lease["spec"]["renewTime"], "lastFeedAt": node_lease["spec"]["renewTime"],
                  "watchdogTimeoutSeconds": 1, "bootId": boot}
        other = load_kube(str(c.kubeconfig("agent:node-1")))
        try:
            other.custom.patch_cluster_custom_object_status(
                names.GROUP, names.VERSION, names.PLURAL, victim, {"status": {"agentReport": report}})
            written = True
        except ApiException as exc:  # an admission policy that restricts agents' writes refuses it
            assert exc.status in (403, 422), exc
            written = False
        still_no_taint(w, victim)
        assert w.phase(victim) == "AwaitingApproval"
        if written:
            assert "AgentWritesUnrestricted" in warning_reasons(w, victim)
            assert metric(w, "nodewarden_controller_evidence_refusals_total", reason="AgentWritesUnrestricted") >= 1
        for pod in on_victim:
            # Nothing was moved off a node that still runs it: the fencing taint that went on with
            # the order marked the pod for deletion (its stopped kubelet never finishes that),
            # but it is neither deleted nor replaced, and its containers still run there.
            obj = c.get("pods", pod, "default") or {}
            assert obj.get("spec", {}).get("nodeName") == victim, obj
            assert any(p.identity == f"default/{pod}" for p in c.nodes[victim].running.values())
        no_violations(w)


def test_a_hand_written_fenced_status_gets_no_taint(tmp_path: Path) -> None:
    victim = "node-3"
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, agent_nodes=nodes_without_agent(victim)) as w:
        c = w.cluster
        wait_running(c, ["db-0", "db-1", "db-2"], timeout=30)
        escalated_node_without_agent(w, victim)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        forged = {"phase": "Fenced", "reason": "FenceProven", "phaseSince": now,
                  "fence": {"evidence": {"rule": "AcknowledgedWatchdog", "satisfiedAt": now,
                                         "inputs": {"deadBy": now}}}}
        # The network-facing webhook may write status (no one else may: nodewarden-operator-writes).
        webhook = load_kube(str(c.kubeconfig("webhook")))
        webhook.custom.patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.PLURAL, victim, {"status": forged})
        c.wait_for(lambda: any(h.get("reason") == "ProofNotRederived"
                               for h in ((w.remediation(victim) or {}).get("status") or {}).get("history") or []),
                   30, message="the forged Fenced status refused")
        still_no_taint(w, victim)
        assert w.phase(victim) not in ("Fenced", "Recovering", "AwaitingNodeReady")
        assert "ProofNotRederived" in warning_reasons(w, victim)
        assert metric(w, "nodewarden_controller_evidence_refusals_total", reason="ProofNotRederived") >= 1
        no_violations(w)
