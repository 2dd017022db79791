"""Fixtures shared by every test folder: worlds built in one line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.apiserver.server import ADMIN, WEBHOOK, ApiServer, agent_identity, node_object
from sim.world.cluster import Cluster


def start_api_server(tmp: Path, nodes: int = 3, **kwargs: object) -> ApiServer:
    server = ApiServer(workdir=tmp, **kwargs)  # type: ignore[arg-type]
    rt = server.resource("nodes")
    for i in range(1, nodes + 1):
        server.registry.create(rt, "", node_object(f"node-{i}", i, time.time()))
        server.add_identity(agent_identity(f"node-{i}"), node=f"node-{i}")
    server.start()
    server.write_kubeconfig(tmp / "admin.kubeconfig", ADMIN)
    server.write_kubeconfig(tmp / "webhook.kubeconfig", WEBHOOK)
    return server


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """An emulated API server with 3 Ready nodes (no kubelets), shared by a module."""
    tmp = tmp_path_factory.mktemp("apiserver")
    server = start_api_server(tmp)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_kubeconfig(api_server: ApiServer) -> Path:
    return api_server.workdir / "admin.kubeconfig"


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[object]:
    """A factory of started simulated clusters, stopped at the end of the test:
    `cluster = make_cluster(nodes=3, time_scale=0.02, workloads=["db=statefulset:2"])`."""
    started: list[Cluster] = []

    def make(**kwargs: object) -> Cluster:
        workdir = tmp_path / f"cluster-{len(started)}"
        cluster = Cluster(workdir=workdir, **kwargs)  # type: ignore[arg-type]
        started.append(cluster)
        return cluster.start()

    yield make
    for cluster in started:
        cluster.stop()
