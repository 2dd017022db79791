"""The remediation controller's targets, at Kubernetes' real timings (time scale 1; these
targets are a few seconds, which a scaled run could not resolve):

1. alert received -> out-of-service taint within 2 x watchdog timeout + 5 s when the agent
   acknowledges (a node cut off from the API only: its peers relay the order);
2. within 5 s after the evidence rule is met, for a node already dead when the alert
   arrives;
3. Ready with a new bootID -> taint removed within 5 s;
4. 50 simultaneous failures in a 5,000-node cluster handled in parallel: total at most
   1.2x a single one. Agents cannot run on thousands of simulated nodes here (one Python
   process each), and with agents on only a few, 50 silent ones would be a majority: the
   controller then rightly suspects a control-plane outage and stops counting on
   self-fencing. So the failed nodes run no agent and the policy escalates to a fence agent
   — a curl to the simulator's power-off endpoint, as fence_virsh powers off a VM — which
   takes every remediation through the same queue, workers, status writes, command runs and
   taints.
"""

from __future__ import annotations

import base64
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from controller.model import parse_time
from harness.waits import ready, wait_running
from harness.world import World, nodewarden_world

from .common import cpu_seconds, write_result

PARALLEL = int(os.environ.get("BENCH_CONTROLLER_PARALLEL", "50"))
BIG = int(os.environ.get("BENCH_CONTROLLER_NODES", "5000"))


def _status(w: World, node: str) -> dict[str, Any]:
    return (w.remediation(node) or {}).get("status") or {}


def _received(w: World, node: str) -> float:
    return parse_time(((w.remediation(node) or {}).get("spec") or {}).get("trigger", {}).get("receivedAt")) or 0.0


def _taint_at(w: World, node: str, since: float) -> float | None:
    for e in w.cluster.timeline.events(since=since, kind="taint-added", node=node):
        if "out-of-service" in e.detail:
            return e.at
    return None


def _unknown(w: World, node: str, timeout: float = 120) -> None:
    w.cluster.wait_for(lambda: ready(w.cluster, node) == "Unknown", timeout, message=f"{node} Unknown")


def acknowledged_and_dead(tmp: Path) -> dict[str, Any]:
    with nodewarden_world(tmp / "ack", nodes=5, time_scale=1.0, workloads=["db=statefulset:2"]) as w:
        c = w.cluster
        placed = wait_running(c, ["db-0", "db-1"], timeout=60)
        # 1. acknowledged: cut off from the API only
        cut = placed["db-0"]
        c.fault("partition", cut, from_="api")
        _unknown(w, cut)
        since = time.time()
        w.alert(cut)
        w.wait_phase(cut, "AwaitingNodeReady", "Failed", timeout=240)
        fence = _status(w, cut).get("fence") or {}
        watchdog = float((fence.get("acknowledgement") or {}).get("watchdogTimeoutSeconds") or 0)
        ack_taint = (_taint_at(w, cut, since) or 0) - _received(w, cut)
        # 2. dead before the alert: wait past its evidence deadline, then alert
        dead = placed["db-1"]
        t_off = time.time()
        c.fault("power-off", dead)
        ann = (c.get("nodes", dead) or {})["metadata"].get("annotations") or {}
        bound = float(ann["nodewarden.io/isolation-detect-seconds"]) + 2 * float(
            ann["nodewarden.io/watchdog-timeout-seconds"]) + 3.0  # margin 2 + skew 1
        lease = c.get("leases", f"nodewarden-agent-{dead}", "nodewarden", "coordination.k8s.io") or {}
        heartbeat = parse_time((lease.get("spec") or {}).get("renewTime")) or t_off
        _unknown(w, dead)
        time.sleep(max(0.0, heartbeat + bound + 2 - time.time()))
        since = time.time()
        w.alert(dead)
        w.wait_phase(dead, "AwaitingNodeReady", "Failed", timeout=120)
        evidence = (_status(w, dead).get("fence") or {}).get("evidence") or {}
        dead_taint = (_taint_at(w, dead, since) or 0) - _received(w, dead)
        # 3. the node returns with a new boot
        c.fault("power-on", dead)
        w.wait_phase(dead, "Succeeded", "Failed", timeout=120)
        back = next((e.at for e in c.timeline.events(since=since, kind="node-condition", node=dead)
                     if e.data.get("ready") == "True"), None)
        removed = next((e.at for e in c.timeline.events(since=since, kind="taint-removed", node=dead)
                        if "out-of-service" in e.detail), None)
        return {"acknowledged_alert_to_taint_s": ack_taint, "watchdog_timeout_s": watchdog,
                "acknowledged_target_s": 2 * watchdog + 5,
                "dead_alert_to_taint_s": dead_taint, "dead_evidence": evidence.get("rule"),
                "dead_counted_from": (evidence.get("inputs") or {}).get("countedFrom"),
                "ready_to_untaint_s": (removed - back) if back and removed else None,
                "violations": c.invariants()["violations"]}


