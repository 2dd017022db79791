"""The publisher's peer directory refresh: agents of a DaemonSet start together, so the
first list of Nodes often comes before the peers published their endpoints."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from agent_testkit import AgentWorld

from node_agent.boot import BootIdentity
from node_agent.isolation import Reason
from node_agent.kube import PeerEntry


def list_calls(world: AgentWorld) -> int:
    return world.api.calls.count("list_peers")


def test_peers_published_after_the_first_list_are_known_within_two_check_intervals(
    world_factory: Callable[..., AgentWorld],
) -> None:
    world = world_factory()
    entries, world.api.peer_entries = world.api.peer_entries, []
    assert world.step().reason is Reason.API_REACHABLE
    world.runtime.publisher.step()
    assert world.runtime.directory.peers() == []
    world.api.peer_entries = entries  # the other agents publish a moment later
    interval = world.runtime.settings.api_check_interval_s
    world.clock.advance(2 * interval)
    world.runtime.publisher.step()
    assert len(world.runtime.directory.peers()) == 4
    # Cut off from the API now, the node is kept up by its peers, not fenced as alone.
    world.api.cut_off()
    world.peers.set_all(world.peer_urls, reachable=True)
    for _ in range(200):
        decision = world.step()
        world.clock.advance(0.05)
    assert decision.reason is Reason.PEER_REACHES_API


def test_an_unchanged_peer_list_is_read_ever_less_often_up_to_the_refresh_interval(
    world_factory: Callable[..., AgentWorld],
) -> None:
    world = world_factory()
    world.step()
    s = world.runtime.settings
    times = []
    elapsed = 0.0
    while elapsed < 3 * s.peer_refresh_interval_s:
        before = list_calls(world)
        world.runtime.publisher.step()
        if list_calls(world) > before:
            times.append(elapsed)
        world.clock.advance(0.25)
        elapsed += 0.25
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < 2 * s.api_check_interval_s + 0.25
    assert all(b >= a for a, b in itertools.pairwise(gaps))  # backing off
    assert max(gaps) <= s.peer_refresh_interval_s + 0.25
    assert gaps[-1] >= s.peer_refresh_interval_s - 0.25
    # A change (a new agent published) brings the next refresh back to one check interval.
    world.api.peer_entries = [*world.api.peer_entries, PeerEntry("peer-9", "http://peer-9.invalid", False)]
    world.clock.advance(s.peer_refresh_interval_s)
    world.runtime.publisher.step()
    assert len(world.runtime.directory.peers()) == 5
    before = list_calls(world)
    world.clock.advance(s.api_check_interval_s)
    world.runtime.publisher.step()
    assert list_calls(world) == before + 1


def test_the_node_is_read_until_its_boot_is_known_without_listing_peers_each_time(
    world_factory: Callable[..., AgentWorld],
) -> None:
    world = world_factory(boot=BootIdentity(None, None, from_node_status=True))
    world.step()
    for _ in range(5):
        world.runtime.publisher.step()
        world.clock.advance(0.05)
    assert world.api.calls.count("read_node worker-1") == 5
    assert list_calls(world) == 1
