"""Load generators and CPU accounting for the webhook benchmark: a closed loop (keep-alive
connections posting as fast as answered) and an open loop (each post due at its scheduled
time, latency counted from then, so a slow answer cannot hide the ones queued behind it),
run in a child process of their own (`Load`) with prebuilt requests; and the CPU time of
each process group and of the whole machine over the measured window (`CpuWindow`).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import cpu_seconds
from .webhook_servers import ROOT, message, raw_post

# -- CPU accounting ----------------------------------------------------------------------------


def machine_busy_s() -> float:
    """CPU seconds every core of the machine spent not idle, since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def group_cpu_s(pids: list[int]) -> float:
    """CPU seconds used by these processes so far (those that exited count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError):
            pass
    return total


class CpuWindow:
    """CPU used by named groups of processes over a window, and by the whole machine."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = {name: group_cpu_s(pids) for name, pids in groups.items()}
        self.machine0, self.t0 = machine_busy_s(), time.monotonic()

    def stop(self, extra_cores: dict[str, float] | None = None) -> dict[str, float]:
        """Cores used per group (CPU seconds / wall seconds); `extra_cores` adds groups
        measured elsewhere (the load generator measures itself)."""
        wall = time.monotonic() - self.t0
        out = {name: (group_cpu_s(pids) - self.start[name]) / wall for name, pids in self.groups.items()}
        out.update(extra_cores or {})
        machine = (machine_busy_s() - self.machine0) / wall
        out["machine"] = machine
        # What no group accounts for: other tenants of the machine, and kernel work (such
        # as loopback networking) that no process is charged for.
        out["unattributed"] = max(0.0, machine - sum(v for k, v in out.items() if k != "machine"))
        return {k: round(v, 2) for k, v in out.items()}


# -- the load generator, in a process of its own -----------------------------------------------


class Conn:
    """A keep-alive HTTP/1.1 connection that sends prebuilt requests and reads answers
    with a Content-Length (what gunicorn sends for Flask's responses)."""

    def __init__(self, port: int, sel: selectors.BaseSelector) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sel = sel
        self.buf = b""
        self.scheduled = self.sent = self.done_at = 0.0
        self.busy = False
        sel.register(self.sock, selectors.EVENT_READ, self)

    def send(self, data: bytes, scheduled: float) -> None:
        self.scheduled, self.sent, self.busy, self.buf = scheduled, time.perf_counter(), True, b""
        self.sock.sendall(data)

    def read(self) -> int | None:
        """The status once the answer is complete; None while incomplete; -1 on EOF or
        a reset (counted as an error by the caller, never a crash of the generator)."""
        try:
            chunk = self.sock.recv(262144)
        except OSError:
            return -1
        if not chunk:
            return -1
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n")[1:]:
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if len(self.buf) < end + 4 + length:
            return None
        self.busy, self.done_at = False, time.perf_counter()
        return int(head.split(" ", 2)[1])

    def close(self) -> None:
        self.sel.unregister(self.sock)
        self.sock.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _announce() -> None:
    """Tell the parent that the measured window starts (it starts its CPU accounting)."""
    sys.stdout.write("measuring\n")
    sys.stdout.flush()


def closed_loop(port: int, requests: list[bytes], connections: int, warmup_s: float,
                duration_s: float) -> dict[str, Any]:
    """Every connection sends its next request as soon as the answer arrives.

    Connections open one at a time, 10 ms apart, while the earlier ones already carry
    load: gunicorn's workers race to accept, and a burst of connections made at once
    can all land on one worker (one core's worth of Python), which halves a round's
    throughput at random. A worker that is busy accepts later, so a ramp spreads them."""
    sel = selectors.DefaultSelector()
    conns: list[Conn] = []
    statuses: Counter[int] = Counter()
    counter = done = errors = 0
    start = time.perf_counter()
    measure_from, end = start + warmup_s, start + warmup_s + duration_s
    next_open = start
    announced = False
    while len(conns) < connections or any(c.busy for c in conns):
        now = time.perf_counter()
        if len(conns) < connections and now >= next_open and now < end:
            conn = Conn(port, sel)
            conns.append(conn)
            conn.send(requests[counter % len(requests)], now)
            counter += 1
            next_open = now + 0.01
        elif len(conns) < connections and now >= end:
            connections = len(conns)
        if not announced and now >= measure_from:
            _announce()
            announced = True
        wait = max(0.0, min(0.1, next_open - now)) if len(conns) < connections else 0.1
        for key, _ in sel.select(timeout=wait):
            conn = key.data
            status = conn.read()
            if status is None:
                continue
            now = time.perf_counter()
            if status < 0:  # the server closed the connection: open another
                errors += 1
                conn.close()
                conns.remove(conn)
                if now < end:
                    conn = Conn(port, sel)
                    conns.append(conn)
                    conn.send(requests[counter % len(requests)], now)
                    counter += 1
                continue
            if measure_from <= now <= end:
                done += 1
                statuses[status] += 1
            if now < end:
                conn.send(requests[counter % len(requests)], now)
                counter += 1
    for conn in conns:
        conn.close()
    return {"requests": done, "seconds": duration_s, "per_s": done / duration_s,
            "statuses": {str(k): v for k, v in statuses.items()}, "reconnects": errors}


WINDOW_S = 30.0  # the open loop's p99 is also reported per window of this many seconds


