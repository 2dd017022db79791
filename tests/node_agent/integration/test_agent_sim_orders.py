"""Orders delivered to real agents over the simulator's peer network, as the remediator
will deliver them.

- A signed order relayed by a peer fences the node: the acknowledgement names the exact
  last feed, the machine resets one watchdog timeout later, the agent's report lands on
  the NodeRemediation. Delivered again after the reboot, it is for an earlier boot:
  "already rebooted", and the node is not reset again.
- Requests without the peer secret's signature get 401 and change nothing; an order
  signed by a key the agents do not trust is rejected; the node keeps running.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from agent_sim_kit import SCALE, WATCHDOG_CHECK_S, AgentCluster
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.clock import parse_rfc3339
from core.peer_auth import sign_request
from core.peer_client import ORDERS_PATH, OrderOutcome, order_request_body

VICTIM = "node-3"
RELAY = "node-1"


def test_order_relayed_by_a_peer_fences_once_and_an_earlier_boots_order_is_already_rebooted(
    agent_cluster: Callable[..., AgentCluster],
) -> None:
    ac = agent_cluster()
    cluster = ac.cluster
    ac.wait_ready()
    ac.create_remediation(VICTIM)
    old_boot = ac.boot_id(VICTIM)
    token = ac.order(VICTIM)
    peers = ac.peer_client()

    delivered_at = cluster.clock()
    answer = peers.deliver_order(ac.url(RELAY), token, receiver=RELAY)
    assert (answer.outcome, answer.answered_by, answer.relayed_via) == (OrderOutcome.FENCING, VICTIM, RELAY)
    ack = answer.acknowledgement
    assert ack is not None and ack.last_feed_at is not None
    assert (ack.node, ack.remediation_uid, ack.method, ack.boot_id) == (VICTIM, "uid-1", "watchdog", old_boot)
    assert ack.watchdog_timeout_s == ac.watchdog_timeout_s
    fired = cluster.wait_for(lambda: ac.fired(VICTIM, delivered_at), ac.watchdog_timeout_s + 5,
                             message=f"the watchdog of {VICTIM} fires")
    # Never fed after the acknowledged last feed: the device expires exactly one timeout later.
    late = fired.at - (ack.last_feed_at + ack.watchdog_timeout_s)
    print(f"acknowledged last feed -> reset {fired.at - ack.last_feed_at:.3f}s "
          f"({(fired.at - ack.last_feed_at) / SCALE:.1f}s cluster time), timeout {ack.watchdog_timeout_s}s")
    assert -0.1 <= late <= WATCHDOG_CHECK_S
    report = ac.remediation_status(VICTIM)["agentReport"]
    assert report["bootId"] == old_boot and report["watchdogTimeoutSeconds"] == ac.watchdog_timeout_s
    assert parse_rfc3339(report["lastFeedAt"]) == pytest.approx(ack.last_feed_at, abs=1e-5)
    assert parse_rfc3339(report["fenceStartedAt"]) == pytest.approx(ack.fence_started_at, abs=1e-5)

    ac.wait_back(VICTIM, old_boot)
    boots = cluster.node_state(VICTIM)["boots"]
    asked_again_at = cluster.clock()
    for via in (RELAY, VICTIM):
        again = peers.deliver_order(ac.url(via), token, receiver=via)
        assert (again.outcome, again.reason, again.acknowledgement) == (OrderOutcome.ALREADY_REBOOTED, "StaleBoot", None)
    cluster.wait_for(
        lambda: ac.metric(VICTIM, "nodewarden_agent_watchdog_last_feed_timestamp_seconds")
        > asked_again_at + ac.watchdog_timeout_s, 2 * ac.watchdog_timeout_s + 2,
        message="feeding goes on past a watchdog timeout")
    assert ac.fired(VICTIM, fired.at + 0.001) is None
    assert cluster.node_state(VICTIM)["boots"] == boots
    assert ac.metric(VICTIM, "nodewarden_agent_orders_total", action="fence", source="direct",
                     outcome="AlreadyRebooted") == 2
    ac.assert_no_violations()


def test_unauthenticated_and_wrongly_signed_requests_do_nothing(agent_cluster: Callable[..., AgentCluster]) -> None:
    ac = agent_cluster()
    cluster = ac.cluster
    ac.wait_ready()
    target = "node-2"
    session = ac.session()
    orders_url = ac.url(target) + ORDERS_PATH
    body = order_request_body(ac.order(target))  # a valid order, for this node, this boot
    started = cluster.clock()

    unsigned = session.post(orders_url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert (unsigned.status_code, unsigned.json()["description"]) == (401, "MissingCredentials")
    wrong_secret = sign_request(b"not-the-cluster-secret", "POST", ORDERS_PATH, body, cluster.clock(), target)
    forged = session.post(orders_url, data=body, headers=wrong_secret, timeout=5)
    assert (forged.status_code, forged.json()["description"]) == (401, "BadSignature")
    for path in ("/peer/v1/health", f"/peer/v1/nodes/{target}", f"/peer/v1/reach/{target}"):
        assert session.get(ac.url(target) + path, timeout=5).status_code == 401

    # Signed with the peer secret, but the order is not signed by the remediator's key:
    # rejected directly and by a relaying peer; a replay of the request is refused.
    foreign = ac.order(target, key=Ed25519PrivateKey.generate())
    replayable = order_request_body(foreign)
    headers = sign_request(b"integration-peer-secret", "POST", ORDERS_PATH, replayable, cluster.clock(), target)
    direct = session.post(orders_url, data=replayable, headers=headers, timeout=5)
    assert direct.status_code == 422 and json.loads(direct.content)["reason"] == "BadSignature"
    replay = session.post(orders_url, data=replayable, headers=headers, timeout=5)
    assert (replay.status_code, replay.json()["description"]) == (401, "Replay")
    relayed = ac.peer_client().deliver_order(ac.url("node-1"), foreign, receiver="node-1")
    assert (relayed.outcome, relayed.reason) == (OrderOutcome.REJECTED, "BadSignature")

    # The node keeps running: still fed a whole watchdog timeout after the requests.
    done_at = cluster.clock()
    cluster.wait_for(
        lambda: ac.metric(target, "nodewarden_agent_watchdog_last_feed_timestamp_seconds")
        > done_at + ac.watchdog_timeout_s, 2 * ac.watchdog_timeout_s + 2,
        message="feeding goes on past a watchdog timeout")
    health = ac.peer_client().health(ac.url(target), receiver=target)
    assert (health.fencing, health.api_reachable) == (False, True)
    assert ac.metric(target, "nodewarden_agent_fence_started_timestamp_seconds") == 0
    assert ac.metric(target, "nodewarden_agent_peer_requests_served_total", endpoint="orders", code="401") == 3
    assert ac.metric(target, "nodewarden_agent_orders_total", action="fence", source="direct",
                     outcome="Rejected") == 1
    assert cluster.timeline.events(kind="watchdog-fired", since=started) == []
    ac.assert_no_violations()
