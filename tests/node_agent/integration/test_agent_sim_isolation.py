"""Real agent processes on a simulated cluster, cut off from the API and from each other.

- Cut off from everything, a node resets itself within the bound it publishes:
  `isolation-detect-seconds + watchdog-timeout-seconds` after its last Lease renewal.
- Cut off from the API only, its peers keep it up, past that bound, until the remediator
  stores a signed fence order in its NodeRemediation; a peer relays it and the node
  resets within the same bound of the order. Back up, the order (now for an earlier
  boot) is still in the API and is answered "already rebooted": no second reset.
"""

from __future__ import annotations

from collections.abc import Callable

from agent_sim_kit import SCALE, WATCHDOG_CHECK_S, AgentCluster, expected_annotations

from core import names

VICTIM = "node-2"


def test_published_state_then_cut_off_from_everything_resets_within_the_bound(
    agent_cluster: Callable[..., AgentCluster],
) -> None:
    ac = agent_cluster()
    cluster = ac.cluster
    ac.wait_ready()
    for node in cluster.nodes:
        assert ac.annotations(node).items() >= expected_annotations(ac, node).items()
        lease = ac.lease(node)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == f"nodewarden-agent/{node}"
        assert lease["spec"]["leaseDurationSeconds"] == 3  # threshold x interval = 2.25 s, rounded up
    renewed = ac.lease_renewed_at(VICTIM)
    cluster.wait_for(lambda: ac.lease_renewed_at(VICTIM) > renewed, 5, message="the Lease is renewed")
    old_boot = ac.boot_id(VICTIM)

    partitioned_at = cluster.clock()
    cluster.fault("partition", VICTIM, from_="all")
    fired = cluster.wait_for(lambda: ac.fired(VICTIM, partitioned_at), ac.reset_bound_s + 5,
                             message=f"the watchdog of {VICTIM} fires")
    last_renewal = ac.lease_renewed_at(VICTIM)  # what the remediator sees: T
    assert last_renewal <= partitioned_at + 0.1
    took = fired.at - last_renewal
    print(f"last renewal -> reset {took:.2f}s ({took / SCALE:.0f}s cluster time); partition -> reset "
          f"{fired.at - partitioned_at:.2f}s; bound {ac.reset_bound_s:.2f}s ({ac.reset_bound_s / SCALE:.0f}s)")
    assert took <= ac.reset_bound_s + WATCHDOG_CHECK_S
    assert "decision: Fence (Isolated)" in ac.agent_log(VICTIM)  # asked its peers, none answered
    assert [e.node for e in cluster.timeline.events(kind="watchdog-fired")] == [VICTIM]

    cluster.fault("heal", VICTIM)
    new_boot = ac.wait_back(VICTIM, old_boot)
    assert ac.annotations(VICTIM)[names.ANN_AGENT_BOOT_ID] == new_boot
    assert [e.node for e in cluster.timeline.events(kind="watchdog-fired")] == [VICTIM]
    ac.assert_no_violations()


def test_cut_off_from_the_api_only_stays_up_until_a_signed_order_exists(
    agent_cluster: Callable[..., AgentCluster],
) -> None:
    ac = agent_cluster()
    cluster = ac.cluster
    ac.wait_ready()
    ac.create_remediation(VICTIM)
    old_boot = ac.boot_id(VICTIM)

    partitioned_at = cluster.clock()
    cluster.fault("partition", VICTIM, from_="api")
    cluster.wait_for(
        lambda: ac.metric(VICTIM, "nodewarden_agent_decisions_total", verdict="Run", reason="PeerReachesApi") >= 1,
        ac.reset_bound_s, message="the peers keep the node up")
    # Well past the moment a node cut off from everything would have reset, it still runs
    # and feeds its watchdog.
    past_bound = ac.lease_renewed_at(VICTIM) + ac.reset_bound_s + 1.0
    cluster.wait_for(lambda: cluster.clock() > past_bound, ac.reset_bound_s + 5, message="the bound passes")
    cluster.wait_for(
        lambda: ac.metric(VICTIM, "nodewarden_agent_watchdog_last_feed_timestamp_seconds") > past_bound,
        5, message="a feed after the bound")
    assert ac.fired(VICTIM, partitioned_at) is None
    assert ac.metric(VICTIM, "nodewarden_agent_fence_started_timestamp_seconds") == 0

    stored_at = cluster.clock()
    ac.store_order(VICTIM, ac.order(VICTIM))
    fired = cluster.wait_for(lambda: ac.fired(VICTIM, partitioned_at), ac.reset_bound_s + 5,
                             message=f"the watchdog of {VICTIM} fires")
    took = fired.at - stored_at
    print(f"order stored -> reset {took:.2f}s ({took / SCALE:.0f}s cluster time); "
          f"bound {ac.reset_bound_s:.2f}s ({ac.reset_bound_s / SCALE:.0f}s)")
    assert took <= ac.reset_bound_s + WATCHDOG_CHECK_S
    assert "decision: Fence (OrderFromPeer)" in ac.agent_log(VICTIM)

    # Back up, the order is still in the API: it is for the boot that just ended.
    cluster.fault("heal", VICTIM)
    ac.wait_back(VICTIM, old_boot)
    cluster.wait_for(
        lambda: ac.metric(VICTIM, "nodewarden_agent_orders_total", action="fence", source="api",
                          outcome="AlreadyRebooted") >= 1, 5, message="the old order answered already rebooted")
    answered_at = cluster.clock()
    cluster.wait_for(
        lambda: ac.metric(VICTIM, "nodewarden_agent_watchdog_last_feed_timestamp_seconds")
        > answered_at + ac.watchdog_timeout_s, 2 * ac.watchdog_timeout_s + 2,
        message="feeding goes on past a watchdog timeout")
    assert ac.metric(VICTIM, "nodewarden_agent_fence_started_timestamp_seconds") == 0
    assert len(cluster.timeline.events(kind="watchdog-fired")) == 1
    ac.assert_no_violations()
