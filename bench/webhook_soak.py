"""Soak: the webhook at a steady 200 alerts/s for 10 minutes with 64 slow clients attached
(issue 14). Opt-in (`make soak`; `SOAK_S` shortens it), not part of `make bench`.

The real webhook under gunicorn with its shipped configuration, on the simulated API
server (200 nodes, half of them NotReady), takes an open-loop stream of one-alert posts
(`bench.webhook.open_loop`: each post is due at its time, latency counts from then). The
alerts cycle through 20,000 node names: the 200 that exist (one remediation each at
most, then duplicates; storm protection refuses most) and 19,800 that do not
(`NodeNotFound`, each a distinct decision line and Event). So every bounded structure
(the 10,000-line folder, the Event recorder's memory, the Event queue) fills and keeps
turning over during the run. Meanwhile 64 connections send their request heads a byte
every 0.5 s, each reopened as soon as the webhook drops it.

Judged:
- memory flat: the webhook's resident memory (master and workers) sampled every 5 s;
  growth from the end of the first quarter to the end of the run under 10 %;
- nothing lost: every post answered 200 (the warm-up's too), no connection error, and
  the webhook counted (`nodewarden_webhook_alerts_received_total`) every alert sent;
- p99 latency reported (and p50, max; the p99 of every 30 s; the most posts waiting at
  once), with the cores each part used (the webhook, the API server, the load generator,
  the slow clients; "unattributed": other tenants of the machine) and the load average
  at the start and the end;
- `/healthz` answered throughout: probed once a second on a new connection (as the
  kubelet does) beside the load and the slow clients, its p50/p99/max and any failure;
- the webhook's whole log: error lines and tracebacks (none expected).
Writes `bench/results/webhook_soak.json`.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .common import pss_mib, rss_mib, write_result
from .webhook import Load, api_server, children, get, gunicorn, machine_busy_s
from .webhook_load import CpuWindow

SOAK_S = float(os.environ.get("SOAK_S", "600"))
RATE = float(os.environ.get("SOAK_RATE", "200"))
SLOW_CLIENTS = int(os.environ.get("SOAK_SLOW_CLIENTS", "64"))
NODES, NOT_READY, NAMES = 200, 100, 20_000
WARMUP_S = 2.0
SAMPLE_S = 5.0
GROWTH_TARGET = 0.10


class SlowClients:
    def __init__(self, port: int, count: int) -> None:
        self.port, self.stopping, self.opened = port, threading.Event(), 0
        self.threads = [threading.Thread(target=self._hold, daemon=True) for _ in range(count)]
        for t in self.threads:
            t.start()

    def _hold(self) -> None:
        while not self.stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    self.opened += 1
                    s.sendall(b"POST /api/v1/alerts HTTP/1.1\r\n")
                    while not self.stopping.wait(0.5):
                        s.sendall(b"X")
            except OSError:
                self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(5)


class HealthProbe:
    """GET /healthz once a second on a new connection; the seconds each answer took (a
    failure or a non-200 answer is counted apart)."""

    def __init__(self, port: int) -> None:
        self.port, self.stopping = port, threading.Event()
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._probe, daemon=True)
        self.thread.start()

    def _probe(self) -> None:
        while not self.stopping.wait(1.0):
            start = time.perf_counter()
            try:
                status, _ = get(self.port, "/healthz")
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__} after {time.perf_counter() - start:.1f}s")
                continue
            if status != 200:
                self.failures.append(f"status {status}")
            else:
                self.seconds.append(time.perf_counter() - start)

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.thread.join(15)
        ms = sorted(x * 1000 for x in self.seconds)
        pick = (lambda q: round(ms[min(len(ms) - 1, max(0, round(q * len(ms)) - 1))], 1)) if ms else (
            lambda q: float("nan"))
        return {"probes": len(ms) + len(self.failures), "answered_200": len(ms),
                "failures": len(self.failures), "failure_kinds": sorted(set(self.failures))[:10],
                "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(ms[-1], 1) if ms else None}


def log_counts(path: Path) -> dict[str, Any]:
    """Lines of the webhook's whole log by kind (read line by line: it can be large),
    and how many of each error or warning message (its first 60 characters)."""
    counts: dict[str, Any] = {"lines": 0, "error": 0, "warning": 0, "tracebacks": 0}
    kinds: Counter[str] = Counter()
    with path.open("rb") as log:
        for raw in log:
            counts["lines"] += 1
            level = ("error" if b'"level":"error"' in raw or b"[ERROR]" in raw else
                     "warning" if b'"level":"warning"' in raw or b"[WARNING]" in raw else "")
            if level:
                counts[level] += 1
                kinds[f"{level}: {_message(raw)[:60]}"] += 1
            if raw.startswith(b"Traceback"):
                counts["tracebacks"] += 1
    counts["kinds"] = dict(kinds.most_common(20))
    return counts


def _message(raw: bytes) -> str:
    line = raw.decode(errors="replace").strip()
    try:
        return str(json.loads(line).get("msg", line))
    except ValueError:
        return line.split("] ", 3)[-1]  # gunicorn's own: "[time] [pid] [LEVEL] message"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def received(port: int) -> float:
    """Alerts the webhook counted (all workers), from /metrics."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith("nodewarden_webhook_alerts_received_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def names() -> list[str]:
    return [f"node-{i}" for i in range(1, NODES + 1)] + [
        f"gone-{i}" for i in range(NAMES - NODES)
    ]


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nodewarden-soak-") as tmp:
        work = Path(tmp)
        with api_server(work / "api", NODES, NOT_READY) as api, \
                gunicorn("webhook", "webhook.wsgi:app", work / "webhook", api.kubeconfig) as server:
            slow = SlowClients(server.port, SLOW_CLIENTS)
            time.sleep(1.0)
            load_at_start = load_average()
            load = Load.start(mode="open", port=server.port, nodes=names(), rate=RATE,
                              warmup_s=WARMUP_S, duration_s=SOAK_S)
            load.wait_measuring()
            health = HealthProbe(server.port)
            cpu = CpuWindow({"webhook": server.pids(), "api_server": [api.proc.pid],
                             "slow_clients_and_probe": [os.getpid()]})
            busy0, began = machine_busy_s(), time.monotonic()
            samples: list[tuple[float, float]] = []
            pss: list[float] = []
            while load.proc.poll() is None:
                pids = [server.proc.pid, *children(server.proc.pid)]
                try:
                    samples.append((time.monotonic() - began, sum(rss_mib(p) for p in pids)))
                    pss.append(sum(pss_mib(p) for p in pids))
                except (OSError, RuntimeError):
                    pass
                time.sleep(SAMPLE_S)
            result = load.result()
            cores = cpu.stop({"load_generator": result["client_cpu_s"] / result["client_wall_s"]})
            busy = (machine_busy_s() - busy0) / (time.monotonic() - began)
            load_at_end = load_average()
            healthz = health.stop()
            time.sleep(1.0)
            counted = received(server.port)
            slow.stop()
            log = log_counts(server.log)
    sent = int((WARMUP_S + SOAK_S) * RATE)
    quarter = [m for t, m in samples if t <= SOAK_S / 4] or [samples[0][1]]
    base, end = quarter[-1], samples[-1][1]
    growth = (end - base) / base
    statuses, warmup = result["statuses"], result["warmup_statuses"]
    answered = statuses.get("200", 0) + warmup.get("200", 0)
    lost = sent - int(counted)
    data = {
        "seconds": SOAK_S, "rate_per_s": RATE, "slow_clients": SLOW_CLIENTS,
        "slow_connections_opened": slow.opened, "node_names": NAMES,
        "sent": sent, "answered_200": answered, "statuses": statuses, "warmup_statuses": warmup,
        "connection_errors": result["errors"], "alerts_counted_by_webhook": int(counted),
        "lost": lost,
        "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "max_ms": result["max_ms"],
        "p99_ms_by_30s": result["p99_ms_by_window"], "peak_posts_in_flight": result["peak_in_flight"],
        "connections_opened_by_load": result["connections_opened"],
        "healthz": healthz,
        "rss_mib": {"start": round(samples[0][1], 1), "after_first_quarter": round(base, 1),
                    "end": round(end, 1), "max": round(max(m for _, m in samples), 1),
                    "growth": round(growth, 4),
                    "samples": [[round(t), round(m, 1)] for t, m in samples]},
        # What the pod's memory limit counts: each shared page once (bench/common.py).
        "pss_mib": {"start": round(pss[0], 1) if pss else None, "end": round(pss[-1], 1) if pss else None,
                    "max": round(max(pss), 1) if pss else None},
        "machine_busy_cores": round(busy, 2),
        # Cores each part used over the run; "unattributed": other tenants of the machine.
        "cpu_cores": cores,
        "load_average": {"start": load_at_start, "end": load_at_end},
        "log": log,
    }
    data["targets"] = {
        "rss_mib.growth": f"< {GROWTH_TARGET:.0%} from the first quarter to the end",
        "lost": "0 (every alert answered 200 and counted)",
    }
    data["targets"]["healthz"] = "answered 200 to every probe"
    data["met"] = {
        "rss_mib.growth": growth < GROWTH_TARGET,
        "lost": lost == 0 and result["errors"] == 0 and answered == sent
        and set(statuses) | set(warmup) == {"200"},
        "healthz": healthz["failures"] == 0 and healthz["answered_200"] > 0,
    }
    return data


def run() -> dict[str, Any]:
    data = measure()
    write_result("webhook_soak", data)
    return data


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
