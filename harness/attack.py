"""Attackers without credentials, for world tests and measurements of the agent's endpoint.

- `SlowClients`: `count` connections, each sending a request one byte every `interval_s`
  and never finishing it (mode "headers": an endless header block, a byte at a time;
  "body": a POST's whole head at once, announcing 16,000 bytes, then the body a byte at
  a time, the attack that held every request slot of the old server; "idle": nothing).
  A connection the server closes is opened again at once, so the pressure never lets up.
- `Flood`: unauthenticated requests as fast as one thread can send them, each on a new
  connection, answers read and counted.

Both run on one thread each (non-blocking sockets and `selectors`), so a test can hold
hundreds of connections without hundreds of threads of its own. `stats()` says what the
server did to them: connections made, closed by the server, answers received.
`attacking` runs both against several targets from a process of its own
(`python -m harness.attack`), as world tests need.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_HEADERS = b"POST /peer/v1/orders HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"
_BODY_HEAD = _HEADERS + b"Content-Length: 16000\r\n\r\n"
_FILLER = b"X-Filler: aaaaaaaaaaaaaaaa\r\n"


@dataclass
class _Slow:
    sock: socket.socket
    sent: int = 0
    connected: bool = False


@dataclass
class AttackStats:
    connects: int = 0
    closed_by_server: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # first status line seen, by status


def _payload(mode: str, index: int) -> bytes:
    """What to send from `index` of the never-ending request, one tick's worth."""
    if mode == "idle":
        return b""
    if mode == "body":
        return _BODY_HEAD if index == 0 else b"["
    if index < len(_HEADERS):
        return _HEADERS[index : index + 1]
    return _FILLER[(index - len(_HEADERS)) % len(_FILLER)].to_bytes(1, "big")


class SlowClients:
    def __init__(self, address: tuple[str, int], count: int, *, interval_s: float = 1.0,
                 mode: str = "headers", sources: tuple[str, ...] = ()) -> None:
        """`sources`: local addresses to connect from, in turn (127.x.y.z on loopback), so
        the connections look like many clients; none: the system's choice."""
        if mode not in ("headers", "body", "idle"):
            raise ValueError(f"unknown mode {mode!r}")
        self.address = address
        self.count = count
        self.interval_s = interval_s
        self.mode = mode
        self.sources = sources
        self._opened = 0
        self._stats = AttackStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> SlowClients:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def stats(self) -> AttackStats:
        with self._lock:
            return AttackStats(self._stats.connects, self._stats.closed_by_server, Counter(self._stats.answers))

    def _open(self, sel: selectors.BaseSelector) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.sources:
            sock.bind((self.sources[self._opened % len(self.sources)], 0))
        self._opened += 1
        sock.setblocking(False)
        sock.connect_ex(self.address)
        sel.register(sock, selectors.EVENT_READ, _Slow(sock))
        with self._lock:
            self._stats.connects += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(sel)
        next_byte = time.monotonic()
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=max(0.0, min(0.2, next_byte - time.monotonic()))):
                    slow: _Slow = key.data
                    try:
                        data = slow.sock.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        status = data.split(b"\r\n", 1)[0].split(b" ")
                        with self._lock:
                            self._stats.answers[status[1].decode() if len(status) > 1 else "?"] += 1
                        continue
                    sel.unregister(slow.sock)
                    slow.sock.close()
                    with self._lock:
                        self._stats.closed_by_server += 1
                    if not self._stop.is_set():
                        self._open(sel)
                if time.monotonic() >= next_byte:
                    next_byte = time.monotonic() + self.interval_s
                    for key in list(sel.get_map().values()):
                        slow = key.data
                        chunk = _payload(self.mode, slow.sent)
                        if not chunk:
                            continue
                        try:
                            slow.sock.sendall(chunk)
                            slow.sent += len(chunk)
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            pass  # closed: the read side sees it and reconnects
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()


class Flood:
    """Unauthenticated `GET /peer/v1/health` requests, one per connection, back to back."""

    def __init__(self, address: tuple[str, int], *, pause_s: float = 0.0, source: str | None = None) -> None:
        self.address = address
        self.source = source
        self.pause_s = pause_s
        self._stats = AttackStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def stats(self) -> AttackStats:
        with self._lock:
            return AttackStats(self._stats.connects, self._stats.closed_by_server, Counter(self._stats.answers))

    def _run(self) -> None:
        request = b"GET /peer/v1/health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"
        while not self._stop.is_set():
            try:
                source = (self.source, 0) if self.source else None
                with socket.create_connection(self.address, timeout=2.0, source_address=source) as sock:
                    sock.sendall(request)
                    data = sock.recv(4096)
                status = data.split(b"\r\n", 1)[0].split(b" ")
                with self._lock:
                    self._stats.connects += 1
                    self._stats.answers[status[1].decode() if len(status) > 1 else "?"] += 1
            except OSError:
                with self._lock:
                    self._stats.closed_by_server += 1
            if self.pause_s:
                time.sleep(self.pause_s)


@contextmanager
def attacking(addresses: list[str], *, modes: str = "headers:200:1,body:40:2", flood_pause_s: float = 0.01,
              sources: int = 60) -> Iterator[subprocess.Popen[bytes]]:
    """Slow clients (`modes`: comma-separated mode:count:interval_s, per target) and a
    flood against every `host:port`, from a process of their own (an attacker is another
    machine: it must not share the simulator's interpreter)."""
    args = [sys.executable, "-m", "harness.attack", "--modes", modes, "--flood-pause", str(flood_pause_s),
            "--sources", str(sources), *addresses]
    proc = subprocess.Popen(args, cwd=Path(__file__).resolve().parents[1])
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="slow clients and a flood against agents' peer ports")
    parser.add_argument("targets", nargs="+", help="host:port")
    parser.add_argument("--modes", default="headers:200:1,body:40:2",
                        help="comma-separated mode:count:interval_s per target (mode: headers, body, idle)")
    parser.add_argument("--flood-pause", type=float, default=0.01, help="seconds between flood requests; <0: none")
    parser.add_argument("--sources", type=int, default=60, help="loopback source addresses to spread over")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sources = tuple(f"127.0.{i // 200 + 1}.{i % 200 + 1}" for i in range(args.sources))
    with ExitStack() as stack:
        for target in args.targets:
            host, _, port = target.rpartition(":")
            for spec in args.modes.split(","):
                mode, count, interval = spec.split(":")
                stack.enter_context(SlowClients((host, int(port)), int(count), interval_s=float(interval),
                                                mode=mode, sources=sources))
            if args.flood_pause >= 0:
                stack.enter_context(Flood((host, int(port)), pause_s=args.flood_pause, source="127.0.3.3"))
        stop.wait()


if __name__ == "__main__":
    main()
