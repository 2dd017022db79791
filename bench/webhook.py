"""The webhook under load (issue 5), three measurements side by side in one run:

1. Throughput of repeated alerts. The real webhook under gunicorn, with its shipped
   `webhook/gunicorn.conf.py` (gevent workers, NODEWARDEN_WORKERS of them), answers one firing alert about a node that already has a
   NodeRemediation, so every post is a `duplicate`. Beside it, a bare Flask endpoint
   that parses the same JSON body and answers 200 runs under the same configuration
   file. Closed loop on keep-alive connections, in rounds that alternate between the two
   servers (webhook-bare, bare-webhook, ...) so that the load of the machine's other
   tenants falls on both alike. Target: the webhook reaches at least 0.7x the bare
   endpoint's requests/s.
2. A storm. One Alertmanager notification carrying 1,000 firing alerts about 1,000
   distinct NotReady nodes, in a simulated cluster where half of its 8,000 nodes are
   NotReady, so storm protection (`maxUnhealthy: 40%` in the shipped policy) rejects
   them all. Target: answered in under 1 s (median of several tries), the response
   naming `StormProtection` for every alert.
3. Latency at a steady 200 posts/s (open loop: each post is due at its scheduled time,
   and its latency counts from that time, so a slow answer cannot hide the ones queued
   behind it). Two patterns, both judged: `repeated` (the alert of scenario 1 again and
   again) and `distinct` (each post names a node no alert named before, in the storm's
   cluster: a full policy decision, a log line and a Kubernetes Event each).
   Target: p99 < 20 ms.

Every piece is a process of its own: the simulated API server (`sim.apiserver.server.ApiServer`,
nodes as plain objects whose Ready condition the benchmark sets; no kubelets), the
gunicorn servers, and the load generator (one thread driving keep-alive connections
with prebuilt requests, so that it needs little CPU). The CPU time of each process
group, and the machine's total, is measured over every window: on a shared 2-core
machine the webhook's numbers only mean something next to what else was running. The
run waits for a quiet machine before it starts, and repeats a latency attempt that
other tenants disturbed.

The servers it starts are in `webhook_servers.py`, the load generators and the CPU
accounting in `webhook_load.py`; this module holds the scenarios, their targets and `run`.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import write_result
from .webhook_load import Load, group_cpu_s, machine_busy_s, measured
from .webhook_servers import Api, Server, api_server, children, get, gunicorn, message, post

ROUND_S = float(os.environ.get("BENCH_WEBHOOK_ROUND_S", "3"))
PAIRS = int(os.environ.get("BENCH_WEBHOOK_PAIRS", "8"))
WARMUP_S = 0.5
LATENCY_ATTEMPTS = 3
QUIET_CORES = 0.5  # CPU used by other tenants above which a latency attempt is repeated
QUIET_WAIT_S = float(os.environ.get("BENCH_WEBHOOK_QUIET_WAIT_S", "600"))
CONNECTIONS = int(os.environ.get("BENCH_WEBHOOK_CONNECTIONS", "16"))
RATE = float(os.environ.get("BENCH_WEBHOOK_RATE", "200"))
LATENCY_S = float(os.environ.get("BENCH_WEBHOOK_LATENCY_S", "10"))
STORM_ALERTS = 1000
STORM_NODES = int(os.environ.get("BENCH_WEBHOOK_STORM_NODES", "8000"))
STORM_TRIES = int(os.environ.get("BENCH_WEBHOOK_STORM_TRIES", "5"))
SMALL_NODES = 10

THROUGHPUT_RATIO_TARGET = 0.7
STORM_TARGET_S = 1.0
P99_TARGET_MS = 20.0



def throughput(webhook: Server, bare: Server, api: Api) -> dict[str, Any]:
    """Closed loop on CONNECTIONS keep-alive connections, PAIRS pairs of rounds in the
    order webhook-bare, bare-webhook, ... so that a drift of the machine's load falls on
    both sides alike."""
    def groups() -> dict[str, list[int]]:
        return {"webhook": webhook.pids(), "bare": bare.pids(), "api_server": [api.proc.pid]}

    rounds: dict[str, list[dict[str, Any]]] = {"webhook": [], "bare": []}
    for pair in range(PAIRS):
        for server in (webhook, bare) if pair % 2 == 0 else (bare, webhook):
            load = Load.start(mode="closed", port=server.port, nodes=["node-1"],
                              connections=CONNECTIONS, warmup_s=WARMUP_S, duration_s=ROUND_S)
            workers = children(server.proc.pid)
            before = [group_cpu_s([pid]) for pid in workers]
            result = measured(load, groups)
            used = [group_cpu_s([pid]) - b for pid, b in zip(workers, before, strict=True)]
            result["busiest_worker_share"] = max(used) / max(sum(used), 1e-9)
            if set(result["statuses"]) != {"200"}:
                raise RuntimeError(f"{server.name} answered {result['statuses']}")
            rounds[server.name].append(result)
    per_s = {name: sum(r["requests"] for r in rs) / sum(r["seconds"] for r in rs)
             for name, rs in rounds.items()}
    cores = {name: {k: round(statistics.fmean(r["cpu_cores"][k] for r in rs), 2)
                    for k in rs[0]["cpu_cores"]} for name, rs in rounds.items()}
    # CPU time the server's processes spent per request (its master and workers).
    cpu_ms = {name: 1000 * sum(r["cpu_cores"][name] * r["seconds"] for r in rs)
              / sum(r["requests"] for r in rs) for name, rs in rounds.items()}
    pair_ratios = [w["per_s"] / b["per_s"] for w, b in zip(rounds["webhook"], rounds["bare"], strict=True)]
    return {
        "webhook_per_s": per_s["webhook"], "bare_per_s": per_s["bare"],
        "ratio": per_s["webhook"] / per_s["bare"],
        "ratio_median_of_pairs": statistics.median(pair_ratios),
        "ratio_of_cpu_per_request": cpu_ms["bare"] / cpu_ms["webhook"],
        "server_cpu_ms_per_request": {k: round(v, 3) for k, v in cpu_ms.items()},
        "rounds_per_s": {name: " ".join(str(round(r["per_s"])) for r in rs) for name, rs in rounds.items()},
        # The CPU share of the busiest worker in each round (1/workers: even).
        "busiest_worker_share": {name: " ".join(f"{r['busiest_worker_share']:.2f}" for r in rs)
                                 for name, rs in rounds.items()},
        "cpu_cores": cores,
        "connections": CONNECTIONS, "round_s": ROUND_S, "pairs": PAIRS,
    }


def latency(server: Server, api: Api, batches: Iterator[list[str]]) -> dict[str, Any]:
    """Open loop at RATE posts/s for LATENCY_S seconds, each attempt naming the nodes of the
    next batch. A p99 is an absolute time: when other tenants kept the machine busy during
    an attempt (more than QUIET_CORES of CPU nobody here used), it is repeated, up to
    LATENCY_ATTEMPTS times. The quietest attempt is the result; every attempt is listed."""
    attempts = []
    for _ in range(LATENCY_ATTEMPTS):
        attempts.append(_latency_once(server, api, next(batches)))
        if attempts[-1]["cpu_cores"]["unattributed"] <= QUIET_CORES:
            break
    out = dict(min(attempts, key=lambda a: a["cpu_cores"]["unattributed"]))
    out["attempts"] = "; ".join(f"p99 {a['p99_ms']:.1f} ms, {a['cpu_cores']['unattributed']:.2f} cores "
                                "busy elsewhere" for a in attempts)
    return out


def _latency_once(server: Server, api: Api, nodes: list[str]) -> dict[str, Any]:
    def groups() -> dict[str, list[int]]:
        return {"webhook": server.pids(), "api_server": [api.proc.pid]}

    load = Load.start(mode="open", port=server.port, nodes=nodes, rate=RATE, warmup_s=WARMUP_S,
                      duration_s=LATENCY_S)
    r = measured(load, groups)
    keep = ("requests", "rate_per_s", "seconds", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms",
            "service_p99_ms", "client_late_p99_ms", "errors")
    out = {k: r[k] for k in keep}
    out["not_200"] = sum(v for k, v in r["statuses"].items() if k != "200")
    posts = int((WARMUP_S + LATENCY_S) * RATE)  # warm-up included: it names nodes too
    out["nodes_named"] = min(posts, len(set(nodes)))
    out["cpu_cores"] = r["cpu_cores"]
    return out


def storm(server: Server, api: Api) -> dict[str, Any]:
    """STORM_TRIES posts of one notification with STORM_ALERTS alerts, one a second, each on
    a new connection. The first ones also queue an Event per node (sent in the background);
    the later ones find them deduplicated."""
    nodes = [f"node-{i}" for i in range(1, STORM_ALERTS + 1)]
    body = json.dumps(message(nodes)).encode()
    pids = server.pids()
    tries: list[float] = []
    cpu_s: list[float] = []
    engaged = True
    for _ in range(STORM_TRIES):
        before = group_cpu_s(pids)
        status, data, seconds = post(server.port, body)
        cpu_s.append(group_cpu_s(pids) - before)
        answer = json.loads(data)
        reasons = Counter(a["reason"] for a in answer.get("alerts", []))
        engaged = engaged and status == 200 and reasons == Counter(StormProtection=STORM_ALERTS)
        tries.append(seconds)
        time.sleep(1.0)
    _, metrics = get(server.port, "/metrics")
    gauge = next((line.split()[-1] for line in metrics.decode().splitlines()
                  if line.startswith("nodewarden_webhook_storm_protection_active ")), "")
    return {"alerts": STORM_ALERTS, "nodes": STORM_NODES, "not_ready": STORM_NODES // 2,
            "body_kib": round(len(body) / 1024), "tries_s": " ".join(f"{t:.3f}" for t in tries),
            "median_s": statistics.median(tries), "first_s": tries[0], "max_s": max(tries),
            "webhook_cpu_s_per_try": " ".join(f"{c:.2f}" for c in cpu_s),
            "every_alert_storm_protection": engaged,
            "storm_protection_active_gauge": gauge == "1.0"}


def fresh_nodes(first: int) -> Iterator[list[str]]:
    """Batches of node names for one latency attempt each, never the same node twice."""
    per_attempt = int((WARMUP_S + LATENCY_S) * RATE)
    while first + per_attempt - 1 <= STORM_NODES:
        yield [f"node-{i}" for i in range(first, first + per_attempt)]
        first += per_attempt


def background_cores(seconds: float = 2.0) -> float:
    """Cores the machine spends busy over `seconds` (while this benchmark is idle)."""
    busy0 = machine_busy_s()
    time.sleep(seconds)
    return (machine_busy_s() - busy0) / seconds


def wait_for_quiet() -> dict[str, float]:
    """Wait (up to QUIET_WAIT_S) until the machine is about idle before starting: other
    tenants of a shared machine can keep both cores busy for minutes."""
    start = time.monotonic()
    while True:
        busy = background_cores()
        if busy <= QUIET_CORES or time.monotonic() - start >= QUIET_WAIT_S:
            return {"busy_cores_before_start": round(busy, 2), "waited_s": round(time.monotonic() - start)}
        time.sleep(5.0)


def workers_threads() -> dict[str, Any]:
    return {"workers": int(os.environ.get("NODEWARDEN_WORKERS", "2")),
            "worker_class": "gevent (webhook.server.WebhookWorker)",
            "worker_connections": int(os.environ.get("NODEWARDEN_WORKER_CONNECTIONS", "1000"))}


def measure() -> dict[str, Any]:
    machine = wait_for_quiet()
    with tempfile.TemporaryDirectory(prefix="nodewarden-bench-") as tmp:
        work = Path(tmp)
        # The small cluster: node-1 is NotReady and gets its remediation through the
        # webhook itself; every later alert about it is a duplicate.
        with api_server(work / "small", SMALL_NODES, 1) as api, \
                gunicorn("webhook", "webhook.wsgi:app", work / "webhook", api.kubeconfig) as webhook, \
                gunicorn("bare", "bench.webhook_servers:bare_app()", work / "bare", api.kubeconfig) as bare:
            status, data, _ = post(webhook.port, json.dumps(message(["node-1"])).encode())
            first = json.loads(data)["alerts"][0]
            assert status == 200 and first["outcome"] == "accepted", data[:500]
            status, data, _ = post(webhook.port, json.dumps(message(["node-1"])).encode())
            assert json.loads(data)["alerts"][0]["outcome"] == "duplicate", data[:500]
            speed = throughput(webhook, bare, api)
            repeated = latency(webhook, api, itertools.repeat(["node-1"]))
        # The storm cluster: half of STORM_NODES NotReady.
        with api_server(work / "storm", STORM_NODES, STORM_NODES // 2) as api, \
                gunicorn("webhook", "webhook.wsgi:app", work / "storm-webhook", api.kubeconfig) as webhook:
            # Nodes no alert named before, a new batch per attempt: node-1001 onwards
            # (NotReady up to half of the nodes, Ready beyond).
            distinct = latency(webhook, api, fresh_nodes(STORM_ALERTS + 1))
            time.sleep(2.0)
            burst = storm(webhook, api)
    return {"gunicorn": workers_threads(), "machine_load": machine, "throughput": speed, "storm": burst,
            "latency": {"repeated": repeated, "distinct": distinct}}


def run() -> dict[str, Any]:
    data = measure()
    data["targets"] = {
        "throughput.ratio": f">= {THROUGHPUT_RATIO_TARGET:g} (webhook / bare endpoint, requests/s)",
        "storm.median_s": f"< {STORM_TARGET_S:g} s, every alert rejected with StormProtection",
        "latency.repeated.p99_ms": f"< {P99_TARGET_MS:g} ms at {RATE:g} posts/s",
        "latency.distinct.p99_ms": f"< {P99_TARGET_MS:g} ms at {RATE:g} posts/s",
    }
    data["met"] = {
        "throughput.ratio": data["throughput"]["ratio"] >= THROUGHPUT_RATIO_TARGET,
        "storm.median_s": data["storm"]["median_s"] < STORM_TARGET_S
        and data["storm"]["every_alert_storm_protection"],
        "latency.repeated.p99_ms": data["latency"]["repeated"]["p99_ms"] < P99_TARGET_MS,
        "latency.distinct.p99_ms": data["latency"]["distinct"]["p99_ms"] < P99_TARGET_MS,
    }
    write_result("webhook", data)
    return data
