"""A control-plane node decides from its peers, not from the API server on itself (the
medik8s agent trusted its local API server, so an isolated control-plane node never
rebooted): cut off from the other agents while its API still answers, it resets within
the bound. A worker cut off from the other agents only follows the API and stays up."""

from __future__ import annotations

from collections.abc import Callable

from agent_sim_kit import SCALE, WATCHDOG_CHECK_S, AgentCluster

from core import names


def test_control_plane_node_cut_off_from_its_peers_resets_although_its_api_answers(
    agent_cluster: Callable[..., AgentCluster],
) -> None:
    ac = agent_cluster(nodes=5, control_plane_nodes=1)
    cluster = ac.cluster
    ac.wait_ready()
    assert names.LABEL_CONTROL_PLANE in ac.node("cp-1")["metadata"]["labels"]
    assert ac.metric("cp-1", "nodewarden_agent_decisions_total", verdict="Run", reason="PeerContact") >= 1

    partitioned_at = cluster.clock()
    cluster.fault("partition", "cp-1", from_="peers")
    cluster.fault("partition", "node-1", from_="peers")
    fired = cluster.wait_for(lambda: ac.fired("cp-1", partitioned_at), ac.reset_bound_s + 5,
                             message="the watchdog of cp-1 fires")
    took = fired.at - partitioned_at
    print(f"control plane cut off from peers -> reset {took:.2f}s ({took / SCALE:.0f}s cluster time); "
          f"bound {ac.reset_bound_s:.2f}s")
    assert took <= ac.reset_bound_s + WATCHDOG_CHECK_S
    assert "decision: Fence (ControlPlaneIsolated)" in ac.agent_log("cp-1")
    assert ac.lease_renewed_at("cp-1") > partitioned_at  # its API did answer all along

    # The worker cut off from its peers the same way reaches the API: it stays up.
    cluster.wait_for(lambda: cluster.clock() > partitioned_at + ac.reset_bound_s + 1, ac.reset_bound_s + 5,
                     message="the bound passes")
    assert ac.fired("node-1", partitioned_at) is None
    assert ac.lease_renewed_at("node-1") > partitioned_at + ac.reset_bound_s
    ac.assert_no_violations()
