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
- nothing lost: every post answered 200, no connection error, and the webhook counted
  (`nodewarden_webhook_alerts_received_total`) every alert sent;
- p99 latency reported (and p50, max), with the CPU the machine spent otherwise.
Writes `bench/results/webhook_soak.json`.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import rss_mib, write_result
from .webhook import Load, api_server, children, gunicorn, machine_busy_s

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
            load = Load.start(mode="open", port=server.port, nodes=names(), rate=RATE,
                              warmup_s=WARMUP_S, duration_s=SOAK_S)
            load.wait_measuring()
            busy0, began = machine_busy_s(), time.monotonic()
            samples: list[tuple[float, float]] = []
            while load.proc.poll() is None:
                pids = [server.proc.pid, *children(server.proc.pid)]
                try:
                    samples.append((time.monotonic() - began, sum(rss_mib(p) for p in pids)))
                except (OSError, RuntimeError):
                    pass
                time.sleep(SAMPLE_S)
            result = load.result()
            busy = (machine_busy_s() - busy0) / (time.monotonic() - began)
            time.sleep(1.0)
            counted = received(server.port)
            slow.stop()
            log_tail = server.log.read_text()[-20000:]
    sent = int((WARMUP_S + SOAK_S) * RATE)
    quarter = [m for t, m in samples if t <= SOAK_S / 4] or [samples[0][1]]
    base, end = quarter[-1], samples[-1][1]
    growth = (end - base) / base
    statuses = result["statuses"]
    lost = sent - int(counted)
    data = {
        "seconds": SOAK_S, "rate_per_s": RATE, "slow_clients": SLOW_CLIENTS,
        "slow_connections_opened": slow.opened, "node_names": NAMES,
        "sent": sent, "answered_200": statuses.get("200", 0), "statuses": statuses,
        "connection_errors": result["errors"], "alerts_counted_by_webhook": int(counted),
        "lost": lost,
        "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "max_ms": result["max_ms"],
        "rss_mib": {"after_first_quarter": round(base, 1), "end": round(end, 1),
                    "max": round(max(m for _, m in samples), 1), "growth": round(growth, 4),
                    "samples": [[round(t), round(m, 1)] for t, m in samples]},
        "machine_busy_cores": round(busy, 2),
        "errors_in_log": len(re.findall(r'"level":"error"', log_tail)),
    }
    data["targets"] = {
        "rss_mib.growth": f"< {GROWTH_TARGET:.0%} from the first quarter to the end",
        "lost": "0 (every alert answered 200 and counted)",
    }
    data["met"] = {
        "rss_mib.growth": growth < GROWTH_TARGET,
        "lost": lost == 0 and result["errors"] == 0 and set(statuses) == {"200"},
    }
    return data


def run() -> dict[str, Any]:
    data = measure()
    write_result("webhook_soak", data)
    return data


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
