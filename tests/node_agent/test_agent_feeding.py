"""WatchdogKeeper: lazy arming, feeding only under a live grant, the exact fence latch,
and the shutdown rule (disarm only if no fence began)."""

from __future__ import annotations

from core.clock import FakeClock
from node_agent.feeder import WatchdogKeeper
from node_agent.metrics import AgentMetrics
from node_agent.watchdog import FakeWatchdog, WatchdogError


def keeper_with(clock: FakeClock, wd: FakeWatchdog | None) -> tuple[WatchdogKeeper, list[int]]:
    opened: list[int] = []

    def opener() -> FakeWatchdog:
        assert wd is not None
        opened.append(1)
        return wd

    return WatchdogKeeper(opener if wd else None, clock, AgentMetrics(), 60.0), opened


def test_device_is_not_armed_until_asked(clock: FakeClock) -> None:
    wd = FakeWatchdog()
    keeper, opened = keeper_with(clock, wd)
    keeper.grant(clock.monotonic() + 10)
    assert keeper.feed_once() is False
    assert opened == []
    assert keeper.ensure_open() is True
    assert keeper.last_feed_at == clock.now()  # opening counts as a feed
    assert keeper.timeout_s == 60.0


def test_feeds_only_while_the_grant_holds(clock: FakeClock) -> None:
    wd = FakeWatchdog()
    keeper, _ = keeper_with(clock, wd)
    keeper.ensure_open()
    keeper.grant(clock.monotonic() + 5)
    assert keeper.feed_once() is True
    clock.advance(5)
    assert keeper.feed_once() is False  # the loop stopped renewing: feeding stops by itself
    assert wd.feeds == 1


def test_latch_reports_the_exact_last_feed_and_stops_all_later_feeds(clock: FakeClock) -> None:
    wd = FakeWatchdog(timeout_s=7)
    keeper, _ = keeper_with(clock, wd)
    keeper.ensure_open()
    keeper.grant(clock.monotonic() + 100)
    clock.advance(2)
    keeper.feed_once()
    fed_at = clock.now()
    clock.advance(1)
    stop = keeper.stop_feeding_forever()
    assert (stop.last_feed_at, stop.watchdog_timeout_s, stop.armed) == (fed_at, 7, True)
    keeper.grant(clock.monotonic() + 100)
    assert keeper.feed_once() is False
    assert wd.fence_begun
    assert keeper.stop_feeding_forever() == stop  # idempotent


def test_latch_arms_a_device_that_was_never_opened(clock: FakeClock) -> None:
    wd = FakeWatchdog()
    keeper, opened = keeper_with(clock, wd)
    stop = keeper.stop_feeding_forever()
    assert opened == [1] and stop.armed and stop.last_feed_at == clock.now()
    assert wd.fence_begun


def test_latch_without_a_device_reports_nothing_armed(clock: FakeClock) -> None:
    keeper, _ = keeper_with(clock, None)
    stop = keeper.stop_feeding_forever()
    assert (stop.armed, stop.last_feed_at, stop.watchdog_timeout_s) == (False, None, None)


def test_shutdown_disarms_only_without_a_fence(clock: FakeClock) -> None:
    wd = FakeWatchdog()
    keeper, _ = keeper_with(clock, wd)
    keeper.ensure_open()
    keeper.shutdown(disarm=True)
    assert wd.closed == "disarmed"

    wd2 = FakeWatchdog()
    keeper2, _ = keeper_with(clock, wd2)
    keeper2.ensure_open()
    keeper2.stop_feeding_forever()
    keeper2.shutdown(disarm=True)
    assert wd2.closed == "armed"


def test_open_failure_is_reported_and_retried(clock: FakeClock) -> None:
    attempts: list[int] = []

    def opener() -> FakeWatchdog:
        attempts.append(1)
        if len(attempts) == 1:
            raise WatchdogError("cannot open watchdog /dev/watchdog: Device or resource busy")
        return FakeWatchdog()

    keeper = WatchdogKeeper(opener, clock, AgentMetrics(), 60.0)
    assert keeper.ensure_open() is False
    assert keeper.open_error is not None and "busy" in keeper.open_error
    assert keeper.ensure_open() is True
    assert keeper.open_error is None


def test_feed_errors_are_counted_not_raised(clock: FakeClock) -> None:
    wd = FakeWatchdog(fail_feeds=True)
    metrics = AgentMetrics()
    keeper = WatchdogKeeper(lambda: wd, clock, metrics, 60.0)
    keeper.ensure_open()
    keeper.grant(clock.monotonic() + 5)
    assert keeper.feed_once() is False
    assert metrics.registry.get_sample_value("nodewarden_agent_watchdog_feed_errors_total") == 1
