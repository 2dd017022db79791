"""The isolation decision: pure, enumerated, one row at a time.

`decide(observation, policy)` says whether the node may run, must keep asking, or must
fence, and why. Rows are tried in order; the first that matches wins. The table, with
the reasoning behind each row, is in docs/node-agent.md; tests check every row.

Terms:
- the *question* ("am I cut off?") opens when a worker has failed `threshold` API checks
  in a row, and is always open on a control-plane node (whose local API server answering
  proves nothing about its network); `question_open_s` is how long it has been open;
- an answer is *fresh* if it is younger than the isolation timeout; only fresh answers
  count, so the verdict slides with time and a peer's word expires;
- an answer that relays a fence order this agent refused (`PeerAnswer.refused_order`) is
  no word that all is well: it counts neither in row 13 nor in row 14, and at the time-up
  the agent fences with `RefusedOrderRelayed` (row 16a);
- *support* is the evidence the last Run on peers' words rested on (rows 13-14): its age
  is that of the answer whose expiry would have ended that Run. The time is up (rows
  15-16) only once the question has been open for the isolation timeout *and* the
  support is that old: when peers' new answers replace the old ones (they saw the API go
  down), the agent gets a whole isolation timeout to hear the rest, as it did when the
  question opened. For a node that really is cut off nothing replaces the old answers;
  they expire, and the support with them, so the bound on self-fencing is unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from node_agent.settings import OutageQuorum, TooFewPeers

T = TypeVar("T")


class Verdict(enum.StrEnum):
    RUN = "Run"  # keep feeding
    SUSPECT = "Suspect"  # keep feeding, keep checking and asking
    FENCE = "Fence"  # stop feeding, forever


class OrderSource(enum.StrEnum):
    API = "api"  # the node's NodeRemediation status
    PEER = "peer"  # relayed by a peer that was asked about this node
    DIRECT = "direct"  # POSTed to this agent (by the remediator, or forwarded by a peer)


class Reason(enum.StrEnum):
    ORDER_FROM_API = "OrderFromApi"
    ORDER_FROM_PEER = "OrderFromPeer"
    ORDER_DELIVERED = "OrderDelivered"
    API_REACHABLE_TOO_FEW_PEERS = "ApiReachableTooFewPeers"
    CONTROL_PLANE_ISOLATED = "ControlPlaneIsolated"
    PEER_CONTACT = "PeerContact"
    CONFIRMING_WITH_PEERS = "ConfirmingWithPeers"
    API_REACHABLE = "ApiReachable"
    API_CHECK_FAILING = "ApiCheckFailing"
    TOO_FEW_PEERS = "TooFewPeers"
    TOO_FEW_PEERS_ISOLATED = "TooFewPeersIsolated"
    TOO_FEW_PEERS_STAY_UP = "TooFewPeersStayUp"
    TOO_FEW_PEERS_NOT_COMMITTED = "TooFewPeersNotCommitted"
    PEER_REACHES_API = "PeerReachesApi"
    CONTROL_PLANE_OUTAGE = "ControlPlaneOutage"
    ISOLATED = "Isolated"
    NO_QUORUM = "NoQuorum"
    REFUSED_ORDER_RELAYED = "RefusedOrderRelayed"
    ASKING_PEERS = "AskingPeers"


_ORDER_REASON = {
    OrderSource.API: Reason.ORDER_FROM_API,
    OrderSource.PEER: Reason.ORDER_FROM_PEER,
    OrderSource.DIRECT: Reason.ORDER_DELIVERED,
}


def order_reason(source: OrderSource) -> Reason:
    return _ORDER_REASON[source]


@dataclass(frozen=True)
class PeerAnswer:
    peer: str
    api_reachable: bool | None  # None: the peer could not tell
    age_s: float  # how long ago the answer arrived
    # The answer relayed a fence order for this node that this agent refused (a bad
    # signature, a clock behind, no way to fence): the peer reaches the API, but the API
    # does not say "all is well" (see row 13).
    refused_order: bool = False


@dataclass(frozen=True)
class Observation:
    fence_order: OrderSource | None  # a verified fence order was accepted, from where
    api_reachable: bool  # the last API check succeeded
    api_failures: int  # failed API checks in a row
    control_plane: bool
    known_peers: int
    answers: tuple[PeerAnswer, ...] = ()  # latest answer per peer
    question_open_s: float | None = None  # None: the question is not open
    committed: bool = True  # this boot was (or may have been) published self-fence capable
    support_age_s: float | None = None  # age of the last Run on peers' words; None: none


@dataclass(frozen=True)
class Policy:
    api_failure_threshold: int
    isolation_timeout_s: float
    min_peers: int
    too_few_peers: TooFewPeers
    outage_quorum: OutageQuorum


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: Reason
    detail: str = ""
    support_age_s: float | None = None  # rows 13-14: the age of the answers it rests on

    @property
    def key(self) -> tuple[Verdict, Reason]:
        return (self.verdict, self.reason)


def decide(obs: Observation, policy: Policy) -> Decision:
    iso = policy.isolation_timeout_s
    fresh = [a for a in obs.answers if a.age_s < iso]
    open_s = obs.question_open_s if obs.question_open_s is not None else 0.0
    too_few = obs.known_peers < policy.min_peers

    # 1-3. A verified fence order, from wherever it came, is final.
    if obs.fence_order is not None:
        return Decision(Verdict.FENCE, _ORDER_REASON[obs.fence_order], f"via {obs.fence_order}")

    # 4. A control-plane node that no peer answered for the isolation timeout is cut
    #    off, whatever its local API server says.
    if obs.control_plane and not too_few and not fresh and open_s >= iso:
        return Decision(
            Verdict.FENCE,
            Reason.CONTROL_PLANE_ISOLATED,
            f"no peer answered for {open_s:.1f}s (local API reachable: {obs.api_reachable})",
        )

    # 5-7. Control-plane node with a local API server that answers.
    if obs.control_plane and obs.api_reachable:
        if too_few:
            return Decision(
                Verdict.RUN,
                Reason.API_REACHABLE_TOO_FEW_PEERS,
                f"{obs.known_peers} peer(s) known, {policy.min_peers} needed to confirm",
            )
        if fresh:
            return Decision(Verdict.RUN, Reason.PEER_CONTACT, f"{len(fresh)} peer(s) answered")
        return Decision(Verdict.SUSPECT, Reason.CONFIRMING_WITH_PEERS)

    # 8. A worker that reaches the API follows the API.
    if obs.api_reachable:
        return Decision(Verdict.RUN, Reason.API_REACHABLE)

    # 9. Not yet enough failures to ask anyone.
    if obs.api_failures < policy.api_failure_threshold:
        return Decision(
            Verdict.SUSPECT,
            Reason.API_CHECK_FAILING,
            f"{obs.api_failures}/{policy.api_failure_threshold} checks failed",
        )

    # 10-12. Nobody (or not enough peers) to ask.
    if too_few:
        if open_s < iso:
            return Decision(Verdict.SUSPECT, Reason.TOO_FEW_PEERS, f"{obs.known_peers} peer(s) known")
        if not obs.committed:
            return Decision(Verdict.RUN, Reason.TOO_FEW_PEERS_NOT_COMMITTED,
                            "never published as self-fence capable in this boot: the remediator does "
                            "not count on this node fencing itself")
        if policy.too_few_peers is TooFewPeers.FENCE:
            return Decision(Verdict.FENCE, Reason.TOO_FEW_PEERS_ISOLATED, f"API unreachable for {open_s:.1f}s")
        return Decision(Verdict.RUN, Reason.TOO_FEW_PEERS_STAY_UP, "configured to stay up")

    # 13. A peer reaches the API and holds no order for us. An answer that relays an order
    #     this agent refused is no such word: the remediator wants this node fenced and the
    #     agent cannot tell that the order is genuine and current. Believing neither the order
    #     nor "all is well", the agent treats the answer as no support at all (it counts
    #     neither here nor in row 14), so a cut-off agent fences within the bound it
    #     publishes, as if no peer had answered (row 16a).
    reaching = sorted((a for a in fresh if a.api_reachable is True and not a.refused_order),
                      key=lambda a: a.age_s)
    if reaching:
        return Decision(Verdict.RUN, Reason.PEER_REACHES_API, f"{reaching[0].peer} reaches the API",
                        support_age_s=reaching[0].age_s)

    # 14. Most peers cannot reach the API either: the control plane is down, not us.
    down = sorted(a.age_s for a in fresh if a.api_reachable is False)
    unreachable = len(down)
    base = obs.known_peers if policy.outage_quorum is OutageQuorum.KNOWN_PEERS else len(fresh)
    if unreachable and unreachable * 2 > base:
        return Decision(
            Verdict.RUN,
            Reason.CONTROL_PLANE_OUTAGE,
            f"{unreachable} of {base} peers cannot reach the API",
            support_age_s=down[base // 2],  # the majority lasts until this answer expires
        )

    # 15-16. Time is up: open for the isolation timeout, and no support younger than that.
    supported = obs.support_age_s is not None and obs.support_age_s < iso
    if open_s >= iso and not supported:
        if not fresh:
            return Decision(Verdict.FENCE, Reason.ISOLATED, f"no peer answered for {open_s:.1f}s")
        refused = [a.peer for a in fresh if a.refused_order]
        if refused:
            return Decision(
                Verdict.FENCE,
                Reason.REFUSED_ORDER_RELAYED,
                f"API unreachable for {open_s:.1f}s; {', '.join(sorted(refused)[:3])} relayed a fence order "
                "this agent refused: no peer's word that all is well",
            )
        return Decision(
            Verdict.FENCE,
            Reason.NO_QUORUM,
            f"{len(fresh)} peer(s) answered, none reaches the API, {unreachable} of {base} "
            "is no majority",
        )

    # 17. Keep asking.
    since = f", peers' last word to run {obs.support_age_s:.1f}s ago" if supported else ""
    return Decision(Verdict.SUSPECT, Reason.ASKING_PEERS, f"{len(fresh)} answer(s) so far{since}")


def peer_batches(peers: Sequence[T]) -> list[list[T]]:
    """Split peers into the batches they are asked in: first 3, then max(3, (N-3)//10)."""
    items = list(peers)
    if not items:
        return []
    batches = [items[:3]]
    size = max(3, (len(items) - 3) // 10)
    for start in range(3, len(items), size):
        batches.append(items[start : start + size])
    return batches
