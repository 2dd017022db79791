"""An API outage for every node fences nobody: each agent hears from its peers that they
cannot reach the API either (a control-plane outage, not an isolated node) and keeps
feeding. The outage lasts well past the reset bound, and one node reboots in the middle
of it: its new agent, which cannot list its peers, asks the ones it saved on disk and
finds the outage too, instead of fencing as a node with nobody to ask.
"""

from __future__ import annotations

from collections.abc import Callable

from agent_sim_kit import SCALE, AgentCluster

REBOOTED = "node-3"


def test_api_outage_for_every_node_fences_nobody(agent_cluster: Callable[..., AgentCluster]) -> None:
    ac = agent_cluster()
    cluster = ac.cluster
    ac.wait_ready()
    boots = {node: ac.boot_id(node) for node in cluster.nodes}
    # Long enough for the rebooted node's agent to have fenced and reset if it had had
    # nobody to ask: reboot ~2 s, start ~1.5 s, 3 failed checks, isolation timeout, watchdog.
    outage_s = 2 * ac.reset_bound_s
    started = cluster.clock()
    cluster.fault("api-outage", duration_s=outage_s / SCALE)

    def outage_seen(node: str) -> bool:
        return ac.metric(node, "nodewarden_agent_decisions_total", verdict="Run",
                         reason="ControlPlaneOutage") >= 1

    cluster.wait_for(lambda: all(outage_seen(n) for n in cluster.nodes), ac.reset_bound_s,
                     message="every agent finds the control-plane outage")
    cluster.fault("reboot", REBOOTED)
    cluster.wait_for(lambda: cluster.processes[REBOOTED].running and outage_seen(REBOOTED), outage_s,
                     message="the rebooted node's new agent finds the outage")
    assert cluster.clock() < started + outage_s  # still in the outage
    assert "peer(s) from the cache" in ac.agent_log(REBOOTED)

    ended = started + outage_s
    cluster.wait_for(lambda: all(ac.lease_renewed_at(n) > ended for n in cluster.nodes),
                     ended - cluster.clock() + 5, message="every agent renews its Lease after the outage")
    assert cluster.timeline.events(kind="watchdog-fired") == []
    assert {n: ac.boot_id(n) for n in cluster.nodes if n != REBOOTED} == {
        n: b for n, b in boots.items() if n != REBOOTED}
    assert cluster.node_state(REBOOTED)["boots"] == 2  # the reboot we asked for, no reset after it
    peers = ac.peer_client()
    for node in cluster.nodes:
        health = peers.health(ac.url(node), receiver=node)
        assert (health.api_reachable, health.fencing, health.self_fence_capable) == (True, False, True)
        assert ac.metric(node, "nodewarden_agent_fence_started_timestamp_seconds") == 0
    ac.assert_no_violations()