def _fence_agent_script(tmp: Path, kubeconfig: Path) -> Path:
    """A fence agent for the simulated cluster: powers the node named by its argument off
    through the simulator's fault endpoint, with curl, as fence_virsh powers off a VM. Not
    `python -m sim fault`: a Python start-up costs 0.3 CPU-seconds, and fifty of them at once
    would measure this 2-core machine rather than the controller."""
    doc = yaml.safe_load(kubeconfig.read_text())
    server, token = doc["clusters"][0]["cluster"]["server"], doc["users"][0]["user"]["token"]
    ca = tmp / "sim-ca.pem"
    ca.write_bytes(base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]))
    script = tmp / "fence-agent.sh"
    script.write_text(
        "#!/bin/sh\n# usage: fence-agent.sh NODE - power NODE off in the simulated cluster\n"
        f"exec curl -sS --fail-with-body --max-time 30 --cacert {shlex.quote(str(ca))} "
        f"-H {shlex.quote('Authorization: Bearer ' + token)} -H 'Content-Type: application/json' "
        f"-d '{{\"action\":\"power-off\",\"node\":\"'\"$1\"'\"}}' {shlex.quote(server + '/sim/v1/faults')}\n")
    return script


def parallel(tmp: Path) -> dict[str, Any]:
    from harness.world import policy

    with nodewarden_world(tmp / "big", nodes=BIG, time_scale=1.0, workloads=(), agent_nodes=[],
                          remediation_policy=policy(escalation="FenceAgent")) as w:
        c = w.cluster
        command = f"sh {_fence_agent_script(tmp, c.kubeconfig('admin'))} {{node}}"
        for name in list(w.controllers):  # restart the controller with the fence agent configured
            w.kill_controller(name)
        w.start_controller("controller-fa", FENCE_AGENT_COMMAND=command)
        c.wait_for(lambda: w.leader() == "controller-fa", 60, message="the new leader")

        breakdown: dict[str, dict[str, Any]] = {}

        controller = w.controllers["controller-fa"].pid

        def fail(victims: list[str]) -> float:
            t0 = time.time()
            cpu0 = cpu_seconds(), cpu_seconds(controller, children=True)
            for v in victims:
                c.fault("power-off", v)
            for v in victims:
                _unknown(w, v, timeout=180)
            unknown_s = time.time() - t0
            for v in victims:
                w.alert(v)
            for v in victims:
                w.wait_phase(v, "AwaitingNodeReady", "Failed", timeout=600)
            taints = {v: (_taint_at(w, v, t0) or time.time()) for v in victims}
            cpu = cpu_seconds() - cpu0[0], cpu_seconds(controller, children=True) - cpu0[1]
            alert_to_taint = sorted(taints[v] - _received(w, v) for v in victims)
            slowest = max(victims, key=lambda v: taints[v])
            breakdown["single" if len(victims) == 1 else "parallel"] = {
                "all_unknown_s": unknown_s,
                "cpu_s": {"simulator_and_bench": round(cpu[0], 1), "controller_and_fence_agents": round(cpu[1], 1)},
                "alert_to_taint_median_s": alert_to_taint[len(alert_to_taint) // 2],
                "alert_to_taint_max_s": alert_to_taint[-1],
                "slowest": slowest,
                "slowest_history": [(h.get("reason"), round((parse_time(h.get("at")) or t0) - t0, 1))
                                    for h in _status(w, slowest).get("history") or []],
            }
            return max(taints.values()) - t0

        single = fail(["node-1"])
        many = fail([f"node-{i}" for i in range(2, PARALLEL + 2)])
        victims = ["node-1"] + [f"node-{i}" for i in range(2, PARALLEL + 2)]
        failed = [f"{v}: {(w.remediation(v) or {}).get('status', {}).get('reason')}"
                  for v in victims if w.phase(v) == "Failed"]
        rules = {str(((w.remediation(v) or {}).get("status", {}).get("fence") or {}).get("evidence", {}).get("rule"))
                 for v in victims}
        return {"nodes": BIG, "single_s": single, "parallel": PARALLEL, "parallel_s": many,
                "ratio": many / single, "breakdown": breakdown, "failed": failed, "evidence_rules": sorted(rules),
                "violations": c.invariants()["violations"]}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        first = acknowledged_and_dead(Path(tmp))
        second = parallel(Path(tmp))
    result = {**first, "parallel_run": second,
              "targets": {"acknowledged_alert_to_taint_s": "<= 2 x watchdog + 5",
                          "dead_alert_to_taint_s": "<= 5", "ready_to_untaint_s": "<= 5",
                          "parallel_ratio": "<= 1.2", "violations": "0"},
              "met": {"acknowledged_alert_to_taint_s": first["acknowledged_alert_to_taint_s"]
                      <= first["acknowledged_target_s"],
                      "dead_alert_to_taint_s": first["dead_alert_to_taint_s"] <= 5,
                      "ready_to_untaint_s": (first["ready_to_untaint_s"] or 99) <= 5,
                      "parallel_ratio": second["ratio"] <= 1.2 and not second["failed"],
                      "violations": not first["violations"] and not second["violations"]}}
    write_result("controller", result)
    return result
