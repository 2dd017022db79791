"""The controller's fence-agent runner against the emulated BMCs, with the real
fence_ipmilan and fence_redfish: a fence counts only when the power-off is confirmed,
every failure is told apart, and no credential appears in anything it returns."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from controller.fence_agent import FenceAgents, Outcome, RawRun, classify
from core.fence_inventory import FenceInventory, parse_inventory
from sim.bmc.fleet import BmcOptions
from sim.world.cluster import Cluster
from sim.world.nodes import Power

PASSWORD = "s3cret-bmc-pw"

needs_agents = pytest.mark.skipif(not (shutil.which("fence_ipmilan") and shutil.which("fence_redfish")),
                                  reason="Debian's fence-agents package is not installed (make debs)")


def inventory(cluster: Cluster, tmp: Path, agent: str, *, secret: str = "bmc", timeout: str = "30s",
              retries: int = 1) -> FenceInventory:
    assert cluster.bmcs is not None
    creds = tmp / "creds"
    for name, password in (("bmc", PASSWORD), ("bmc-wrong", "not-the-password")):
        (creds / name).mkdir(parents=True, exist_ok=True)
        (creds / name / "username").write_text("admin\n")
        (creds / name / "password").write_text(password + "\n")
    bmcs = cluster.bmcs.ipmi if agent == "fence_ipmilan" else cluster.bmcs.redfish
    options = {"lanplus": "1", "cipher": "3"} if agent == "fence_ipmilan" else {}
    return parse_inventory({"credentialsDir": str(creds), "devices": [{
        "name": "rack", "agent": agent, "addresses": {n: b.address for n, b in bmcs.items()},
        "credentials": {"secretName": secret}, "timeout": timeout, "retries": retries, "retryInterval": "0.2s",
        "caBundle": str(cluster.bmcs.ca_file), "options": {**options, "power_timeout": "4", "login_timeout": "2"},
    }]})


@pytest.fixture
def cluster(make_cluster: Any) -> Cluster:
    c: Cluster = make_cluster(nodes=2, time_scale=0.05, bmcs=BmcOptions(users={"admin": PASSWORD}))
    return c


AGENTS = ["fence_ipmilan", "fence_redfish"]


@needs_agents
@pytest.mark.parametrize("agent", AGENTS)
def test_off_is_confirmed_by_status_and_the_machine_is_off(cluster: Cluster, tmp_path: Path, agent: str) -> None:
    inv = inventory(cluster, tmp_path, agent)
    agents = FenceAgents(inv)
    device = inv.device_for("node-1")
    assert device is not None
    assert agents.check(device, "node-1").outcome is Outcome.STATUS_ON
    result = agents.fence(device, "node-1")
    assert result.outcome is Outcome.POWERED_OFF, result.output
    assert result.fenced and result.power_confirmed_at is not None
    assert result.runs == ("PoweredOff", "status:Off")
    assert cluster.nodes["node-1"].power is Power.OFF
    assert cluster.nodes["node-2"].power is Power.RUNNING
    assert agents.check(device, "node-1").outcome is Outcome.STATUS_OFF


@needs_agents
@pytest.mark.parametrize("agent", AGENTS)
def test_a_wrong_password_is_a_refusal_not_retried_and_never_shown(cluster: Cluster, tmp_path: Path,
                                                                   agent: str) -> None:
    inv = inventory(cluster, tmp_path, agent, secret="bmc-wrong", retries=3)
    device = inv.device_for("node-1")
    assert device is not None
    result = FenceAgents(inv).fence(device, "node-1")
    assert result.outcome is Outcome.CREDENTIALS_REFUSED, result.output
    assert not result.fenced
    assert result.attempts == 1  # a BMC may lock an account that keeps failing
    assert cluster.nodes["node-1"].power is Power.RUNNING
    assert "not-the-password" not in result.output
    assert "refused" in result.describe().lower()
    assert FenceAgents(inv).check(device, "node-1").outcome is Outcome.CREDENTIALS_REFUSED


@needs_agents
@pytest.mark.parametrize("agent", AGENTS)
def test_an_unreachable_bmc_is_retried_then_reported(cluster: Cluster, tmp_path: Path, agent: str) -> None:
    assert cluster.bmcs is not None
    inv = inventory(cluster, tmp_path, agent, retries=1)
    device = inv.device_for("node-1")
    assert device is not None
    cluster.bmcs.set_reachable("node-1", False)
    slept: list[float] = []
    result = FenceAgents(inv, sleep=slept.append).fence(device, "node-1")
    assert result.outcome is Outcome.UNREACHABLE, result.output
    assert result.attempts == 2 and slept == [0.2]
    assert cluster.nodes["node-1"].power is Power.RUNNING


@needs_agents
def test_an_agent_that_outlives_its_timeout_is_killed_and_not_evidence(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.bmcs is not None
    inv = inventory(cluster, tmp_path, "fence_ipmilan", timeout="1s", retries=0)
    device = inv.device_for("node-1")
    assert device is not None
    cluster.bmcs.set_reachable("node-1", False)  # ipmitool waits for answers that never come
    result = FenceAgents(inv).fence(device, "node-1")
    assert result.outcome is Outcome.TIMED_OUT
    assert not result.fenced


@needs_agents
@pytest.mark.parametrize("agent", AGENTS)
def test_a_machine_that_powers_on_again_is_not_fenced(cluster: Cluster, tmp_path: Path, agent: str) -> None:
    assert cluster.bmcs is not None
    cluster.bmcs.powers_on_again.add("node-1")
    inv = inventory(cluster, tmp_path, agent, retries=2)
    device = inv.device_for("node-1")
    assert device is not None
    result = FenceAgents(inv).fence(device, "node-1")
    assert result.outcome is Outcome.POWERED_ON_AGAIN, result.output
    assert not result.fenced and result.attempts == 1
    assert cluster.nodes["node-1"].power is not Power.OFF


def test_missing_credentials_run_nothing(tmp_path: Path) -> None:
    inv = parse_inventory({"credentialsDir": str(tmp_path), "devices": [{
        "name": "d", "agent": "fence_ipmilan", "address": "{node}-bmc", "credentials": {"secretName": "absent"}}]})
    ran: list[list[str]] = []
    device = inv.device_for("node-1")
    assert device is not None
    result = FenceAgents(inv, run=lambda argv, *_: ran.append(argv) or RawRun(0, "")).fence(device, "node-1")
    assert result.outcome is Outcome.CREDENTIALS_MISSING and ran == []


def test_the_password_travels_on_stdin_only_and_output_is_redacted(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "username").write_text("root")
    (tmp_path / "s" / "password").write_text("hunter2-xyz")
    inv = parse_inventory({"credentialsDir": str(tmp_path), "devices": [{
        "name": "d", "agent": "fence_redfish", "address": "{node}.bmc:8443", "credentials": {"secretName": "s"}}]})
    seen: dict[str, Any] = {}

    def run(argv: list[str], stdin: str, timeout_s: float, env: dict[str, str]) -> RawRun:
        seen.update(argv=argv, stdin=stdin, env=env)
        return RawRun(1, "debug: sending password=hunter2-xyz to node-1.bmc\nLogin failed for root/hunter2-xyz")

    device = inv.device_for("node-1")
    assert device is not None
    result = FenceAgents(inv, run=run).fence(device, "node-1")
    assert seen["argv"] == ["fence_redfish"]
    assert "password=hunter2-xyz\n" in seen["stdin"] and "ip=node-1.bmc\n" in seen["stdin"]
    assert "ipport=8443\n" in seen["stdin"]
    assert "hunter2-xyz" not in result.output and "hunter2-xyz" not in result.describe()
    assert result.outcome is Outcome.CREDENTIALS_REFUSED


@pytest.mark.parametrize(("action", "raw", "expected"), [
    ("off", RawRun(0, "Success: Powered OFF"), Outcome.POWERED_OFF),
    ("reboot", RawRun(0, "Success: Rebooted"), Outcome.REBOOTED),
    ("status", RawRun(0, "Status: ON"), Outcome.STATUS_ON),
    ("status", RawRun(2, "Status: OFF"), Outcome.STATUS_OFF),
    ("off", RawRun(1, "> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session"),
     Outcome.CREDENTIALS_REFUSED),
    ("off", RawRun(1, "Get Auth Capabilities error\nError: Unable to establish IPMI v2 / RMCP+ session"),
     Outcome.UNREACHABLE),
    ("off", RawRun(1, 'DEBUG: https://10.0.0.1:443 "GET /redfish/v1/Systems HTTP/1.1" 401 209'),
     Outcome.CREDENTIALS_REFUSED),
    ("off", RawRun(1, "Failed to establish a new connection: [Errno 111] Connection refused"), Outcome.UNREACHABLE),
    ("off", RawRun(-1, "(killed after 60s)"), Outcome.TIMED_OUT),
    ("off", RawRun(-2, "could not run fence_x"), Outcome.AGENT_MISSING),
    ("off", RawRun(1, "something else"), Outcome.FAILED),
])
def test_classify(action: str, raw: RawRun, expected: Outcome) -> None:
    assert classify(action, raw) is expected
