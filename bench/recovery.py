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

Every nodewarden trial prints the timing model's prediction (core.timing, fed with the
world's own settings: the agents' config, the controller's, the simulator's Kubernetes
timings, the chain's Prometheus and Alertmanager) beside what it measured, milestone by
milestone. Trials can run with several settings sets in one run
(`BENCH_RECOVERY_SETS`, e.g. "default:10,resource-deletion:5,prometheus-30s:5"): the levers
are measured side by side.

Target: nodewarden at least 4x faster than the medik8s emulation, with zero violations.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from core import timing
from core.clock import parse_rfc3339
from core.settings import parse_duration
from harness.chain import EVALUATION_INTERVAL_S, RULES, SCRAPE_INTERVAL_S, alert_chain
from harness.prometheus import http_json
from harness.waits import OOS, add_taint, ready, running_on, wait_running
from harness.world import AGENT_WATCHDOG_S, controller_env, nodewarden_world, policy
from sim.world.cluster import Cluster
from sim.world.timings import Timings

from .common import write_result

SCALE = float(os.environ.get("BENCH_RECOVERY_SCALE", "0.1"))
TRIALS = int(os.environ.get("BENCH_RECOVERY_TRIALS", "3"))
K8S_ALONE_BOUND_S = 900.0  # cluster seconds the Kubernetes-alone baseline waits
MEDIK8S_UNHEALTHY_S, MEDIK8S_SAFE_TIME_S = 300.0, 180.0
# Settings sets: (recovery strategy, kube-state-metrics scrape interval, rule evaluation
# interval, whether the controller force-deletes the terminating pods at once (the
# default) or leaves them to pod GC).
SETTINGS_SETS = {
    "default": ("OutOfServiceTaint", SCRAPE_INTERVAL_S, EVALUATION_INTERVAL_S, True),
    "pod-gc": ("OutOfServiceTaint", SCRAPE_INTERVAL_S, EVALUATION_INTERVAL_S, False),
    "resource-deletion": ("ResourceDeletion", SCRAPE_INTERVAL_S, EVALUATION_INTERVAL_S, True),
    "prometheus-30s": ("OutOfServiceTaint", 30.0, 30.0, True),
    "prometheus-5s": ("OutOfServiceTaint", 5.0, 5.0, True),
}
GROUP_WAIT_S = 0.0  # the chart's Alertmanager route
# "NAME" or "NAME:TRIALS" (TRIALS defaults to BENCH_RECOVERY_TRIALS), comma-separated.
SETS = {name.strip(): int(count or TRIALS) for name, _, count in
        (item.partition(":") for item in os.environ.get("BENCH_RECOVERY_SETS", "default").split(",")) if name.strip()}


