"""`make demo`: nodewarden's main job, end to end, on a simulated 5-node cluster.

The real chain: the simulated cluster's kube-state-metrics series -> Prometheus (the
shipped rules) -> Alertmanager -> two webhook replicas -> the leader of two controllers
-> the node agents. A StatefulSet (3 replicas, ReadWriteOnce volumes) and a Deployment
run; the node under a StatefulSet pod is powered off; progress is shown as it happens;
the node is powered on again once its workloads have moved; a summary of each phase and
a timeline picture (results/demo/) close the run. Durations are shown as measured and
scaled back to Kubernetes' real timings. Ctrl-C stops everything the demo started.

    python -m harness.demo [--time-scale 0.2] [--results results/demo]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.chain import alert_chain
from harness.prometheus import ALERTMANAGER, PROMETHEUS, query
from harness.timeline_svg import render
from harness.waits import running_on, wait_running
from harness.world import World, nodewarden_world


def parse_ts(value: Any) -> float | None:
    from controller.model import parse_time

    return parse_time(value)


class Progress:
    """Prints each milestone once, with its time measured and in real-cluster seconds."""

    def __init__(self, t0: float, scale: float) -> None:
        self.t0, self.scale = t0, scale
        self.milestones: list[tuple[str, float]] = []
        self._seen: set[str] = set()

    def mark(self, key: str, label: str, at: float | None = None) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        at = time.time() if at is None else at
        elapsed = at - self.t0
        self.milestones.append((label, elapsed))
        print(f"  +{elapsed:6.1f}s  ({elapsed / self.scale:6.0f}s in a real cluster)  {label}", flush=True)

    def seen(self, key: str) -> bool:
        return key in self._seen


def show_cluster(w: World) -> None:
    if shutil.which("kubectl") is None:
        return
    kubectl = ["kubectl", "--kubeconfig", str(w.cluster.kubeconfig("admin")), "--cache-dir", str(w.tmp / "kcache")]
    for args in (["get", "nodes"], ["get", "pods", "-o", "wide"]):
        out = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=30).stdout
        print("$ kubectl " + " ".join(args) + "\n" + out, flush=True)


def watch(w: World, chain_url: str, victim: str, p: Progress, until: Callable[[], bool], timeout: float) -> None:
    c = w.cluster
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        for e in c.timeline.events(since=p.t0):
            if e.kind == "node-condition" and e.node == victim:
                p.mark(f"ready-{e.data.get('ready')}-{int(e.at)}", f"{victim} Ready={e.data.get('ready')} (Kubernetes)",
                       e.at)
            elif e.kind == "taint-added" and e.node == victim and "out-of-service" in e.detail:
                p.mark("taint", "out-of-service taint applied", e.at)
            elif e.kind == "pod-force-deleted" and e.node == victim:
                p.mark(f"gc-{e.object}", f"{e.object} force-deleted by pod GC", e.at)
            elif e.kind == "pod-started" and e.object.startswith("default/db-") and e.node != victim:
                p.mark(f"started-{e.object}", f"{e.object} Running on {e.node}", e.at)
            elif e.kind == "watchdog-fired" and e.node == victim:
                p.mark("watchdog", f"{victim}'s watchdog reset it", e.at)
            elif e.kind == "node-booted" and e.node == victim:
                p.mark("booted", f"{victim} booted (new boot {e.data.get('bootId', '')[:8]})", e.at)
            elif e.kind == "taint-removed" and e.node == victim and "out-of-service" in e.detail:
                p.mark("untaint", "out-of-service taint removed", e.at)
        if not p.seen("alert"):
            try:
                firing = query(chain_url, f'ALERTS{{alertstate="firing",node="{victim}"}}')
            except OSError:
                firing = []
            for a in firing:
                if a["metric"]["alertname"] in ("NodeNotReady", "NodeLeaseStale"):
                    p.mark("alert", f"{a['metric']['alertname']} firing in Prometheus")
        rem = w.remediation(victim)
        if rem:
            status = rem.get("status") or {}
            received = parse_ts((rem.get("spec") or {}).get("trigger", {}).get("receivedAt"))
            p.mark("accepted", f"webhook accepted the alert ({rem['spec']['trigger'].get('alertName')})", received)
            for h in status.get("history") or []:
                p.mark(f"phase-{h['phase']}", f"phase {h['phase']} ({h.get('reason')})", parse_ts(h.get("at")))
            fence = status.get("fence") or {}
            if fence.get("issuedAt"):
                p.mark("order", "signed fence order issued", parse_ts(fence["issuedAt"]))
            evidence = fence.get("evidence") or {}
            if evidence.get("satisfiedAt"):
                p.mark("evidence", f"fence proven: {evidence.get('rule')}", parse_ts(evidence["satisfiedAt"]))
        time.sleep(0.1)


def phases_of(w: World, victim: str, t0: float, end: float) -> list[tuple[str, float, float]]:
    rem = w.remediation(victim) or {}
    history = (rem.get("status") or {}).get("history") or []
    spans: list[tuple[str, float, float]] = []
    for i, h in enumerate(history):
        start = (parse_ts(h["at"]) or t0) - t0
        stop = (parse_ts(history[i + 1]["at"]) or end) - t0 if i + 1 < len(history) else end - t0
        if not spans or spans[-1][0] != h["phase"]:
            spans.append((h["phase"], start, stop))
        else:
            spans[-1] = (h["phase"], spans[-1][1], stop)
    return spans


def run(scale: float, results: Path, keep: bool) -> int:
    if PROMETHEUS is None or ALERTMANAGER is None:
        print("Prometheus and Alertmanager are needed: run `make demo` (it installs Debian's packages)",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="nodewarden-demo-"))
    print(f"nodewarden demo: 5 nodes, time scale {scale:g} (every Kubernetes duration x {scale:g}); "
          f"work files in {tmp}", flush=True)
    try:
        with (nodewarden_world(tmp / "world", nodes=5, time_scale=scale, controllers=2, webhooks=2,
                               workloads=["db=statefulset:3", "web=deployment:2"]) as w,
              alert_chain(w, tmp / "chain", list(w.controller_metrics.values())) as chain):
            c = w.cluster
            placed = wait_running(c, ["db-0", "db-1", "db-2"], timeout=60)
            c.wait_for(lambda: w.leader() in w.controllers, 30, message="a controller leader")
            print(f"\nRunning: API server {c.url}, webhooks {', '.join(w.webhook_urls)}, "
                  f"controllers {', '.join(w.controllers)} (leader {w.leader()}), Prometheus {chain.prometheus_url}, "
                  f"Alertmanager {chain.alertmanager_url}\n", flush=True)
            show_cluster(w)
            victim = placed["db-0"]
            print(f"Powering off {victim}, which runs db-0 (a StatefulSet pod with a ReadWriteOnce volume):",
                  flush=True)
            t0 = time.time()
            p = Progress(t0, scale)
            c.fault("power-off", victim)
            p.mark("power-off", f"{victim} powered off", t0)
            watch(w, chain.prometheus_url, victim, p,
                  lambda: running_on(c, "db-0") not in (None, victim) and p.seen("started-default/db-0"),
                  timeout=600 * scale + 60)
            recovered_at = time.time()
            print(f"\ndb-0 runs again on {running_on(c, 'db-0')}: repairing {victim} (powering it on):", flush=True)
            c.fault("power-on", victim)
            p.mark("power-on", f"{victim} powered on (repaired)")
            watch(w, chain.prometheus_url, victim, p, lambda: w.phase(victim) in ("Succeeded", "Failed"),
                  timeout=300 * scale + 60)
            watch(w, chain.prometheus_url, victim, p, lambda: p.seen("untaint") or w.phase(victim) == "Failed",
                  timeout=10)
            end = time.time()
            rem = w.remediation(victim) or {}
            status = rem.get("status") or {}
            report = c.invariants()
            print(f"\nRemediation of {victim}: {status.get('phase')} ({status.get('reason')})")
            phases = phases_of(w, victim, t0, end)
            if phases:  # before nodewarden: Kubernetes notices, Prometheus and Alertmanager alert
                phases.insert(0, ("Detection", 0.0, phases[0][1]))
            print("\nPhase durations (measured / in a real cluster):")
            for phase, start, stop in phases:
                print(f"  {phase:<20} {stop - start:7.1f}s / {(stop - start) / scale:6.0f}s")
            print(f"\nPower-off -> db-0 running elsewhere: {recovered_at - t0:.1f}s measured, "
                  f"{(recovered_at - t0) / scale:.0f}s in a real cluster "
                  f"(medik8s defaults: about 510-540 s; Kubernetes alone: never)")
            print(f"Invariant monitor: {report['checked']} checks, {len(report['violations'])} violation(s)")
            results.mkdir(parents=True, exist_ok=True)
            svg = render(f"nodewarden: {victim} powered off, db-0 recovered, node back",
                         p.milestones, phases, scale, end - t0)
            (results / "timeline.svg").write_text(svg)
            (results / "summary.json").write_text(json.dumps({
                "scale": scale, "victim": victim, "outcome": status.get("phase"), "reason": status.get("reason"),
                "evidence": (status.get("fence") or {}).get("evidence"),
                "milestones": [{"label": lbl, "measured_s": at, "real_s": at / scale} for lbl, at in p.milestones],
                "phases": [{"phase": ph, "measured_s": b - a, "real_s": (b - a) / scale} for ph, a, b in phases],
                "recovery_real_s": (recovered_at - t0) / scale, "invariants": report}, indent=2))
            print(f"Timeline picture: {results / 'timeline.svg'}; summary: {results / 'summary.json'}")
            ok = status.get("phase") == "Succeeded" and not report["violations"]
            return 0 if ok else 1
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-scale", type=float, default=0.2,
                        help="every Kubernetes duration is multiplied by this (default 0.2)")
    parser.add_argument("--results", type=Path, default=Path("results/demo"))
    parser.add_argument("--keep", action="store_true", help="keep the work files (logs) after the run")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return run(args.time_scale, args.results, args.keep)
    except KeyboardInterrupt:
        print("\nstopped: everything the demo started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
