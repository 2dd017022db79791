"""The peer network: every node's agent reaches the other agents through an HTTP proxy
the simulator runs for that node (its HTTP_PROXY), so a partition can cut a node off
from its peers below the product's code. A request is blocked when its source or its
destination node is partitioned from peers; blocked traffic is dropped (held without an
answer until the client gives up) or refused (reset), as configured.

Plain-HTTP peer requests arrive in absolute form (`GET http://host:port/path`); HTTPS ones
as `CONNECT host:port`. Either way the bytes are relayed unchanged.
"""

from __future__ import annotations

import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sim.network")
HOLD_S = 120.0


class PeerNetwork:
    def __init__(self, blocked: Callable[[str, str], bool], resolve: Callable[[str], str | None],
                 mode: Callable[[], str], host: str = "127.0.0.1") -> None:
        """blocked(src_node, dst_node) decides; resolve("host:port") names the node there."""
        self.blocked = blocked
        self.resolve = resolve
        self.mode = mode
        self.host = host
        self._servers: dict[str, socketserver.ThreadingTCPServer] = {}
        self.stopping = threading.Event()

    def proxy_for(self, source: str) -> str:
        """Start (once) and return the proxy URL for traffic from `source`."""
        if source not in self._servers:
            network = self

            class Handler(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    network._handle(source, self.request)

            server = socketserver.ThreadingTCPServer((self.host, 0), Handler)
            server.daemon_threads = True
            server.allow_reuse_address = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                             name=f"proxy-{source}", daemon=True).start()
            self._servers[source] = server
        port = self._servers[source].server_address[1]
        return f"http://{self.host}:{port}"

    def stop(self) -> None:
        self.stopping.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def _handle(self, source: str, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        header, _, rest = head.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return
        if method == "CONNECT":
            address, path = target, None
        elif target.startswith("http://"):
            hostport, _, tail = target[len("http://"):].partition("/")
            address, path = hostport, "/" + tail
        else:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        destination = self.resolve(address) or ""
        if self.blocked(source, destination):
            self._block(client)
            return
        host, _, port = address.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            if path is None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                kept = [ln for ln in lines[1:] if not ln.lower().startswith(("proxy-", "connection:"))]
                request = f"{method} {path} {version}\r\n" + "\r\n".join(kept) + "\r\nConnection: close\r\n\r\n"
                upstream.sendall(request.encode("latin-1") + rest)
            self._relay(source, destination, client, upstream)

    def _relay(self, source: str, destination: str, a: socket.socket, b: socket.socket) -> None:
        poller = select.poll()  # not select(): it fails on descriptors above 1023
        by_fd = {a.fileno(): (a, b), b.fileno(): (b, a)}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while not self.stopping.is_set():
            if self.blocked(source, destination):
                return  # cut mid-connection: the partition started
            for fd, _event in poller.poll(500):
                sock, other = by_fd[fd]
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                other.sendall(data)

    def _block(self, client: socket.socket) -> None:
        if self.mode() == "refuse":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        deadline = time.monotonic() + HOLD_S
        poller = select.poll()
        poller.register(client.fileno(), select.POLLIN)
        while time.monotonic() < deadline and not self.stopping.is_set():
            if poller.poll(500):
                try:
                    if not client.recv(4096):
                        return
                except OSError:
                    return
