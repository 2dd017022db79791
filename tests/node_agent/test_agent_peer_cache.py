"""The peer directory saved on disk: an agent restarted during a control-plane outage asks
the peers its predecessor knew instead of fencing as "too few peers"."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_testkit import AgentWorld, scaled_settings
from test_agent_loop import run_for

from core.clock import FakeClock
from node_agent.isolation import Reason
from node_agent.kube import PeerEntry
from node_agent.peer_cache import PeerCache
from node_agent.peers import PeerDirectory

PEERS = [PeerEntry("node-2", "http://10.0.0.2:9471", False), PeerEntry("cp-1", "https://10.0.0.9:9471", True)]


def test_saved_peers_are_loaded_by_the_next_run(tmp_path: Path, clock: FakeClock) -> None:
    template = str(tmp_path / "state" / "peers-{node}.json")
    PeerCache(template, "node-1", clock, 3600).save(PEERS)
    assert (tmp_path / "state" / "peers-node-1.json").exists()
    clock.advance(600)
    directory = PeerDirectory("node-1", [], PeerCache(template, "node-1", clock, 3600))
    assert [(p.name, p.url, p.control_plane) for p in directory.peers()] == [
        ("cp-1", "https://10.0.0.9:9471", True),
        ("node-2", "http://10.0.0.2:9471", False),
    ]


def test_every_listing_is_saved_even_when_nothing_changed(tmp_path: Path, clock: FakeClock) -> None:
    cache = PeerCache(str(tmp_path / "peers.json"), "node-1", clock, 3600)
    directory = PeerDirectory("node-1", [], cache)
    assert directory.update(PEERS)
    clock.advance(3000)
    assert not directory.update(PEERS)
    clock.advance(3000)  # 6000 s after the first save, 3000 s after the last
    assert len(PeerCache(str(tmp_path / "peers.json"), "node-1", clock, 3600).load()) == 2


@pytest.mark.parametrize(
    "age_s, content",
    [
        (3601, None),  # too old: peers that joined since would be missing from the count
        (-60, None),  # saved "in the future": the clock jumped, do not trust it
        (0, {"node": "node-9"}),  # another node's list
        (0, {"format": 99}),
        (0, {"peers": [{"name": "node-2"}]}),
        (0, "not json"),
    ],
)
def test_a_cache_that_cannot_be_trusted_is_ignored(
    tmp_path: Path, clock: FakeClock, age_s: float, content: object
) -> None:
    path = tmp_path / "peers.json"
    PeerCache(str(path), "node-1", clock, 3600).save(PEERS)
    if isinstance(content, dict):
        path.write_text(json.dumps({**json.loads(path.read_text()), **content}))
    elif content is not None:
        path.write_text(str(content))
    clock.advance(age_s) if age_s >= 0 else clock.set_wall(clock.now() + age_s)
    assert PeerCache(str(path), "node-1", clock, 3600).load() == []


def test_an_unwritable_cache_is_reported_once_and_changes_nothing(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    directory = PeerDirectory("node-1", [], PeerCache(str(blocker / "peers.json"), "node-1", clock, 3600))
    with caplog.at_level(logging.WARNING, logger="node_agent.peer_cache"):
        directory.update(PEERS)
        directory.update(PEERS)
    assert len(directory.peers()) == 2
    assert len([r for r in caplog.records if "cannot save" in r.getMessage()]) == 1


@pytest.mark.parametrize("cached, reason", [(True, Reason.CONTROL_PLANE_OUTAGE), (False, Reason.TOO_FEW_PEERS_ISOLATED)])
def test_agent_restarted_during_an_api_outage_finds_the_outage_through_cached_peers(
    world_factory: Callable[..., AgentWorld], tmp_path: Path, cached: bool, reason: Reason
) -> None:
    settings = scaled_settings(peer_cache_file=str(tmp_path / "peers.json"))
    before = world_factory(settings)  # the predecessor lists its peers and saves them
    before.step()
    before.runtime.publisher.step()
    if not cached:
        (tmp_path / "peers.json").unlink()
    after = world_factory(settings)  # restarted while the API is down
    after.api.cut_off()
    after.peers.set_all(after.peer_urls, reachable=False)
    assert run_for(after, 8.0)[-1].reason is reason


def test_agents_sharing_a_disk_keep_their_replay_state_and_markers_apart(
        tmp_path: Path, world_factory: Callable[..., AgentWorld]) -> None:
    """`peer_cache_file` may name `{node}`; the replay state and the self-fence markers live
    beside it, so they follow the same substitution (two agents on one disk, as in the
    simulator, must not share one folder literally named `{node}`)."""
    template = str(tmp_path / "agent-state" / "{node}" / "peers.json")
    for node in ("node-1", "node-2"):
        w = world_factory(scaled_settings(node_name=node, peer_cache_file=template))
        mine = tmp_path / "agent-state" / node
        assert w.runtime.server.replays._path == mine / "peer-replay.json"
        assert w.runtime.commitment._dir == mine
    assert not (tmp_path / "agent-state" / "{node}").exists()
