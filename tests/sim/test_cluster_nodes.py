"""Per-node machinery: watchdog devices with Linux semantics, per-node processes (the
agent) restarted on boot and killed on power-off, and the peer network's partitions."""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest
import requests

from harness.waits import ready
from sim.world.cluster import Cluster

SCALE = 0.02
WDIOC_SETTIMEOUT = 0xC0045706


def open_watchdog(cluster: Cluster, node: str) -> int:
    return os.open(cluster.watchdogs[node].path, os.O_WRONLY)


def test_watchdog_opened_and_not_fed_resets_the_node(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE, watchdogs=True)
    boot = cluster.node_state("node-1")["bootId"]
    t0 = cluster.clock()
    fd = open_watchdog(cluster, "node-1")  # arms it
    try:
        with pytest.raises(OSError):  # a FIFO answers ENOTTY to watchdog ioctls
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", 10))
        fired = cluster.wait_for(lambda: cluster.timeline.first("watchdog-fired", "node-1", since=t0), 5,
                                 message="watchdog fired")
        assert 60.0 <= (fired.at - t0) / SCALE <= 60.0 + 15.0  # softdog's 60 s margin
        assert cluster.node_state("node-1")["power"] == "Off"
    finally:
        os.close(fd)
    cluster.wait_for(lambda: cluster.node_state("node-1")["power"] == "Running", 5, message="reboot")
    state = cluster.node_state("node-1")
    assert state["bootId"] != boot and state["resets"] == 1


def test_feeding_keeps_the_node_up_and_magic_close_disarms(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE, watchdogs=True)
    fd = open_watchdog(cluster, "node-1")
    deadline = time.monotonic() + 150 * SCALE  # 2.5 watchdog timeouts
    while time.monotonic() < deadline:
        os.write(fd, b"\0")
        time.sleep(10 * SCALE)
    os.write(fd, b"V")
    os.close(fd)
    time.sleep(100 * SCALE)
    assert cluster.timeline.first("watchdog-fired", "node-1") is None
    assert cluster.timeline.first("watchdog-disarmed", "node-1") is not None
    assert cluster.node_state("node-1")["resets"] == 0


def test_closing_without_the_magic_character_leaves_it_armed(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE, watchdogs=True)
    fd = open_watchdog(cluster, "node-1")
    os.write(fd, b"\0")
    os.close(fd)  # e.g. the agent crashed
    cluster.wait_for(lambda: cluster.timeline.first("watchdog-fired", "node-1"), 5, message="fired anyway")
    assert cluster.timeline.first("watchdog-unclosed", "node-1") is not None


AGENT = (f"{sys.executable} -c \"import http.server, sys; h, p = sys.argv[1].rsplit(':', 1); "
         "http.server.ThreadingHTTPServer((h, int(p)), http.server.SimpleHTTPRequestHandler).serve_forever()\" "
         "{address}")


def fetch(proxy: str, address: str, timeout: float = 2.0) -> int:
    response = requests.get(f"http://{address}/", proxies={"http": proxy}, timeout=timeout)
    return response.status_code


def test_agent_processes_and_peer_partitions(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=3, time_scale=SCALE, agent_cmd=AGENT, partition_mode="refuse")
    a1, a2 = cluster.nodes["node-1"].address, cluster.nodes["node-2"].address
    assert a1 != a2 and a1.startswith("127.77.")
    proxy1 = cluster.peer_proxy("node-1")
    cluster.wait_for(lambda: _reachable(proxy1, a2), 10, message="agent on node-2 serving")
    cluster.wait_for(lambda: _reachable(cluster.peer_proxy("external"), a1), 10, message="agent on node-1")
    # partitioned from peers: both directions are cut, the API is not
    cluster.fault("partition", "node-2", from_="peers")
    assert not _reachable(proxy1, a2)
    assert not _reachable(cluster.peer_proxy("node-2"), a1)
    assert _reachable(cluster.peer_proxy("node-3"), a1)
    time.sleep(60 * SCALE)
    assert ready(cluster, "node-2") == "True"
    cluster.fault("heal", "node-2")
    assert _reachable(proxy1, a2)
    # the agent dies with its machine and comes back on boot, with a new process
    first_pid = cluster.processes["node-2"].pid
    cluster.fault("power-off", "node-2")
    assert not cluster.processes["node-2"].running
    assert not _reachable(proxy1, a2)
    cluster.fault("power-on", "node-2")
    cluster.wait_for(lambda: _reachable(proxy1, a2), 10, message="agent back after boot")
    assert cluster.processes["node-2"].pid != first_pid
    assert cluster.processes["node-2"].starts == 2


def test_proxy_environment_reaches_the_process(make_cluster: Callable[..., Cluster]) -> None:
    script = (f"{sys.executable} -c \"import os; open(os.path.join('{{workdir}}', 'env-{{node}}'), 'w')"
              ".write(os.environ['HTTP_PROXY'] + ' ' + os.environ['NO_PROXY'])\"")
    cluster = make_cluster(nodes=1, time_scale=SCALE, agent_cmd=script)
    path = cluster.workdir / "env-node-1"
    cluster.wait_for(path.exists, 5, message="process wrote its environment")
    proxy, no_proxy = path.read_text().split(" ")
    assert proxy == cluster.peer_proxy("node-1")
    assert "127.0.0.1" in no_proxy.split(",")


def _reachable(proxy: str, address: str) -> bool:
    try:
        return fetch(proxy, address, timeout=1.0) == 200
    except (requests.RequestException, urllib.error.URLError):
        return False
