"""The chaos suite's adversaries: what an attacker with another node's agent credential,
or with network access and no secret at all, does to a running world.

- `forge_status`: with another node's agent service-account token (the files the
  simulator mounts for that node's agent), write the fields of a node's NodeRemediation
  status that the controller reads: `agentReport` (lastFeedAt = the node's kubelet Lease
  renewTime, its bootId and watchdog timeout), or `phase: Fenced` with a satisfied
  `fence.evidence`, once a fence order is stored. Over HTTPS, as an agent would.
- `SlowClients`: connections that send a request a byte at a time and so hold a server's
  request slots (the agents' peer ports: a body one byte every 2 s; the webhook: headers).
- `Flood`: unauthenticated requests as fast as a few connections go.

Each returns or records what it did, for the run's report; none of them ever decides
whether the product behaved (the runner's judge does).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from sim.world.cluster import Cluster

MERGE_PATCH = "application/merge-patch+json"
REMEDIATIONS = "/apis/nodewarden.io/v1alpha1/noderemediations"
SLOW_BYTE_S = 2.0  # wall seconds between two bytes of a slow client (under the agents' 5 s read timeout)
AGENT_SLOW_CONNECTIONS = 40  # per agent: more than its 32 request slots
WEBHOOK_SLOW_CONNECTIONS = 16  # 2 gthread workers x 4 threads, twice over
FLOOD_CONNECTIONS = 4

Address = tuple[str, int]


def parse_address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


# -- forged status writes ------------------------------------------------------------------


@dataclass
class Credential:
    """A service account's token and the API server's CA, as mounted for a node's agent."""

    url: str
    token: str
    ca: Path

    @classmethod
    def of_agent(cls, cluster: Cluster, node: str) -> Credential:
        account = cluster.workdir / "nodes" / node / "serviceaccount"
        return cls(cluster.url, (account / "token").read_text().strip(), account / "ca.crt")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = MERGE_PATCH
        return requests.request(method, self.url + path, json=body, headers=headers, verify=str(self.ca), timeout=5)


def _fenced_body(now: float) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {"status": {"phase": "Fenced", "reason": "FenceProven", "message": "forged",
                       "fence": {"evidence": {"rule": "AgentHeartbeatStale", "satisfiedAt": stamp}}}}


def _report_body(cluster: Cluster, node: str) -> dict[str, Any] | str:
    """The forged report. Its inputs (the kubelet Lease's renewTime, the boot ID) are no
    secret: the attacker is assumed to know them even where its own credential may not
    read them, so they are read with the simulator's view."""
    lease = cluster.get("leases", node, "kube-node-lease", "coordination.k8s.io")
    obj = cluster.get("nodes", node)
    if lease is None or obj is None:
        return "could not read the node's Lease or Node"
    renew = (lease.get("spec") or {}).get("renewTime")
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    timeout = float((meta.get("annotations") or {}).get("nodewarden.io/watchdog-timeout-seconds") or 15.0)
    boot = (status.get("nodeInfo") or {}).get("bootID") or ""
    return {"status": {"agentReport": {"fenceStartedAt": renew, "lastFeedAt": renew,
                                       "watchdogTimeoutSeconds": timeout, "bootId": boot}}}


def forge_status(cluster: Cluster, node: str, by: str, kind: str, until: float,
                 remediation: Callable[[str], dict[str, Any] | None]) -> str:
    """Wait (until the wall time `until`) for `node`'s remediation to hold a fence order (a
    `Fenced` phase without one is refused by the controller, and an agent report is read
    only against one), then write the forgery with `by`'s agent credential. Returns what
    happened, for the report."""
    cred = Credential.of_agent(cluster, by)
    while time.time() < until:
        rem = remediation(node)
        status = (rem or {}).get("status") or {}
        ready = rem is not None and bool((status.get("fence") or {}).get("order"))
        if ready and status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
            return f"not written: the remediation ended ({status.get('phase')}) before an opening"
        if ready:
            body = _fenced_body(time.time()) if kind == "phase-fenced" else _report_body(cluster, node)
            if isinstance(body, str):
                return body
            answer = cred.request("PATCH", f"{REMEDIATIONS}/{node}/status", body)
            return (f"{by}'s agent credential wrote {kind} in phase {status.get('phase') or 'none'}: "
                    f"HTTP {answer.status_code}")
        time.sleep(0.02)
    return "not written: no remediation (with an order) before the node came back"


# -- slow clients and floods ---------------------------------------------------------------


@dataclass
class _Slow:
    address: Address
    sock: socket.socket | None = None
    next_at: float = 0.0


@dataclass
class SlowClients:
    """`per_target` connections to each address. `body`: a POST whose declared body comes
    a byte every SLOW_BYTE_S; `headers`: a request line, then header bytes as slowly. A
    connection the server closes is opened again (the attacker persists)."""

    addresses: list[Address]
    per_target: int
    kind: str = "body"  # body | headers
    opened: int = 0
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _open(self, conn: _Slow) -> None:
        host, port = conn.address
        try:
            sock = socket.create_connection(conn.address, timeout=1.0)
            if self.kind == "body":
                sock.sendall((f"POST /peer/v1/orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
                              "Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n{").encode())
            else:
                sock.sendall(f"POST /api/v1/alerts HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())
            conn.sock, conn.next_at = sock, time.monotonic() + SLOW_BYTE_S
            self.opened += 1
        except OSError:
            conn.sock, conn.next_at = None, time.monotonic() + 0.5
            self.refused += 1

    def _run(self) -> None:
        conns = [_Slow(a) for a in self.addresses for _ in range(self.per_target)]
        for conn in conns:
            self._open(conn)
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for conn in conns:
                if now < conn.next_at:
                    continue
                if conn.sock is None:
                    self._open(conn)
                    continue
                try:
                    conn.sock.sendall(b" " if self.kind == "body" else b"X")
                    conn.next_at = now + SLOW_BYTE_S
                except OSError:
                    conn.sock.close()
                    self._open(conn)
        for conn in conns:
            if conn.sock is not None:
                conn.sock.close()

    def start(self) -> SlowClients:
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> str:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return f"{self.opened} slow connection(s) opened, {self.refused} refused"


@dataclass
class Flood:
    """Unauthenticated requests, one connection each, from FLOOD_CONNECTIONS threads."""

    addresses: list[Address]
    path: str
    sent: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            host, port = rng.choice(self.addresses)
            try:
                with socket.create_connection((host, port), timeout=1.0) as sock:
                    sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                                 .encode())
                    sock.recv(256)
                ok = True
            except OSError:
                ok = False
                time.sleep(0.01)
            with self._lock:
                self.sent += ok
                self.failed += not ok

    def start(self) -> Flood:
        for i in range(FLOOD_CONNECTIONS):
            thread = threading.Thread(target=self._run, args=(random.Random(i),), name=f"flood-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> str:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        return f"{self.sent} unauthenticated request(s) answered, {self.failed} failed"
