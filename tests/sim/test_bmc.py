"""The emulated BMCs, driven by the real ClusterLabs fence agents from Debian's
fence-agents package: what fence_ipmilan and fence_redfish see and do must be what the
simulated machine is and undergoes."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from sim.bmc.fleet import BmcOptions
from sim.world.cluster import Cluster
from sim.world.nodes import Power

pytestmark = pytest.mark.skipif(not (shutil.which("fence_ipmilan") and shutil.which("fence_redfish")),
                                reason="Debian's fence-agents package is not installed (make debs)")

USERS = {"admin": "s3cret-bmc"}


def run_agent(agent: str, address: str, action: str, password: str = "s3cret-bmc",
              extra: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the agent with its options on stdin, as the controller does (no secret in argv)."""
    host, port = address.rsplit(":", 1)
    options = {"action": action, "ip": host, "ipport": port, "username": "admin", "password": password,
               "power_timeout": "5", "login_timeout": "3", **(extra or {})}
    if agent == "fence_ipmilan":
        options.update(lanplus="1", cipher="3")
    return subprocess.run([agent], input="".join(f"{k}={v}\n" for k, v in options.items()), text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def cluster(make_cluster: Any) -> Cluster:
    c: Cluster = make_cluster(nodes=2, time_scale=0.05, bmcs=BmcOptions(users=USERS))
    return c


def redfish_extra(c: Cluster) -> dict[str, str]:
    assert c.bmcs is not None
    return {"ssl": "1"}


@pytest.mark.parametrize("agent", ["fence_ipmilan", "fence_redfish"])
def test_status_off_on_follow_the_simulated_machine(cluster: Cluster, agent: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.bmcs is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cluster.bmcs.ca_file))  # fence_redfish verifies TLS
    address = (cluster.bmcs.ipmi if agent == "fence_ipmilan" else cluster.bmcs.redfish)["node-1"].address

    status = run_agent(agent, address, "status")
    assert status.returncode == 0, status.stderr
    assert "Status: ON" in status.stdout

    off = run_agent(agent, address, "off")
    assert off.returncode == 0, off.stderr
    assert cluster.nodes["node-1"].power is Power.OFF
    assert cluster.nodes["node-2"].power is Power.RUNNING  # one BMC, one machine
    assert run_agent(agent, address, "status").stdout.strip().endswith("Status: OFF")
    assert any(e.kind == "node-power" and e.node == "node-1" and "BMC" in e.detail
               for e in cluster.timeline.events())

    boot_before = cluster.nodes["node-1"].boot_id
    on = run_agent(agent, address, "on")
    assert on.returncode == 0, on.stderr
    assert cluster.nodes["node-1"].power is not Power.OFF
    assert cluster.nodes["node-1"].boot_id != boot_before  # a new boot, as after a real power-on


@pytest.mark.parametrize("agent", ["fence_ipmilan", "fence_redfish"])
def test_a_wrong_password_is_refused_and_nothing_is_pressed(cluster: Cluster, agent: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.bmcs is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cluster.bmcs.ca_file))
    address = (cluster.bmcs.ipmi if agent == "fence_ipmilan" else cluster.bmcs.redfish)["node-1"].address
    off = run_agent(agent, address, "off", password="wrong")
    assert off.returncode != 0
    assert cluster.nodes["node-1"].power is Power.RUNNING
    assert "wrong" not in off.stdout + off.stderr


@pytest.mark.parametrize("agent", ["fence_ipmilan", "fence_redfish"])
def test_an_unreachable_bmc_answers_nothing(cluster: Cluster, agent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.bmcs is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cluster.bmcs.ca_file))
    address = (cluster.bmcs.ipmi if agent == "fence_ipmilan" else cluster.bmcs.redfish)["node-1"].address
    cluster.bmcs.set_reachable("node-1", False)
    off = run_agent(agent, address, "off")
    assert off.returncode != 0
    assert cluster.nodes["node-1"].power is Power.RUNNING
    cluster.bmcs.set_reachable("node-1", True)
    assert run_agent(agent, address, "status").returncode == 0
