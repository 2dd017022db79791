"""The order desk and the fencer: verification, the acknowledgement, idempotence,
"already rebooted", kubelet restarts, no-watchdog cases, watchdog failure fallback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from agent_testkit import BOOT, NODE
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.clock import FakeClock
from core.fence_order import Action, OrderKey
from core.peer_client import OrderOutcome
from node_agent.boot import BootIdentity
from node_agent.commands import FakeRunner
from node_agent.feeder import WatchdogKeeper
from node_agent.fencing import FallbackSettings, FenceMethod, Fencer
from node_agent.isolation import OrderSource
from node_agent.metrics import AgentMetrics
from node_agent.orders import OrderDesk
from node_agent.watchdog import FakeWatchdog


@dataclass
class Desk:
    desk: OrderDesk
    fencer: Fencer
    keeper: WatchdogKeeper
    watchdog: FakeWatchdog | None
    runner: FakeRunner
    metrics: AgentMetrics
    clock: FakeClock


@pytest.fixture
def make_desk(private_key: Ed25519PrivateKey, clock: FakeClock) -> Callable[..., Desk]:
    def make(
        watchdog: bool = True, fallback: bool = False, boot_id: str | None = BOOT, exit_code: int = 0
    ) -> Desk:
        wd = FakeWatchdog(timeout_s=6) if watchdog else None
        metrics = AgentMetrics()
        keeper = WatchdogKeeper((lambda: wd) if wd else None, clock, metrics, 6)  # type: ignore[arg-type,return-value]
        runner = FakeRunner(exit_code)
        fencer = Fencer(
            node=NODE,
            keeper=keeper,
            clock=clock,
            metrics=metrics,
            fallback=FallbackSettings(fallback, "reboot-now", 5.0, lambda t: t),
            runner=runner,
            boot_id=lambda: boot_id,
        )
        desk = OrderDesk(
            node=NODE,
            public_keys=[OrderKey.of(private_key.public_key())],
            boot=BootIdentity(boot_id, None, from_node_status=boot_id is None),
            clock=clock,
            fencer=fencer,
            metrics=metrics,
            max_clock_skew_s=30.0,
            runner=runner,
            kubelet_restart_command="systemctl restart kubelet",
            kubelet_restart_timeout_s=9.0,
        )
        return Desk(desk, fencer, keeper, wd, runner, metrics, clock)

    return make


def test_fence_order_stops_feeding_and_acknowledges_the_exact_last_feed(
    make_desk: Callable[..., Desk], make_token: Callable[..., str], clock: FakeClock
) -> None:
    d = make_desk()
    d.keeper.ensure_open()
    d.keeper.grant(clock.monotonic() + 100)
    clock.advance(1)
    d.keeper.feed_once()
    fed_at = clock.now()
    clock.advance(0.5)
    answer = d.desk.submit(make_token(), OrderSource.DIRECT)
    assert answer.outcome is OrderOutcome.FENCING
    ack = answer.acknowledgement
    assert ack is not None
    assert (ack.last_feed_at, ack.watchdog_timeout_s, ack.method) == (fed_at, 6, "watchdog")
    assert ack.fence_started_at == clock.now() and ack.boot_id == BOOT
    assert d.desk.fence_source is OrderSource.DIRECT
    assert d.keeper.feed_once() is False
    labels = {"action": "fence", "source": "direct", "outcome": "Fencing"}
    assert d.metrics.registry.get_sample_value("nodewarden_agent_orders_total", labels) == 1
    assert d.metrics.registry.get_sample_value("nodewarden_agent_fence_actions_total", {"trigger": "OrderDelivered"}) == 1


def test_second_delivery_answers_the_same_acknowledgement(
    make_desk: Callable[..., Desk], make_token: Callable[..., str], clock: FakeClock
) -> None:
    d = make_desk()
    first = d.desk.submit(make_token(), OrderSource.API)
    clock.advance(3)
    again = d.desk.submit(make_token(), OrderSource.PEER)
    assert again.acknowledgement is not None and first.acknowledgement is not None
    assert again.acknowledgement.last_feed_at == first.acknowledgement.last_feed_at
    assert again.acknowledgement.fence_started_at == first.acknowledgement.fence_started_at
    assert d.desk.fence_source is OrderSource.API


def test_order_for_an_earlier_boot_is_already_rebooted_and_does_nothing(
    make_desk: Callable[..., Desk], make_token: Callable[..., str]
) -> None:
    d = make_desk()
    answer = d.desk.submit(make_token(boot_id="boot-previous"), OrderSource.DIRECT)
    assert answer.outcome is OrderOutcome.ALREADY_REBOOTED
    assert d.fencer.record is None and d.desk.fence_source is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"node": "worker-2"}, "WrongNode"),
        ({"ttl_s": 10.0, "issued_at": 1_000.0}, "Expired"),
        ({"issued_at": 1_700_000_000.0 + 3600}, "NotYetValid"),
        ({"key": Ed25519PrivateKey.generate()}, "BadSignature"),
    ],
)
def test_invalid_orders_are_rejected_with_their_reason(
    make_desk: Callable[..., Desk], make_token: Callable[..., str], kwargs: dict[str, object], reason: str
) -> None:
    d = make_desk()
    answer = d.desk.submit(make_token(**kwargs), OrderSource.DIRECT)
    assert (answer.outcome, answer.reason) == (OrderOutcome.REJECTED, reason)
    assert d.fencer.record is None


def test_garbage_is_malformed(make_desk: Callable[..., Desk]) -> None:
    answer = make_desk().desk.submit("nwf1.not.valid", OrderSource.DIRECT)
    assert (answer.outcome, answer.reason) == (OrderOutcome.REJECTED, "Malformed")


def test_unknown_boot_answers_not_ready_and_never_already_rebooted(
    make_desk: Callable[..., Desk], make_token: Callable[..., str]
) -> None:
    d = make_desk(boot_id=None)
    answer = d.desk.submit(make_token(), OrderSource.DIRECT)
    assert answer.outcome is OrderOutcome.NOT_READY
    assert d.fencer.record is None
    counted = d.metrics.registry.get_sample_value(
        "nodewarden_agent_orders_total", {"action": "fence", "source": "direct", "outcome": "NotReady"}
    )
    assert counted == 1  # counted under the order's action, not "unknown"


def test_restart_kubelet_runs_once_and_reports_its_result(
    make_desk: Callable[..., Desk], make_token: Callable[..., str]
) -> None:
    d = make_desk()
    token = make_token(action=Action.RESTART_KUBELET)
    assert d.desk.submit(token, OrderSource.DIRECT).outcome is OrderOutcome.KUBELET_RESTART_RUNNING
    for thread in d.desk.restart_threads:
        thread.join(5)
    again = d.desk.submit(token, OrderSource.API)
    assert again.outcome is OrderOutcome.KUBELET_RESTART_SUCCEEDED
    assert d.runner.calls == [("systemctl restart kubelet", 9.0)]
    assert d.fencer.record is None and d.keeper.stopped is False


def test_failed_kubelet_restart_is_reported(make_desk: Callable[..., Desk], make_token: Callable[..., str]) -> None:
    d = make_desk(exit_code=1)
    token = make_token(action=Action.RESTART_KUBELET)
    d.desk.submit(token, OrderSource.DIRECT)
    for thread in d.desk.restart_threads:
        thread.join(5)
    assert d.desk.submit(token, OrderSource.DIRECT).outcome is OrderOutcome.KUBELET_RESTART_FAILED


def test_restart_kubelet_is_refused_while_fencing(
    make_desk: Callable[..., Desk], make_token: Callable[..., str]
) -> None:
    d = make_desk()
    d.desk.submit(make_token(), OrderSource.DIRECT)
    answer = d.desk.submit(make_token(action=Action.RESTART_KUBELET, uid="uid-2"), OrderSource.DIRECT)
    assert (answer.outcome, answer.reason) == (OrderOutcome.REJECTED, "Fencing")
    assert d.runner.calls == []


def test_no_watchdog_and_no_fallback_cannot_fence(
    make_desk: Callable[..., Desk], make_token: Callable[..., str]
) -> None:
    d = make_desk(watchdog=False)
    answer = d.desk.submit(make_token(), OrderSource.DIRECT)
    assert answer.outcome is OrderOutcome.CANNOT_FENCE
    assert answer.acknowledgement is None


def test_no_watchdog_with_fallback_reboots_by_software_at_once(
    make_desk: Callable[..., Desk], make_token: Callable[..., str]
) -> None:
    d = make_desk(watchdog=False, fallback=True)
    answer = d.desk.submit(make_token(), OrderSource.DIRECT)
    assert answer.outcome is OrderOutcome.FENCING
    assert answer.acknowledgement is not None
    assert answer.acknowledgement.method == "software-reboot"
    assert answer.acknowledgement.last_feed_at is None
    assert d.fencer.fallback_thread is not None
    d.fencer.fallback_thread.join(5)
    assert d.runner.calls == [("reboot-now", 5.0)]


def test_watchdog_that_fails_to_reset_is_reported_then_fallback_runs(
    make_desk: Callable[..., Desk], clock: FakeClock
) -> None:
    d = make_desk(fallback=True)
    record = d.fencer.begin("Isolated")
    assert record.method is FenceMethod.WATCHDOG
    clock.advance(11.9)  # timeout 6 + grace 6
    d.fencer.check_watchdog()
    assert d.fencer.fallback_thread is None
    clock.advance(0.2)
    d.fencer.check_watchdog()
    assert d.fencer.fallback_thread is not None
    d.fencer.fallback_thread.join(5)
    assert d.runner.calls == [("reboot-now", 5.0)]
    assert d.metrics.registry.get_sample_value("nodewarden_agent_watchdog_failures_total") == 1
    assert d.metrics.registry.get_sample_value("nodewarden_agent_fallback_reboots_total", {"result": "ok"}) == 1


def test_watchdog_failure_without_fallback_is_only_reported(
    make_desk: Callable[..., Desk], clock: FakeClock
) -> None:
    d = make_desk(fallback=False)
    d.fencer.begin("Isolated")
    clock.advance(13)
    d.fencer.check_watchdog()
    assert d.runner.calls == [] and d.fencer.fallback_thread is None
    assert d.metrics.registry.get_sample_value("nodewarden_agent_watchdog_failures_total") == 1


def test_agent_report_is_offered_until_written(make_desk: Callable[..., Desk], clock: FakeClock) -> None:
    d = make_desk()
    assert d.fencer.pending_report() is None
    d.fencer.begin("Isolated")
    report = d.fencer.pending_report()
    assert report is not None
    assert set(report) == {"fenceStartedAt", "lastFeedAt", "watchdogTimeoutSeconds", "bootId"}
    assert report["watchdogTimeoutSeconds"] == 6 and report["bootId"] == BOOT
    assert report["fenceStartedAt"].endswith("Z")
    d.fencer.report_written()
    assert d.fencer.pending_report() is None
