"""A real Prometheus (Debian's package) scrapes the simulator's kube-state-metrics
series over HTTPS and sees a powered-off node go Unknown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.prometheus import MISSING, PROMETHEUS, prometheus, query, wait_query
from sim.world.cluster import Cluster

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=MISSING)


def test_prometheus_scrapes_node_conditions_taints_and_leases(
        make_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    cluster = make_cluster(nodes=3, time_scale=0.02, workloads=["db=statefulset:1"])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cluster.api.tls.ca_pem)  # type: ignore[union-attr]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "kube-state-metrics", "scheme": "https",
            "tls_config": {"ca_file": str(ca)},
            "static_configs": [{"targets": [f"127.0.0.1:{cluster.api.port}"]}],
        }],
    }
    with prometheus(tmp_path / "prom", config) as url:
        ready = wait_query(url, 'kube_node_status_condition{condition="Ready",status="true"} == 1')
        assert sorted(r["metric"]["node"] for r in ready) == ["node-1", "node-2", "node-3"]
        created = wait_query(url, "time() - kube_node_created")
        assert len(created) == 3
        assert all(0 <= float(r["value"][1]) < 120 for r in created), created  # exact, not rounded
        ages = wait_query(url, 'time() - kube_lease_renew_time{namespace="kube-node-lease"}')
        assert all(-1 < float(r["value"][1]) < 30 for r in ages), ages
        leases = wait_query(url, 'kube_lease_renew_time{namespace="kube-node-lease"}')
        assert len(leases) == 3
        wait_query(url, 'kube_pod_status_phase{phase="Running",pod="db-0"} == 1')
        cluster.fault("power-off", "node-2")
        unknown = wait_query(url, 'kube_node_status_condition{condition="Ready",status="unknown"} == 1')
        assert [r["metric"]["node"] for r in unknown] == ["node-2"]
        taints = wait_query(url, 'kube_node_spec_taint{key="node.kubernetes.io/unreachable"}')
        assert {r["metric"]["effect"] for r in taints} == {"NoSchedule", "NoExecute"}
        assert query(url, "kube_node_spec_unschedulable == 1") == []
