"""The periodic BMC checks, with the real fence_ipmilan against the emulated BMCs: an
unreachable BMC or refused credentials show in the metric the alert reads, in one report
per change, and only the leader checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.fence_agent import AgentResult, FenceAgents
from controller.fence_checks import FenceDeviceChecks
from controller.metrics import ControllerMetrics
from sim.bmc.fleet import BmcOptions
from sim.world.cluster import Cluster
from tests.controller.test_fence_agent import PASSWORD, inventory, needs_agents


def gauge(metrics: ControllerMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value("nodewarden_controller_fence_agent_unusable_nodes", {"result": result})
    return value or 0.0


@needs_agents
def test_unreachable_and_refused_bmcs_raise_the_metric_and_clear_it(make_cluster: Any, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(nodes=2, time_scale=0.05, bmcs=BmcOptions(users={"admin": PASSWORD}))
    assert cluster.bmcs is not None
    inv = inventory(cluster, tmp_path, "fence_ipmilan", retries=0)
    metrics = ControllerMetrics()
    reports: list[tuple[str, str, bool]] = []
    now = [0.0]
    leading = [True]

    def report(node: str, result: AgentResult, usable: bool) -> None:
        reports.append((node, str(result.outcome), usable))
        assert PASSWORD not in result.describe() + result.output

    checks = FenceDeviceChecks(FenceAgents(inv), lambda: [("node-1", {}), ("node-2", {})], lambda: leading[0],
                               metrics, report, monotonic=lambda: now[0])
    checks.check_due()
    assert checks.last == {"node-1": "On", "node-2": "On"} and reports == []

    cluster.bmcs.set_reachable("node-1", False)
    now[0] += 10  # before the status interval: not checked again
    checks.check_due()
    assert gauge(metrics, "Unreachable") == 0
    now[0] += 300
    checks.check_due()
    assert gauge(metrics, "Unreachable") == 1
    assert reports == [("node-1", "Unreachable", False)]
    now[0] += 300
    checks.check_due()
    assert len(reports) == 1  # one report per change, not per check

    cluster.bmcs.set_reachable("node-1", True)
    (tmp_path / "creds" / "bmc" / "password").write_text("stale-here-pw\n")
    cluster.bmcs.ipmi["node-1"].authdata = {"admin": "rotated-bmc-pw"}
    cluster.bmcs.ipmi["node-2"].authdata = {"admin": "rotated-bmc-pw"}
    now[0] += 300
    checks.check_due()
    assert gauge(metrics, "Unreachable") == 0 and gauge(metrics, "CredentialsRefused") == 2

    (tmp_path / "creds" / "bmc" / "password").write_text("rotated-bmc-pw\n")
    now[0] += 300
    checks.check_due()
    assert gauge(metrics, "CredentialsRefused") == 0
    assert reports[-2:] == [("node-1", "On", True), ("node-2", "On", True)]  # passing again is news
    cluster.bmcs.ipmi["node-1"].authdata = {"admin": "rotated-again"}
    now[0] += 300
    checks.check_due()
    assert gauge(metrics, "CredentialsRefused") == 1
    leading[0] = False
    now[0] += 300
    before = metrics.registry.get_sample_value("nodewarden_controller_fence_agent_checks_total",
                                               {"result": "CredentialsRefused"})
    checks.check_due()
    assert metrics.registry.get_sample_value("nodewarden_controller_fence_agent_checks_total",
                                             {"result": "CredentialsRefused"}) == before  # a standby logs in nowhere
    assert gauge(metrics, "CredentialsRefused") == 0  # and reports nothing: the alert takes the max
    cluster.bmcs.ipmi["node-1"].authdata = {"admin": "rotated-bmc-pw"}
    leading[0] = True
    checks.check_due()  # newly leading: everything is checked at once
    assert gauge(metrics, "CredentialsRefused") == 0
    assert checks.last == {"node-1": "On", "node-2": "On"}
    assert len([r for r in reports if r[2]]) == 2  # a passing first check is not news