def open_loop(port: int, requests: list[bytes], rate: float, warmup_s: float,
              duration_s: float) -> dict[str, Any]:
    """Request i is due at start + i/rate whatever happened before; a free keep-alive
    connection sends it (a new one is opened if none is free). Latency counts from the
    due time to the last byte of the answer; its p99 is also given per WINDOW_S of due
    time, and the most posts ever waiting for an answer at once."""
    sel = selectors.DefaultSelector()
    idle: list[Conn] = [Conn(port, sel) for _ in range(8)]
    busy: set[Conn] = set()
    latencies: list[float] = []
    service: list[float] = []
    statuses: Counter[int] = Counter()
    warmup_statuses: Counter[int] = Counter()  # answers to the warm-up's posts
    late: list[float] = []
    total = int((warmup_s + duration_s) * rate)
    warm = max(1, int(warmup_s * rate))
    start = time.perf_counter() + 0.05
    sent = errors = opened = 0
    announced = False
    index_of: dict[Conn, int] = {}
    by_window: dict[int, list[float]] = {}  # WINDOW_S of due time -> latencies in it
    peak_in_flight = 0
    while sent < total or busy:
        now = time.perf_counter()
        if sent >= warm and not announced:
            _announce()
            announced = True
        while sent < total and start + sent / rate <= now:
            due = start + sent / rate
            conn = None
            while idle:
                candidate = idle.pop()  # most recently used first: the others may time out
                if now - candidate.done_at < 3.0:
                    conn = candidate
                    break
                candidate.close()
            try:
                if conn is None:
                    conn = Conn(port, sel)
                    opened += 1
                conn.send(requests[sent % len(requests)], due)
            except OSError:  # refused or reset: an error, and the post counts as sent
                errors += 1
                sent += 1
                if conn is not None:
                    conn.close()
                continue
            late.append(conn.sent - due)
            index_of[conn] = sent
            busy.add(conn)
            peak_in_flight = max(peak_in_flight, len(busy))
            sent += 1
        timeout = max(0.0, start + sent / rate - time.perf_counter()) if sent < total else 1.0
        for key, _ in sel.select(timeout=timeout):
            conn = key.data
            status = conn.read()
            if status is None:
                continue
            if status < 0:
                if conn in busy:
                    errors += 1
                    busy.discard(conn)
                else:
                    idle.remove(conn)
                conn.close()
                continue
            busy.discard(conn)
            idle.append(conn)
            if index_of[conn] >= warm:
                latencies.append(conn.done_at - conn.scheduled)
                window = int((conn.scheduled - start) // WINDOW_S)
                by_window.setdefault(window, []).append((conn.done_at - conn.scheduled) * 1000)
                service.append(conn.done_at - conn.sent)
                statuses[status] += 1
            else:
                warmup_statuses[status] += 1
    for conn in idle:
        conn.close()
    ms = [x * 1000 for x in latencies]
    return {"requests": len(latencies), "rate_per_s": rate, "seconds": duration_s,
            "p50_ms": _percentile(ms, 0.50), "p90_ms": _percentile(ms, 0.90),
            "p99_ms": _percentile(ms, 0.99), "max_ms": max(ms) if ms else float("nan"),
            "mean_ms": statistics.fmean(ms) if ms else float("nan"),
            "service_p99_ms": _percentile([x * 1000 for x in service], 0.99),
            "client_late_p99_ms": _percentile([x * 1000 for x in late], 0.99),
            "connections_opened": opened, "errors": errors, "peak_in_flight": peak_in_flight,
            "p99_ms_by_window": [round(_percentile(by_window[w], 0.99), 1) for w in sorted(by_window)],
            "statuses": {str(k): v for k, v in statuses.items()},
            "warmup_statuses": {str(k): v for k, v in warmup_statuses.items()}}


def load_child() -> None:
    """Reads a spec (JSON) on stdin, prints the result (JSON) with the client's CPU."""
    spec = json.loads(sys.stdin.read())
    port = spec["port"]
    requests = [raw_post(port, json.dumps(message([node])).encode()) for node in spec["nodes"]]
    cpu0, t0 = cpu_seconds(), time.monotonic()
    if spec["mode"] == "closed":
        result = closed_loop(port, requests, spec["connections"], spec["warmup_s"], spec["duration_s"])
    else:
        result = open_loop(port, requests, spec["rate"], spec["warmup_s"], spec["duration_s"])
    result["client_cpu_s"] = cpu_seconds() - cpu0
    result["client_wall_s"] = time.monotonic() - t0
    print(json.dumps(result))


@dataclass
class Load:
    """A load generator process started in the background."""

    proc: subprocess.Popen[str]
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, **spec: Any) -> Load:
        proc = subprocess.Popen([sys.executable, "-c", "from bench.webhook_load import load_child; load_child()"],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        proc.stdin.write(json.dumps(spec))  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
        return cls(proc)

    def wait_measuring(self) -> None:
        """Until the warm-up is over."""
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "measuring":
            raise RuntimeError(f"the load generator failed: {line!r}")

    def result(self) -> dict[str, Any]:
        out = self.proc.stdout.read()  # type: ignore[union-attr]
        if self.proc.wait() != 0:
            raise RuntimeError("the load generator failed")
        data: dict[str, Any] = json.loads(out)
        return data


def measured(load: Load, groups: Callable[[], dict[str, list[int]]]) -> dict[str, Any]:
    """Run `load`, measuring CPU over its measured window (after its warm-up). The
    processes of each group are listed when the window opens: a gunicorn worker that
    booted after the server first answered is counted too."""
    load.wait_measuring()
    window = CpuWindow(groups())
    result = load.result()
    result["cpu_cores"] = window.stop({"load_generator": result["client_cpu_s"] / result["client_wall_s"]})
    return result


# -- the scenarios ---------------------------------------------------------------------------