def _victim_recovery(cluster: Cluster, victim: str, pod: str, t0: float, limit_s: float,
                     seen: Any = None) -> float | None:
    """Seconds (measured) from t0 until `pod` runs on a node other than `victim`; `seen`
    is called on every poll (every 50 ms) to record what it observes."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if seen is not None:
            seen()
        node = running_on(cluster, pod)
        if node not in (None, victim):
            started = cluster.timeline.first("pod-started", since=t0, obj=f"default/{pod}")
            return (started.at if started else time.time()) - t0
        time.sleep(0.05)
    return None


class PhaseWatch:
    """When the victim's NodeRemediation first existed and first reached each phase, by
    polling (the status' own timestamps have whole seconds, ten cluster seconds at F = 0.1)."""

    def __init__(self, world: Any, node: str) -> None:
        self.world, self.node = world, node
        self.first: dict[str, float] = {}

    def __call__(self) -> None:
        rem = self.world.remediation(self.node)
        if rem is None:
            return
        now = time.time()
        self.first.setdefault("created", now)
        phase = str((rem.get("status") or {}).get("phase") or "Pending")
        self.first.setdefault(phase, now)


def replacement_start_s(k: Timings) -> float:
    """The old pod's deletion to its replacement Running, from the simulator's own delays:
    the StatefulSet controller, the scheduler and the attach/detach controller each at
    their next pass, the CSI detach of the old attachment, the attach, the start."""
    return 3 * k.controller_period_s + k.csi_detach_delay_s + k.attach_delay_s + k.pod_start_delay_s


def world_inputs(agent_config: dict[str, Any], strategy: str, scrape_s: float, evaluation_s: float,
                 delete_pods: bool = True) -> timing.TimingInputs:
    """The timing model's inputs for a world at SCALE, in cluster seconds: the agents'
    config as the world wrote it, the controller's settings as the world starts it, the
    simulator's Kubernetes timings and the chain's Prometheus and Alertmanager."""
    agent = {f: float(agent_config[f]) / SCALE for f in ("watchdog_timeout_s", "api_check_interval_s",
                                                           "api_check_timeout_s", "isolation_timeout_s",
                                                           "peer_request_timeout_s", "peer_api_timeout_s",
                                                           "loop_tick_s")}
    # The agents publish their watchdog timeout in whole seconds, rounded up, and the
    # evidence rules use what they publish: at a scale where W x F is fractional the
    # world's fence deadline is longer than the settings alone say.
    agent["watchdog_timeout_s"] = math.ceil(float(agent_config["watchdog_timeout_s"])) / SCALE
    env = controller_env(SCALE, Path(), Path(), Path(), Path(), "", "probe")
    controller = {f: float(env[f"NODEWARDEN_CONTROLLER_{f.upper()}"]) / SCALE
                  for f in ("safety_margin_s", "max_clock_skew_s", "silence_settle_s", "peer_timeout_s",
                            "fencing_taint_settle_s")}
    k = Timings()
    rules = yaml.safe_load(RULES.read_text())
    not_ready_for = next(parse_duration(r["for"]) for g in rules["groups"] for r in g["rules"]
                         if r.get("alert") == "NodeNotReady")
    return timing.TimingInputs(
        agent=timing.AgentTimings(**agent),  # type: ignore[arg-type]
        controller=timing.ControllerTimings(**controller, delete_pods_after_taint=delete_pods),
        kubernetes=timing.KubernetesTimings(node_lease_renew_interval_s=k.lease_renew_interval_s,
                                            node_monitor_grace_period_s=k.node_monitor_grace_period_s,
                                            node_monitor_period_s=k.node_monitor_period_s,
                                            pod_gc_period_s=k.pod_gc_period_s,
                                            replacement_start_s=replacement_start_s(k)),
        alerting=timing.AlertingTimings(kube_state_metrics_scrape_interval_s=scrape_s,
                                        rule_evaluation_interval_s=evaluation_s, node_not_ready_for_s=not_ready_for,
                                        node_lease_stale_enabled=True, group_wait_s=GROUP_WAIT_S),
        strategy=strategy)


def _first_sample(prometheus_url: str, selector: str, since: float, value: float | None = None) -> float | None:
    """The timestamp of the first raw sample of `selector` at or after `since` (with
    `value`, the first with that value): when Prometheus scraped or evaluated it."""
    try:
        data = http_json(f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(selector + '[1h]')}")
    except OSError:
        return None
    stamps = [float(t) for series in data["data"]["result"] for t, v in series["values"]
              if float(t) >= since and (value is None or float(v) == value)]
    return min(stamps) if stamps else None


def _prometheus_milestones(prometheus_url: str, victim: str, t0: float) -> dict[str, float | None]:
    """Wall times: the first scrape that saw the node not Ready, and the first evaluation
    that had a trigger alert about it firing (`ALERTS` is written at each evaluation)."""
    return {
        "scraped_not_ready": _first_sample(
            prometheus_url, f'kube_node_status_condition{{node="{victim}",condition="Ready",status="true"}}', t0, 0.0),
        "alert_firing": _first_sample(
            prometheus_url, f'ALERTS{{alertstate="firing",node="{victim}",alertname=~"NodeNotReady|NodeLeaseStale"}}', t0),
    }


def _milestones(cluster: Cluster, rem: dict[str, Any], victim: str, pod: str, t0: float,
                prom: dict[str, float | None], phases: dict[str, float]) -> dict[str, float | None]:
    """Real-cluster seconds from the power-off to each step of the recovery: where the
    time goes (Kubernetes' detection, the alert rule and Alertmanager, nodewarden, the
    pod garbage collector or the controller's own deletion, the StatefulSet and the
    kubelet). Names as in core.timing.MILESTONES."""
    tl = cluster.timeline
    status = rem.get("status") or {}
    fence = status.get("fence") or {}
    not_ready = next((e for e in tl.events(since=t0, kind="node-condition", node=victim)
                      if "Ready=True" not in e.detail), None)
    received = phases.get("created")  # the webhook creates it as the alert arrives
    taint = next((e for e in tl.events(since=t0, kind="taint-added", node=victim) if e.data.get("key") == OOS["key"]), None)
    # By pod GC, or by the controller itself (ResourceDeletion, or the pods the taint evicts:
    # the remediation reaches AwaitingNodeReady once it has deleted them).
    gc = tl.first("pod-force-deleted", obj=f"default/{pod}", since=t0)
    deleted_at = gc.at if gc else None
    if deleted_at is None and (status.get("recovery") or {}).get("podsDeleted") is not None:
        deleted_at = phases.get("AwaitingNodeReady")
    started = tl.first("pod-started", obj=f"default/{pod}", since=t0)

    def after(at: float | None) -> float | None:
        return None if at is None else round((at - t0) / SCALE, 1)

    return {"node_not_ready": after(not_ready.at if not_ready else None),
            "scraped_not_ready": after(prom["scraped_not_ready"]), "alert_firing": after(prom["alert_firing"]),
            "alert_received": after(received), "confirming": after(phases.get("Confirming")),
            "fence_ordered": after(parse_rfc3339(fence.get("issuedAt"))),
            "fence_proven": after(parse_rfc3339((fence.get("evidence") or {}).get("satisfiedAt"))),
            "taint_added": after(taint.at if taint else None),
            "pod_force_deleted": after(deleted_at),
            "replacement_running": after(started.at if started else None)}


def print_beside(label: str, prediction: timing.Prediction, measured: dict[str, float | None]) -> None:
    print(f"-- {label}: milestone, predicted expected [earliest-latest], measured (s after power-off)", flush=True)
    for name in timing.MILESTONES:
        got = measured.get(name)
        print(f"   {name:<20} {prediction.expected.at_s[name]:6.1f} [{prediction.earliest.at_s[name]:5.1f}-"
              f"{prediction.latest.at_s[name]:5.1f}]  {'-' if got is None else f'{got:6.1f}'}", flush=True)


def nodewarden_trial(tmp: Path, trial: int, set_name: str = "default") -> dict[str, Any]:
    strategy, scrape_s, evaluation_s, delete_pods = SETTINGS_SETS[set_name]
    with (nodewarden_world(tmp / f"nw-{set_name}-{trial}", nodes=5, time_scale=SCALE, workloads=["db=statefulset:3"],
                           remediation_policy=policy(strategy=strategy),
                           controller_overrides={"DELETE_PODS_AFTER_TAINT": str(delete_pods).lower()}) as w,
          alert_chain(w, tmp / f"chain-{set_name}-{trial}", list(w.controller_metrics.values()),
                      scrape_interval_s=scrape_s, evaluation_interval_s=evaluation_s,
                      group_wait_s=GROUP_WAIT_S) as chain):
        c = w.cluster
        inputs = world_inputs(yaml.safe_load((w.tmp / "agent.yaml").read_text()), strategy, scrape_s, evaluation_s,
                              delete_pods)
        prediction = timing.predict(inputs)
        pod = f"db-{trial % 3}"
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)[pod]
        time.sleep(60 * SCALE)  # let Prometheus see a healthy cluster first
        t0 = time.time()
        c.fault("power-off", victim)
        phases = PhaseWatch(w, victim)
        took = _victim_recovery(c, victim, pod, t0, limit_s=900 * SCALE + 60, seen=phases)
        rem = w.remediation(victim) or {}
        fence = (rem.get("status") or {}).get("fence") or {}
        milestones = _milestones(c, rem, victim, pod, t0, _prometheus_milestones(chain.prometheus_url, victim, t0),
                                 phases.first)
        print_beside(f"{set_name} trial {trial} ({victim})", prediction, milestones)
        return {"settings": set_name, "strategy": strategy, "victim": victim,
                "recovered_s": None if took is None else took / SCALE,
                "milestones_s": milestones,
                "predicted_s": {"expected": prediction.expected.at_s, "earliest": prediction.earliest.at_s,
                                "latest": prediction.latest.at_s},
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


def _trial_with_retry(base: Path, trial: int, set_name: str, attempts: int = 5) -> dict[str, Any]:
    """A trial whose world could not start (a process not ready in time on a loaded
    machine) is started again; the failure is recorded, never hidden."""
    failures = []
    for attempt in range(attempts):
        try:
            result = nodewarden_trial(base / f"attempt-{attempt}", trial, set_name)
            return {**result, "world_start_failures": failures}
        except (AssertionError, TimeoutError) as exc:
            failures.append(str(exc).splitlines()[0][:200])
            print(f"-- {set_name} trial {trial}: the world did not start ({failures[-1]}); again", flush=True)
    raise RuntimeError(f"{set_name} trial {trial}: the world did not start {attempts} times: {failures}")


def _by_set(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Per settings set: the measured median of each milestone beside the prediction."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(t["settings"] for t in trials):
        group = [t for t in trials if t["settings"] == name]
        predicted = group[0]["predicted_s"]["expected"]
        medians = {}
        for m in timing.MILESTONES:
            values = [t["milestones_s"][m] for t in group if t["milestones_s"].get(m) is not None]
            medians[m] = statistics.median(values) if values else None
        times = sorted(t["recovered_s"] for t in group if t["recovered_s"] is not None)
        out[name] = {"trials": len(group), "median_recovered_s": statistics.median(times) if times else None,
                     "p95_recovered_s": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] if times else None,
                     "predicted_recovered_s": predicted["replacement_running"],
                     "measured_median_s": medians, "predicted_s": predicted,
                     "prediction_error": {m: (None if medians[m] is None or not predicted[m] else
                                              round((medians[m] - predicted[m]) / predicted[m], 3))
                                          for m in timing.MILESTONES}}
    return out


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        base = Path(tmp)
        trials = []
        for name, count in SETS.items():
            for i in range(count):
                trials.append(_trial_with_retry(base, i, name))
                write_result("recovery", {"time_scale": SCALE, "incomplete": True, "trials": trials})
        alone = kubernetes_alone(base)
        medik8s = medik8s_emulated(base)
    default = [t for t in trials if t["settings"] == next(iter(SETS))]
    times = [t["recovered_s"] for t in default if t["recovered_s"] is not None]
    nodewarden_s = statistics.median(times) if times and len(times) == len(default) else None
    violations = sum(len(t["violations"]) for t in trials)
    speedup = (medik8s["recovered_s"] / nodewarden_s) if nodewarden_s and medik8s["recovered_s"] else None
    result = {
        "time_scale": SCALE, "settings_sets": {n: SETTINGS_SETS[n] for n in SETS}, "trials": trials,
        "by_settings": _by_set(trials),
        "nodewarden_median_s": nodewarden_s, "kubernetes_alone": alone, "medik8s_emulated": medik8s,
        "speedup_vs_medik8s": speedup, "nodewarden_violations": violations,
        "targets": {"speedup_vs_medik8s": ">= 4", "nodewarden_violations": "0"},
        "met": {"speedup_vs_medik8s": bool(speedup and speedup >= 4), "nodewarden_violations": violations == 0},
    }
    write_result("recovery", result)
    return result
