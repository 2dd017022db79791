"""Leader election semantics with a fake clock and an in-memory Lease store that behaves
like the API server (resourceVersion preconditions): `tests.controller.fakes.FakeLease`,
the one `FakeControllerKube.lease_store` hands out."""

from __future__ import annotations

import copy

import pytest

from controller.leader import LeaderElector, LeaderTiming
from core.clock import FakeClock
from tests.controller.fakes import FakeLease

TIMING = LeaderTiming(lease_duration_s=15.0, renew_deadline_s=10.0, retry_period_s=2.0)


def test_first_candidate_acquires_and_the_second_stands_by() -> None:
    store, clock = FakeLease(), FakeClock()
    a, b = LeaderElector(store, "a", TIMING, clock), LeaderElector(store, "b", TIMING, clock)
    assert a.step() and a.is_leader()
    assert not b.step() and not b.is_leader()
    assert store.obj["spec"]["holderIdentity"] == "a"  # type: ignore[index]


def test_standby_takes_over_only_after_a_full_lease_duration_without_change() -> None:
    store, clock = FakeLease(), FakeClock()
    a, b = LeaderElector(store, "a", TIMING, clock), LeaderElector(store, "b", TIMING, clock)
    a.step()
    b.step()  # observes a's record now
    clock.advance(14.9)
    assert not b.step()
    clock.advance(0.2)  # 15.1 s since b last saw a change
    assert b.step() and b.is_leader()
    assert store.obj["spec"]["leaseTransitions"] == 1  # type: ignore[index]


def test_renewals_keep_the_leader() -> None:
    store, clock = FakeLease(), FakeClock()
    a, b = LeaderElector(store, "a", TIMING, clock), LeaderElector(store, "b", TIMING, clock)
    a.step()
    for _ in range(20):
        clock.advance(2.0)
        assert a.step()
        assert not b.step()


def test_holders_timestamps_are_never_trusted() -> None:
    """A holder whose clock is far behind still holds while it keeps changing the record."""
    store, clock = FakeLease(), FakeClock()
    a = LeaderElector(store, "a", TIMING, FakeClock(start=1_000_000.0))  # wall clock days behind
    b = LeaderElector(store, "b", TIMING, clock)
    a.step()
    b.step()
    clock.advance(2.0)
    a.clock.advance(2.0)  # type: ignore[attr-defined]
    a.step()
    clock.advance(14.0)
    assert not b.step()  # the record changed 14 s ago by b's clock


def test_a_leader_that_cannot_renew_stops_before_anyone_can_take_over() -> None:
    store, clock = FakeLease(), FakeClock()
    changes: list[bool] = []
    a = LeaderElector(store, "a", TIMING, clock, on_change=changes.append)
    b = LeaderElector(store, "b", TIMING, clock)
    a.step()
    b.step()
    store.fail = True  # a is cut off
    clock.advance(9.9)
    a.step()
    assert a.is_leader()
    clock.advance(0.2)
    assert not a.is_leader()  # 10.1 s since the last renewal: stopped acting
    a.step()
    assert changes == [True, False]
    store.fail = False
    clock.advance(4.0)  # 14.1 s: b must still wait
    assert not b.step()
    clock.advance(1.0)
    assert b.step()


def test_conflicting_takeovers_have_one_winner() -> None:
    store, clock = FakeLease(), FakeClock()
    a = LeaderElector(store, "a", TIMING, clock)
    a.step()
    b, c = LeaderElector(store, "b", TIMING, clock), LeaderElector(store, "c", TIMING, clock)
    b.step()
    c.step()
    clock.advance(16)
    lease_before = store.get()
    # both read the same version; the first update wins, the second conflicts
    original_get = store.get
    store.get = lambda: copy.deepcopy(lease_before)  # type: ignore[method-assign]
    results = [b.step(), c.step()]
    store.get = original_get  # type: ignore[method-assign]
    assert sorted(results) == [False, True]


@pytest.mark.parametrize("timing", [LeaderTiming(15, 15, 2), LeaderTiming(15, 10, 10), LeaderTiming(10, 12, 2)])
def test_unsafe_leader_timings_are_refused(timing: LeaderTiming) -> None:
    from controller.settings import ControllerSettings, unsafe_timings

    s = ControllerSettings(lease_duration_s=timing.lease_duration_s, renew_deadline_s=timing.renew_deadline_s,
                           retry_period_s=timing.retry_period_s)
    assert any("leader election" in p for p in unsafe_timings(s))


def test_default_settings_are_sound() -> None:
    from controller.settings import ControllerSettings, unsafe_timings

    assert unsafe_timings(ControllerSettings()) == []
