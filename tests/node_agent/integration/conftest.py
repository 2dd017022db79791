"""Worlds for the agent's integration tests: a simulated cluster with a real agent process
on every node (`agent_cluster`), the agents' logs shown when a test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from agent_sim_kit import (
    AGENT_CMD,
    NAMESPACE,
    ROOT,
    SCALE,
    AgentCluster,
    agent_settings,
    write_agent_files,
)

from sim.world.cluster import Cluster
from sim.world.timings import Timings

CRD = ROOT / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def agent_cluster(
    make_cluster: Callable[..., Cluster], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., AgentCluster]]:
    """`ac = agent_cluster(nodes=5)`: started, CRD and namespace applied; call
    `ac.wait_ready()` before injecting faults."""
    built: list[AgentCluster] = []

    def make(nodes: int = 5, workloads: tuple[str, ...] = ("db=statefulset:2",),
             control_plane_nodes: int = 0) -> AgentCluster:
        watchdog_timeout_s = Timings().scaled(SCALE).watchdog_timeout_s
        config, key = write_agent_files(tmp_path_factory.mktemp("agents"), watchdog_timeout_s)
        cluster = make_cluster(
            nodes=nodes, time_scale=SCALE, workloads=list(workloads), agent_cmd=AGENT_CMD,
            agent_values={"config": str(config)}, agent_env={"PYTHONPATH": str(ROOT)},
            control_plane_nodes=control_plane_nodes,
        )
        cluster.apply_file(CRD)
        cluster.apply_manifest(NAMESPACE)
        settings = agent_settings(config)
        # The simulated watchdog has no ioctls: the agent must be told the device's timeout.
        assert settings.watchdog_timeout_s == cluster.timings.watchdog_timeout_s
        ac = AgentCluster(cluster, key, settings)
        built.append(ac)
        return ac

    yield make
    if request.node.stash.get(_FAILED, False):
        for ac in built:
            for node in ac.cluster.nodes:
                try:
                    print(f"----- agent log of {node} (last 60 lines)")
                    print("\n".join(ac.agent_log(node).splitlines()[-60:]))
                except OSError:
                    pass
