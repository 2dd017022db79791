"""One test per row of the isolation decision table (docs/node-agent.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node_agent.isolation import (
    Observation,
    OrderSource,
    PeerAnswer,
    Policy,
    Reason,
    Verdict,
    decide,
    peer_batches,
)
from node_agent.settings import OutageQuorum, TooFewPeers

POLICY = Policy(
    api_failure_threshold=3,
    isolation_timeout_s=30.0,
    min_peers=1,
    too_few_peers=TooFewPeers.FENCE,
    outage_quorum=OutageQuorum.KNOWN_PEERS,
)
CUT_OFF = Observation(
    fence_order=None,
    api_reachable=False,
    api_failures=3,
    control_plane=False,
    known_peers=6,
    answers=(),
    question_open_s=5.0,
)


def answers(*reachable: bool | None, age_s: float = 1.0) -> tuple[PeerAnswer, ...]:
    return tuple(PeerAnswer(f"p{i}", r, age_s) for i, r in enumerate(reachable))


def check(obs: Observation, verdict: Verdict, reason: Reason, policy: Policy = POLICY) -> None:
    decision = decide(obs, policy)
    assert (decision.verdict, decision.reason) == (verdict, reason), decision.detail


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (OrderSource.API, Reason.ORDER_FROM_API),
        (OrderSource.PEER, Reason.ORDER_FROM_PEER),
        (OrderSource.DIRECT, Reason.ORDER_DELIVERED),
    ],
)
def test_rows_1_to_3_a_verified_order_fences_even_when_all_is_well(source: OrderSource, reason: Reason) -> None:
    healthy = replace(CUT_OFF, api_reachable=True, api_failures=0, question_open_s=None)
    check(replace(healthy, fence_order=source), Verdict.FENCE, reason)


def test_row_4_control_plane_without_peer_answers_fences_although_its_local_api_answers() -> None:
    obs = replace(CUT_OFF, control_plane=True, api_reachable=True, api_failures=0, question_open_s=30.0)
    check(obs, Verdict.FENCE, Reason.CONTROL_PLANE_ISOLATED)


def test_row_4_control_plane_whose_peer_answers_went_stale_fences() -> None:
    obs = replace(
        CUT_OFF,
        control_plane=True,
        api_reachable=True,
        api_failures=0,
        question_open_s=100.0,
        answers=answers(True, age_s=31.0),
    )
    check(obs, Verdict.FENCE, Reason.CONTROL_PLANE_ISOLATED)


def test_row_5_control_plane_with_too_few_peers_follows_its_api() -> None:
    obs = replace(CUT_OFF, control_plane=True, api_reachable=True, api_failures=0, known_peers=0, question_open_s=None)
    check(obs, Verdict.RUN, Reason.API_REACHABLE_TOO_FEW_PEERS)


def test_row_6_control_plane_with_a_fresh_peer_answer_runs() -> None:
    obs = replace(
        CUT_OFF,
        control_plane=True,
        api_reachable=True,
        api_failures=0,
        question_open_s=100.0,
        answers=answers(False, age_s=29.0),
    )
    check(obs, Verdict.RUN, Reason.PEER_CONTACT)


def test_row_7_control_plane_waits_for_a_first_peer_answer() -> None:
    obs = replace(CUT_OFF, control_plane=True, api_reachable=True, api_failures=0, question_open_s=2.0)
    check(obs, Verdict.SUSPECT, Reason.CONFIRMING_WITH_PEERS)


def test_row_8_worker_that_reaches_the_api_runs() -> None:
    obs = replace(CUT_OFF, api_reachable=True, api_failures=0, question_open_s=None)
    check(obs, Verdict.RUN, Reason.API_REACHABLE)


def test_row_9_failures_below_the_threshold_only_raise_suspicion() -> None:
    obs = replace(CUT_OFF, api_failures=2, question_open_s=None)
    check(obs, Verdict.SUSPECT, Reason.API_CHECK_FAILING)


def test_row_10_too_few_peers_waits_out_the_isolation_timeout() -> None:
    check(replace(CUT_OFF, known_peers=0, question_open_s=29.9), Verdict.SUSPECT, Reason.TOO_FEW_PEERS)


def test_row_11_too_few_peers_then_fences_by_default() -> None:
    check(replace(CUT_OFF, known_peers=0, question_open_s=30.0), Verdict.FENCE, Reason.TOO_FEW_PEERS_ISOLATED)


def test_row_11a_a_boot_never_published_capable_stays_up_without_peers() -> None:
    """Nobody may count on this node fencing itself (it never said it would in this boot),
    and without peers it cannot tell an outage from isolation: it stays up."""
    obs = replace(CUT_OFF, known_peers=0, question_open_s=30.0, committed=False)
    check(obs, Verdict.RUN, Reason.TOO_FEW_PEERS_NOT_COMMITTED)
    # ...but once committed, the promise is kept even by a process that knows no peers
    check(replace(obs, committed=True), Verdict.FENCE, Reason.TOO_FEW_PEERS_ISOLATED)


def test_row_12_too_few_peers_stays_up_when_configured() -> None:
    policy = replace(POLICY, too_few_peers=TooFewPeers.STAY_UP)
    obs = replace(CUT_OFF, known_peers=0, question_open_s=30.0)
    check(obs, Verdict.RUN, Reason.TOO_FEW_PEERS_STAY_UP, policy)


def test_row_12_min_peers_counts_known_peers() -> None:
    policy = replace(POLICY, min_peers=3)
    obs = replace(CUT_OFF, known_peers=2, question_open_s=1.0, answers=answers(True))
    check(obs, Verdict.SUSPECT, Reason.TOO_FEW_PEERS, policy)


def test_row_13_any_peer_that_reaches_the_api_keeps_the_node_up() -> None:
    obs = replace(CUT_OFF, answers=answers(False, False, True), question_open_s=100.0)
    check(obs, Verdict.RUN, Reason.PEER_REACHES_API)


def test_row_13_an_answer_relaying_an_order_this_agent_refused_keeps_nobody_up() -> None:
    """Issue 13: peers reach the API and relay an order this agent refused (a key it does
    not trust, a clock behind). Such an answer is no word that all is well: the agent keeps
    asking, and once the time is up it fences as if nobody had answered (row 16a)."""
    relaying = tuple(replace(a, refused_order=True) for a in answers(True, True, True))
    check(replace(CUT_OFF, answers=relaying, question_open_s=5.0), Verdict.SUSPECT, Reason.ASKING_PEERS)
    check(replace(CUT_OFF, answers=relaying, question_open_s=30.0), Verdict.FENCE, Reason.REFUSED_ORDER_RELAYED)
    # One peer that reaches the API without relaying a refused order is still support.
    mixed = (*relaying, PeerAnswer("p9", True, 1.0))
    check(replace(CUT_OFF, answers=mixed, question_open_s=30.0), Verdict.RUN, Reason.PEER_REACHES_API)
    # And relayed refusals count for no outage either.
    down = (*answers(False, False, False), *relaying[:1])
    check(replace(CUT_OFF, known_peers=6, answers=down, question_open_s=30.0), Verdict.FENCE,
          Reason.REFUSED_ORDER_RELAYED)


def test_row_13_a_stale_reachable_answer_does_not_count() -> None:
    obs = replace(CUT_OFF, answers=answers(True, age_s=30.0), question_open_s=100.0)
    check(obs, Verdict.FENCE, Reason.ISOLATED)


def test_row_14_most_known_peers_unreachable_means_control_plane_outage() -> None:
    obs = replace(CUT_OFF, known_peers=6, answers=answers(False, False, False, False))
    check(obs, Verdict.RUN, Reason.CONTROL_PLANE_OUTAGE)


def test_row_14_half_of_known_peers_is_no_outage_yet() -> None:
    obs = replace(CUT_OFF, known_peers=6, answers=answers(False, False, False))
    check(obs, Verdict.SUSPECT, Reason.ASKING_PEERS)


def test_row_14_answering_quorum_counts_only_those_who_answered() -> None:
    policy = replace(POLICY, outage_quorum=OutageQuorum.ANSWERING_PEERS)
    obs = replace(CUT_OFF, known_peers=6, answers=answers(False, False, None))
    check(obs, Verdict.RUN, Reason.CONTROL_PLANE_OUTAGE, policy)


def test_row_15_no_answer_within_the_isolation_timeout_fences() -> None:
    check(replace(CUT_OFF, question_open_s=30.0), Verdict.FENCE, Reason.ISOLATED)


def test_row_16_answers_without_quorum_at_the_timeout_fence() -> None:
    obs = replace(CUT_OFF, known_peers=6, answers=answers(False, None), question_open_s=30.0)
    check(obs, Verdict.FENCE, Reason.NO_QUORUM)


def test_row_17_otherwise_keep_asking() -> None:
    check(replace(CUT_OFF, question_open_s=29.0), Verdict.SUSPECT, Reason.ASKING_PEERS)


def test_rows_15_16_wait_for_the_support_of_the_last_run_to_age_out() -> None:
    """Peers that reached the API now say they cannot (the control plane went down), and
    only some have answered yet: the time is up only an isolation timeout after the
    answers the last Run rested on, however long the question has been open."""
    long_open = replace(CUT_OFF, known_peers=6, answers=answers(False, False, False), question_open_s=600.0)
    check(replace(long_open, support_age_s=29.0), Verdict.SUSPECT, Reason.ASKING_PEERS)
    check(replace(long_open, support_age_s=30.0), Verdict.FENCE, Reason.NO_QUORUM)
    check(long_open, Verdict.FENCE, Reason.NO_QUORUM)  # no Run on peers' words in this question
    silent = replace(CUT_OFF, question_open_s=600.0)
    check(replace(silent, support_age_s=29.0), Verdict.SUSPECT, Reason.ASKING_PEERS)
    check(replace(silent, support_age_s=31.0), Verdict.FENCE, Reason.ISOLATED)


def test_a_run_on_peers_words_reports_the_age_of_the_answers_it_rests_on() -> None:
    reaching = answers(True, True, False, age_s=0.0)
    reaching = (replace(reaching[0], age_s=12.0), replace(reaching[1], age_s=4.0), reaching[2])
    decision = decide(replace(CUT_OFF, answers=reaching), POLICY)
    assert (decision.reason, decision.support_age_s) == (Reason.PEER_REACHES_API, 4.0)  # the newest "reaches"
    down = tuple(PeerAnswer(f"p{i}", False, age) for i, age in enumerate((9.0, 1.0, 5.0, 3.0, 7.0)))
    decision = decide(replace(CUT_OFF, known_peers=6, answers=down), POLICY)
    # 4 of 6 make the majority: it lasts until the 4th youngest answer (7 s old) expires
    assert (decision.reason, decision.support_age_s) == (Reason.CONTROL_PLANE_OUTAGE, 7.0)
    assert decide(replace(CUT_OFF, question_open_s=1.0), POLICY).support_age_s is None


def test_every_reason_has_a_row_test() -> None:
    tested = {
        Reason.ORDER_FROM_API, Reason.ORDER_FROM_PEER, Reason.ORDER_DELIVERED,
        Reason.CONTROL_PLANE_ISOLATED, Reason.API_REACHABLE_TOO_FEW_PEERS, Reason.PEER_CONTACT,
        Reason.CONFIRMING_WITH_PEERS, Reason.API_REACHABLE, Reason.API_CHECK_FAILING,
        Reason.TOO_FEW_PEERS, Reason.TOO_FEW_PEERS_ISOLATED, Reason.TOO_FEW_PEERS_STAY_UP,
        Reason.TOO_FEW_PEERS_NOT_COMMITTED,
        Reason.PEER_REACHES_API, Reason.CONTROL_PLANE_OUTAGE, Reason.ISOLATED,
        Reason.NO_QUORUM, Reason.ASKING_PEERS, Reason.REFUSED_ORDER_RELAYED,
    }  # fmt: skip
    assert tested == set(Reason)


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (0, []),
        (2, [2]),
        (3, [3]),
        (4, [3, 1]),
        (9, [3, 3, 3]),
        (43, [3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]),
        (103, [3] + [10] * 10),
    ],
)
def test_peers_are_asked_first_3_then_batches_of_max_3_and_a_tenth(n: int, sizes: list[int]) -> None:
    batches = peer_batches(list(range(n)))
    assert [len(b) for b in batches] == sizes
    assert [p for b in batches for p in b] == list(range(n))
