"""Time to recovery: power-off -> the StatefulSet's replacement pod Running on another
node, at Kubernetes' default timings (scaled in the run, reported scaled back), side by
side in one run:

- nodewarden with its shipped rules and defaults, through the real chain (Prometheus,
  Alertmanager, webhook, controller, agents);
- Kubernetes alone: nothing applies the out-of-service taint, the StatefulSet pod stays
  Terminating; reported as "not recovered within" the bound the run waited;
- medik8s' defaults, emulated on the same simulator: once the node has not been Ready
  for 300 s (Node Healthcheck Operator), wait the 180 s safe time (Self Node
  Remediation, up to 6 workers), then apply the out-of-service taint.

Target: nodewarden at least 4x faster than the medik8s emulation, with zero violations.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core.clock import parse_rfc3339
from harness.chain import alert_chain
from harness.waits import OOS, add_taint, ready, running_on, wait_running
from harness.world import AGENT_WATCHDOG_S, nodewarden_world
from sim.world.cluster import Cluster
from sim.world.timings import Timings

from .common import write_result

SCALE = float(os.environ.get("BENCH_RECOVERY_SCALE", "0.1"))
TRIALS = int(os.environ.get("BENCH_RECOVERY_TRIALS", "3"))
K8S_ALONE_BOUND_S = 900.0  # cluster seconds the Kubernetes-alone baseline waits
MEDIK8S_UNHEALTHY_S, MEDIK8S_SAFE_TIME_S = 300.0, 180.0


def _victim_recovery(cluster: Cluster, victim: str, pod: str, t0: float, limit_s: float) -> float | None:
    """Seconds (measured) from t0 until `pod` runs on a node other than `victim`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        node = running_on(cluster, pod)
        if node not in (None, victim):
            started = cluster.timeline.first("pod-started", since=t0, obj=f"default/{pod}")
            return (started.at if started else time.time()) - t0
        time.sleep(0.05)
    return None


def _milestones(cluster: Cluster, rem: dict[str, Any], victim: str, pod: str, t0: float) -> dict[str, float | None]:
    """Real-cluster seconds from the power-off to each step of the recovery: where the
    time goes (Kubernetes' detection, the alert rule and Alertmanager, nodewarden, the
    pod garbage collector, the StatefulSet and the kubelet)."""
    tl = cluster.timeline
    not_ready = next((e for e in tl.events(since=t0, kind="node-condition", node=victim)
                      if "Ready=True" not in e.detail), None)
    received = parse_rfc3339(((rem.get("spec") or {}).get("trigger") or {}).get("receivedAt"))
    taint = next((e for e in tl.events(since=t0, kind="taint-added", node=victim) if e.data.get("key") == OOS["key"]), None)
    deleted = tl.first("pod-force-deleted", obj=f"default/{pod}", since=t0)
    started = tl.first("pod-started", obj=f"default/{pod}", since=t0)

    def after(at: float | None) -> float | None:
        return None if at is None else round((at - t0) / SCALE, 1)

    return {"node_not_ready": after(not_ready.at if not_ready else None), "alert_received": after(received),
            "taint_added": after(taint.at if taint else None), "pod_force_deleted": after(deleted.at if deleted else None),
            "pod_started_elsewhere": after(started.at if started else None)}


def nodewarden_trial(tmp: Path, trial: int) -> dict[str, Any]:
    with (nodewarden_world(tmp / f"nw-{trial}", nodes=5, time_scale=SCALE, workloads=["db=statefulset:3"]) as w,
          alert_chain(w, tmp / f"chain-{trial}", list(w.controller_metrics.values()))):
        c = w.cluster
        pod = f"db-{trial % 3}"
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)[pod]
        time.sleep(60 * SCALE)  # let Prometheus see a healthy cluster first
        t0 = time.time()
        c.fault("power-off", victim)
        took = _victim_recovery(c, victim, pod, t0, limit_s=900 * SCALE + 60)
        rem = w.remediation(victim) or {}
        fence = (rem.get("status") or {}).get("fence") or {}
        return {"victim": victim, "recovered_s": None if took is None else took / SCALE,
                "milestones_s": _milestones(c, rem, victim, pod, t0),
                "evidence": (fence.get("evidence") or {}).get("rule"),
                "counted_from": ((fence.get("evidence") or {}).get("inputs") or {}).get("countedFrom"),
                "alert": ((rem.get("spec") or {}).get("trigger") or {}).get("alertName"),
                "violations": c.invariants()["violations"]}


def _baseline_cluster(tmp: Path) -> Cluster:
    return Cluster(nodes=5, time_scale=SCALE, workdir=tmp, workloads=["db=statefulset:3"],
                   timings=Timings(watchdog_timeout_s=AGENT_WATCHDOG_S)).start()


def kubernetes_alone(tmp: Path) -> dict[str, Any]:
    cluster = _baseline_cluster(tmp / "k8s")
    try:
        victim = wait_running(cluster, ["db-0"], timeout=60)["db-0"]
        t0 = time.time()
        cluster.fault("power-off", victim)
        took = _victim_recovery(cluster, victim, "db-0", t0, limit_s=K8S_ALONE_BOUND_S * SCALE)
        return {"recovered_s": None if took is None else took / SCALE, "bound_s": K8S_ALONE_BOUND_S,
                "violations": cluster.invariants()["violations"]}
    finally:
        cluster.stop()


def medik8s_emulated(tmp: Path) -> dict[str, Any]:
    cluster = _baseline_cluster(tmp / "medik8s")
    stop = threading.Event()
    try:
        victim = wait_running(cluster, ["db-0"], timeout=60)["db-0"]

        def remediator() -> None:  # NHC: unhealthy for 300 s; SNR: then wait the 180 s safe time
            not_ready_since: float | None = None
            while not stop.is_set():
                if ready(cluster, victim) != "True":
                    not_ready_since = not_ready_since or time.time()
                    if time.time() - not_ready_since >= (MEDIK8S_UNHEALTHY_S + MEDIK8S_SAFE_TIME_S) * SCALE:
                        add_taint(cluster, victim, OOS)
                        return
                else:
                    not_ready_since = None
                stop.wait(0.05)

        threading.Thread(target=remediator, daemon=True).start()
        t0 = time.time()
        cluster.fault("power-off", victim)
        took = _victim_recovery(cluster, victim, "db-0", t0, limit_s=900 * SCALE + 30)
        return {"recovered_s": None if took is None else took / SCALE,
                "violations": cluster.invariants()["violations"]}
    finally:
        stop.set()
        cluster.stop()


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        base = Path(tmp)
        trials = [nodewarden_trial(base, i) for i in range(TRIALS)]
        alone = kubernetes_alone(base)
        medik8s = medik8s_emulated(base)
    times = [t["recovered_s"] for t in trials if t["recovered_s"] is not None]
    nodewarden_s = statistics.median(times) if len(times) == len(trials) else None
    violations = sum(len(t["violations"]) for t in trials)
    speedup = (medik8s["recovered_s"] / nodewarden_s) if nodewarden_s and medik8s["recovered_s"] else None
    result = {
        "time_scale": SCALE, "trials": trials,
        "nodewarden_median_s": nodewarden_s, "kubernetes_alone": alone, "medik8s_emulated": medik8s,
        "speedup_vs_medik8s": speedup, "nodewarden_violations": violations,
        "targets": {"speedup_vs_medik8s": ">= 4", "nodewarden_violations": "0"},
        "met": {"speedup_vs_medik8s": bool(speedup and speedup >= 4), "nodewarden_violations": violations == 0},
    }
    write_result("recovery", result)
    return result
