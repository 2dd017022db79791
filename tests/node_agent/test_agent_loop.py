"""The decision loop end to end with fakes (API, peers, watchdog, clock): the issue's
scenarios, one per test, on Kubernetes timings scaled down 20x. No test sleeps."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from agent_testkit import AgentWorld, scaled_settings

from core import names
from core.peer_client import PeerErrorKind
from node_agent.isolation import Decision, Reason, Verdict


def run_for(world: AgentWorld, seconds: float, dt: float = 0.05) -> list[Decision]:
    """Step the loop every `dt` of fake time, feeding like the feeder thread would."""
    seen: list[Decision] = []
    elapsed = 0.0
    while elapsed < seconds:
        decision = world.step()
        world.runtime.keeper.feed_once()
        if not seen or seen[-1].key != decision.key:
            seen.append(decision)
        world.clock.advance(dt)
        elapsed += dt
    return seen


def healthy(world: AgentWorld) -> None:
    assert world.step().reason is Reason.API_REACHABLE
    world.runtime.publisher.step()  # learns the peers, publishes annotations


def test_healthy_node_runs_feeds_renews_its_lease_and_publishes(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory()
    healthy(world)
    run_for(world, 3.0)
    assert world.runtime.agent.decision is not None
    assert world.runtime.agent.decision.reason is Reason.API_REACHABLE
    assert world.watchdog.feeds > 0 and world.runtime.fencer.record is None
    assert (names.DEFAULT_NAMESPACE, "worker-1") in world.api.leases
    s = world.runtime.settings
    assert world.api.annotations["worker-1"] == {
        names.ANN_SELF_FENCE_CAPABLE: "true",
        names.ANN_WATCHDOG_TIMEOUT_S: "3",
        names.ANN_ISOLATION_DETECT_S: f"{s.isolation_detect_s:g}",
        names.ANN_AGENT_VERSION: "0.1.0",
        names.ANN_AGENT_BOOT_ID: "boot-aaaa",
        names.ANN_PEER_ENDPOINT: world.url,
    }
    assert world.metric("nodewarden_agent_self_fence_capable") == 1
    assert world.runtime.agent.may_disarm


def test_partitioned_from_everything_self_fences_within_the_published_bound(
    world_factory: Callable[..., AgentWorld],
) -> None:
    world = world_factory()
    healthy(world)
    last_contact = world.runtime.checker.last_contact_at
    world.api.cut_off()  # and peers time out: nothing is scripted
    decisions = run_for(world, 10.0)
    reasons = [d.reason for d in decisions]
    assert reasons[-1] is Reason.ISOLATED
    assert Reason.API_CHECK_FAILING in reasons and Reason.ASKING_PEERS in reasons
    record = world.runtime.fencer.record
    assert record is not None and last_contact is not None
    assert record.stop.last_feed_at is not None
    assert record.stop.last_feed_at - last_contact <= world.runtime.settings.isolation_detect_s
    feeds = world.watchdog.feeds
    run_for(world, 2.0)
    assert world.watchdog.feeds == feeds  # never fed again
    assert not world.runtime.agent.may_disarm
    assert world.metric("nodewarden_agent_fence_actions_total", trigger="Isolated") == 1
    assert world.peers.asked  # peers were asked before deciding


def test_partitioned_from_the_api_only_stays_up_until_an_order_exists(
    world_factory: Callable[..., AgentWorld], make_token: Callable[..., str]
) -> None:
    world = world_factory()
    healthy(world)
    world.api.cut_off()
    world.peers.set_all(world.peer_urls, reachable=True)
    decisions = run_for(world, 20.0)
    assert decisions[-1].reason is Reason.PEER_REACHES_API
    assert world.runtime.fencer.record is None
    world.peers.set_all(world.peer_urls, reachable=True, order=make_token())
    decisions = run_for(world, 2.0)
    assert decisions[-1].reason is Reason.ORDER_FROM_PEER
    assert world.runtime.fencer.record is not None


def test_api_outage_for_every_node_fences_nobody(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory()
    healthy(world)
    world.api.cut_off()
    world.peers.set_all(world.peer_urls, reachable=False)
    decisions = run_for(world, 30.0)
    assert decisions[-1].reason is Reason.CONTROL_PLANE_OUTAGE
    assert world.runtime.fencer.record is None
    assert world.watchdog.feeds > 0


def test_api_outage_with_a_silent_peer_keeps_the_others_answers_fresh(
    world_factory: Callable[..., AgentWorld],
) -> None:
    """A peer whose packets are dropped answers only at its timeout. Its request must not
    hold back the batch it is in: the others are asked again and again while it is in
    flight, so the outage verdict never runs out of fresh answers; and it is not asked
    again until its request ends."""
    world = world_factory(peers=6)
    healthy(world)
    silent = world.peer_urls[0]
    world.peers.silent.add(silent)
    try:
        world.api.cut_off()
        world.peers.set_all(world.peer_urls[1:], reachable=False)
        decisions = run_for(world, 30.0)
        assert [d.reason for d in decisions][-1] is Reason.CONTROL_PLANE_OUTAGE, decisions
        assert all(d.verdict is not Verdict.FENCE for d in decisions), decisions
        assert world.runtime.fencer.record is None
        assert world.peers.asked.count(silent) == 1
        assert "peer-0" in world.runtime.poll.in_flight()
        assert all(world.peers.asked.count(url) > 1 for url in world.peer_urls[1:])
    finally:
        world.peers.release.set()


def test_cut_off_from_the_api_when_the_control_plane_goes_down_gets_time_to_hear_its_peers(
    world_factory: Callable[..., AgentWorld],
) -> None:
    """Found by the chaos suite (seed 37): a node cut off from the API but not from its
    peers runs on their word for minutes. Then the control plane goes down: the first
    peers to answer now say they cannot reach the API either, which is no majority yet.
    The question has been open for long, but the node must not fence at once: the answers
    it ran on were just replaced, and the others get an isolation timeout to answer."""
    world = world_factory(peers=6)
    healthy(world)
    world.api.cut_off()
    first, rest = world.peer_urls[:3], world.peer_urls[3:]
    world.peers.set_all(first, reachable=True)
    for url in rest:
        world.peers.views[url] = PeerErrorKind.TIMEOUT  # slow to answer, all along
    assert run_for(world, 10.0)[-1].reason is Reason.PEER_REACHES_API
    world.peers.set_all(first, reachable=False)
    iso = world.runtime.settings.isolation_timeout_s
    early = run_for(world, iso / 2)
    assert all(d.verdict is not Verdict.FENCE for d in early), early
    assert early[-1].reason is Reason.ASKING_PEERS
    world.peers.set_all(rest, reachable=False)
    assert run_for(world, 10.0)[-1].reason is Reason.CONTROL_PLANE_OUTAGE
    assert world.runtime.fencer.record is None


def test_support_replaced_by_a_minority_fences_an_isolation_timeout_after_it(
    world_factory: Callable[..., AgentWorld],
) -> None:
    """The same, but the other peers never answer: the node fences once the answers it ran
    on would have expired, no later."""
    world = world_factory(peers=6)
    healthy(world)
    world.api.cut_off()
    world.peers.set_all(world.peer_urls[:3], reachable=True)
    for url in world.peer_urls[3:]:
        world.peers.views[url] = PeerErrorKind.TIMEOUT
    assert run_for(world, 10.0)[-1].reason is Reason.PEER_REACHES_API
    world.peers.set_all(world.peer_urls[:3], reachable=False)
    iso = world.runtime.settings.isolation_timeout_s
    decisions = run_for(world, iso + 0.2)
    assert decisions[-1].reason is Reason.NO_QUORUM, decisions
    assert world.runtime.fencer.record is not None


def test_order_in_the_api_fences_and_is_reported_on_the_noderemediation(
    world_factory: Callable[..., AgentWorld], make_token: Callable[..., str]
) -> None:
    world = world_factory()
    healthy(world)
    world.api.orders["worker-1"] = make_token()
    world.clock.advance(world.runtime.settings.api_check_interval_s)  # next check is due
    assert world.step().reason is Reason.ORDER_FROM_API
    world.runtime.publisher.step()
    report = world.api.reports["worker-1"]
    assert report["watchdogTimeoutSeconds"] == 3.0 and report["bootId"] == "boot-aaaa"


def test_stale_order_left_in_the_api_is_ignored(
    world_factory: Callable[..., AgentWorld], make_token: Callable[..., str]
) -> None:
    world = world_factory()
    world.api.orders["worker-1"] = make_token(boot_id="boot-before")
    healthy(world)
    run_for(world, 2.0)
    assert world.runtime.fencer.record is None


def test_control_plane_node_cut_off_from_peers_fences_although_its_api_answers(
    world_factory: Callable[..., AgentWorld],
) -> None:
    world = world_factory(control_plane=True)
    world.step()
    world.runtime.publisher.step()
    assert world.runtime.publisher.control_plane()
    decisions = run_for(world, 5.0)
    assert decisions[-1].reason is Reason.CONTROL_PLANE_ISOLATED
    assert world.runtime.fencer.record is not None


def test_control_plane_node_that_peers_answer_runs(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory(control_plane=True)
    world.peers.set_all(world.peer_urls, reachable=True)
    world.step()
    world.runtime.publisher.step()
    decisions = run_for(world, 10.0)
    assert decisions[-1].reason is Reason.PEER_CONTACT
    assert world.runtime.fencer.record is None


def test_no_peers_and_no_api_fences_after_the_isolation_timeout(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory(peers=0)
    healthy(world)
    world.api.cut_off()
    decisions = run_for(world, 8.0)
    assert [d.reason for d in decisions][-2:] == [Reason.TOO_FEW_PEERS, Reason.TOO_FEW_PEERS_ISOLATED]


def test_stay_up_policy_is_published_as_not_self_fence_capable(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory(scaled_settings(too_few_peers_action="stay-up"), peers=0)
    healthy(world)
    assert world.api.annotations["worker-1"][names.ANN_SELF_FENCE_CAPABLE] == "false"
    world.api.cut_off()
    assert run_for(world, 8.0)[-1].reason is Reason.TOO_FEW_PEERS_STAY_UP
    assert world.runtime.fencer.record is None


def test_without_a_watchdog_the_node_is_published_not_capable(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory(watchdog=False)
    healthy(world)
    annotations = world.api.annotations["worker-1"]
    assert annotations[names.ANN_SELF_FENCE_CAPABLE] == "false"
    assert annotations[names.ANN_WATCHDOG_TIMEOUT_S] == "0"


def test_agent_started_while_cut_off_never_arms_the_watchdog_before_it_must_fence(
    world_factory: Callable[..., AgentWorld],
) -> None:
    world = world_factory()
    world.api.cut_off()
    run_for(world, 3.0)
    assert not world.runtime.keeper.is_open  # a fence a predecessor began keeps counting down
    run_for(world, 10.0)
    record = world.runtime.fencer.record
    assert record is not None and record.stop.armed  # armed by the fence itself, never fed
    assert world.watchdog.feeds == 0


def test_a_stuck_loop_stops_the_feeding_by_itself(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory()
    healthy(world)
    keeper = world.runtime.keeper
    assert keeper.feed_once()
    world.clock.advance(world.runtime.settings.feed_grant_s)
    assert keeper.feed_once() is False
    assert world.metric("nodewarden_agent_watchdog_feeds_withheld_total") == 1


def test_peers_failing_in_other_ways_count_as_no_answer(world_factory: Callable[..., AgentWorld]) -> None:
    world = world_factory()
    healthy(world)
    for url in world.peer_urls:
        world.peers.views[url] = PeerErrorKind.UNAUTHORIZED
    world.api.cut_off()
    assert run_for(world, 10.0)[-1].reason is Reason.ISOLATED
    assert world.metric("nodewarden_agent_peer_requests_total", endpoint="nodes", result="Unauthorized") > 0


def test_one_log_line_per_decision_change(
    world_factory: Callable[..., AgentWorld], caplog: pytest.LogCaptureFixture
) -> None:
    world = world_factory()
    with caplog.at_level(logging.INFO, logger="node_agent.agent"):
        healthy(world)
        run_for(world, 2.0)
        world.api.cut_off()
        world.peers.set_all(world.peer_urls, reachable=True)
        changes = run_for(world, 10.0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decision:")]
    assert len(lines) == 1 + len(changes) - 1  # first decision, then each change
    assert all("(" in line for line in lines)
    total = sum(
        world.metric("nodewarden_agent_decisions_total", verdict=str(v), reason=str(r))
        for v in Verdict
        for r in Reason
    )
    assert total == len(lines)


def test_peers_relaying_an_order_signed_with_an_untrusted_key_do_not_keep_the_node_up(
    world_factory: Callable[..., AgentWorld],
) -> None:
    """Issue 13: the controller signs with a key this agent does not trust; the node is cut
    off from the API only. Its peers reach the API and relay the order: the agent refuses it
    (BadSignature) and, with no word that all is well, fences within its published bound."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.fence_order import Action, new_order, sign_order

    world = world_factory()
    healthy(world)
    world.api.cut_off()
    order = new_order(node="worker-1", remediation_uid="uid-1", action=Action.FENCE,
                      issued_at=world.clock.now(), ttl_s=1800.0, boot_id="boot-aaaa")
    token = sign_order(order, Ed25519PrivateKey.generate())  # a key the agent does not trust
    world.peers.set_all(world.peer_urls, reachable=True, order=token)
    s = world.runtime.settings
    decisions = run_for(world, s.isolation_detect_s + 0.5)
    assert all(d.reason is not Reason.PEER_REACHES_API for d in decisions), decisions
    assert decisions[-1].reason is Reason.REFUSED_ORDER_RELAYED, decisions
    assert world.runtime.fencer.record is not None
    assert world.metric("nodewarden_agent_orders_total", action="fence", source="peer", outcome="Rejected") >= 1

