"""End to end through the real chain: the simulated cluster's kube-state-metrics series ->
Debian's Prometheus evaluating the shipped rules -> Debian's Alertmanager -> the webhook
(bearer token) -> the controller -> real agents. Nothing is mocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chain import alert_chain
from harness.prometheus import ALERTMANAGER, MISSING, PROMETHEUS, query, wait_query
from harness.waits import running_on, wait_running
from harness.world import nodewarden_world

pytestmark = pytest.mark.skipif(PROMETHEUS is None or ALERTMANAGER is None, reason=MISSING)
SCALE = 0.05


def test_power_off_is_recovered_through_prometheus_and_alertmanager(tmp_path: Path) -> None:
    with (nodewarden_world(tmp_path / "world", nodes=5, time_scale=SCALE,
                           workloads=["db=statefulset:3", "web=deployment:2"]) as w,
          alert_chain(w, tmp_path / "chain", list(w.controller_metrics.values())) as chain):
        c = w.cluster
        victim = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)["db-2"]
        wait_query(chain.prometheus_url, "nodewarden_controller_is_leader == 1", timeout=30)
        c.fault("power-off", victim)
        rem = w.wait_phase(victim, "AwaitingNodeReady", timeout=90)
        trigger = rem["spec"]["trigger"]
        assert trigger["source"] == "alertmanager" and trigger["alertName"] in ("NodeNotReady", "NodeLeaseStale")
        c.wait_for(lambda: running_on(c, "db-2") not in (None, victim), 30, message="db-2 moved")
        firing = query(chain.prometheus_url, 'ALERTS{alertname="NodeNotReady",alertstate="firing"}')
        assert [a["metric"]["node"] for a in firing] == [victim]
        c.fault("power-on", victim)
        rem = w.wait_phase(victim, "Succeeded", timeout=90)
        assert not w.has_taint(victim)
        wait_query(chain.prometheus_url,
                   'nodewarden_controller_remediations_completed_total{outcome="Succeeded"} >= 1', timeout=30)
        report = c.invariants()
        assert report["violations"] == [], report
