"""A host on the network without the peer secret cannot keep a cut-off node up.

Before, any host at a peer's address could answer "I reach the API, no order for you"
and the cut-off node ran on its word (isolation row 13) while the remediator, seeing the
node silent, could count on it having fenced itself. Now an answer must be signed for
the very request it answers (`core.peer_auth`): the agent's poll refuses the forged
answer (`UnsignedAnswer`), hears no peer, and fences within its published bound. The
same fake peer signing with the cluster's secret (the control) keeps the node up, so the
test shows the signature, and nothing else, is what is refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from agent_testkit import SECRET, AgentWorld
from test_agent_loop import healthy

from core.clock import FakeClock
from core.peer_auth import ANSWER_HEADER, SIGNATURE_HEADER, sign_answer
from core.peer_client import NodeView, PeerClient
from node_agent.isolation import Decision, Reason
from node_agent.kube import PeerEntry


def fake_peer(secret: bytes | None) -> ThreadingHTTPServer:
    """Answers every question with "I reach the API, no order", signed with `secret`
    (None: unsigned)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(NodeView("worker-1", "peer", True, None, None, 0.0).to_json()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if secret is not None:
                signature = self.headers.get(SIGNATURE_HEADER, "")
                self.send_header(ANSWER_HEADER, sign_answer(secret, signature, 200, body))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def run_for(world: AgentWorld, seconds: float, dt: float = 0.05) -> list[Decision]:
    """Step the loop every `dt` of fake time; the fake clock waits for the real requests
    in flight, so a loaded machine's slow answers do not age in fake time."""
    seen: list[Decision] = []
    elapsed = 0.0
    while elapsed < seconds:
        decision = world.step()
        world.runtime.keeper.feed_once()
        if not seen or seen[-1].key != decision.key:
            seen.append(decision)
        deadline = time.monotonic() + 10.0
        while world.runtime.poll.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        world.clock.advance(dt)
        elapsed += dt
    return seen


@pytest.fixture
def peer_factory() -> Iterator[Callable[[bytes | None], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(secret: bytes | None) -> str:
        server = fake_peer(secret)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, Reason.ISOLATED),  # a host with no secret at all
        (b"not-the-cluster-secret", Reason.ISOLATED),  # a host with another secret
        (SECRET, Reason.PEER_REACHES_API),  # the control: a real peer's signature
    ],
    ids=["unsigned", "other-secret", "control"],
)
def test_a_forged_reachable_answer_does_not_keep_a_cut_off_node_up(
    world_factory: Callable[..., AgentWorld], peer_factory: Callable[[bytes | None], str], clock: FakeClock,
    secret: bytes | None, reason: Reason,
) -> None:
    url = peer_factory(secret)
    session = requests.Session()
    session.trust_env = False
    poll = PeerClient(SECRET, timeout_s=1.0, clock=clock, session=session)
    world = world_factory(poll_client=poll)
    world.api.peer_entries = [PeerEntry(f"peer-{i}", url, False) for i in range(4)]
    healthy(world)
    world.api.cut_off()
    decisions = run_for(world, 10.0)
    assert decisions[-1].reason is reason, decisions
    if reason is Reason.ISOLATED:
        assert Reason.PEER_REACHES_API not in [d.reason for d in decisions]
        assert world.runtime.fencer.record is not None
        assert world.metric("nodewarden_agent_peer_requests_total", endpoint="nodes", result="UnsignedAnswer") > 0
    else:
        assert world.runtime.fencer.record is None
