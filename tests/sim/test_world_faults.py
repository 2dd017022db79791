"""Faults a real cluster throws at the product: a group partition (a zone or a site cut
off from the API and the rest, connected among themselves), slow API answers, and
throttling as kube-apiserver's max-in-flight / priority-and-fairness filters answer it
(staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go: 429 TooManyRequests,
"Too many requests, please try again later.", Retry-After: 1)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness.waits import ready
from sim.world.cluster import Cluster
from sim.world.faults import FaultError

SCALE = 0.02


def api(kubeconfig: Path) -> client.CoreV1Api:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.retries = 0
    return client.CoreV1Api(client.ApiClient(cfg))


def test_group_partition_cuts_the_group_from_the_api_and_the_rest_but_not_from_itself(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=4, time_scale=SCALE, partition_mode="refuse")
    cluster.fault("partition-group", "node-1,node-2")
    for node in ("node-1", "node-2"):
        cluster.wait_for(lambda n=node: ready(cluster, n) == "Unknown", 5, message=f"{node} Unknown")
    assert ready(cluster, "node-3") == ready(cluster, "node-4") == "True"
    assert not cluster._peer_blocked("node-1", "node-2")  # inside the group
    assert cluster._peer_blocked("node-1", "node-3") and cluster._peer_blocked("node-4", "node-2")
    assert cluster._peer_blocked("external", "node-1")  # the webhook is outside it too
    assert not cluster._peer_blocked("node-3", "node-4")
    with pytest.raises(Exception):  # noqa: B017 - the connection is reset, whatever the client calls it
        api(cluster.kubeconfig("agent:node-1")).read_node("node-1", _request_timeout=2)
    assert api(cluster.kubeconfig("agent:node-3")).read_node("node-3").metadata.name == "node-3"
    cluster.fault("heal")
    cluster.wait_for(lambda: ready(cluster, "node-1") == "True", 5, message="node-1 back")
    assert not cluster._peer_blocked("node-1", "node-3")


def test_partition_group_needs_known_nodes(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2, time_scale=SCALE)
    with pytest.raises(FaultError):
        cluster.fault("partition-group", "node-1,node-9")


def test_throttled_api_answers_429_with_retry_after(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE)
    core = api(cluster.kubeconfig("admin"))
    cluster.fault("api-throttle", duration_s=200, retry_after_s=1, fraction=0.5)
    codes = []
    for _ in range(10):
        try:
            core.read_node("node-1")
            codes.append(200)
        except ApiException as err:
            codes.append(err.status)
            assert err.headers["Retry-After"] == "1"
            assert '"reason":"TooManyRequests"' in err.body
            assert '"retryAfterSeconds":1' in err.body
            assert "Too many requests, please try again later." in err.body
    assert codes.count(429) == 5 and codes.count(200) == 5
    time.sleep(200 * SCALE)
    assert core.read_node("node-1").metadata.name == "node-1"


def test_slow_api_answers_late(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE)
    core = api(cluster.kubeconfig("admin"))
    cluster.fault("api-slow", duration_s=500, delay_s=40)  # 40 cluster seconds = 0.8 s here
    t0 = time.monotonic()
    core.read_node("node-1")
    assert time.monotonic() - t0 >= 40 * SCALE


def test_fault_json_carries_the_new_options() -> None:
    from sim.world.faults import Fault

    group = Fault.from_json({"action": "partition-group", "nodes": ["node-1", "node-2"]})
    assert group.node == "node-1,node-2"
    throttle = Fault.from_json({"action": "api-throttle", "duration": 30, "retryAfter": 2, "fraction": 0.25})
    assert (throttle.duration_s, throttle.retry_after_s, throttle.fraction) == (30.0, 2, 0.25)
    slow = Fault.from_json({"action": "api-slow", "duration": 30, "delay": 3})
    assert slow.delay_s == 3.0
    with pytest.raises(FaultError):
        Fault.from_json({"action": "api-slow", "delay": "soon"})
