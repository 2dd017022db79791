"""The decision loop: check the API, ask peers when needed, decide, act.

One `step()` does, in order:
1. the API check when it is due (every `api_check_interval_s`): an order found in the
   NodeRemediation goes to the order desk;
2. opens or closes the isolation question (a worker: open from `threshold` failed checks
   until a check succeeds; a control-plane node: open whenever it knows enough peers);
3. while the question is open, asks the next batch of peers (at most once per loop
   tick): at once while the verdict is Suspect; while it is Run, every check interval
   (so peers re-read this node's NodeRemediation and relay an order) and whenever the
   answers the verdict rests on would not carry it on half the isolation timeout;
4. decides (`isolation.decide`) and acts: Run opens the watchdog if needed; Fence begins
   the fence; every verdict but Fence renews the feeder's grant. A changed decision is
   logged once with its reason and counted.

The loop never sleeps longer than a tick, so the grant is renewed at least every
`max(2 x api timeout, peer timeout) + tick`, which `feed_grant_s` covers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from core.clock import Clock
from node_agent.apicheck import ApiChecker
from node_agent.feeder import WatchdogKeeper
from node_agent.fencing import Fencer
from node_agent.isolation import Decision, Observation, OrderSource, Policy, Verdict, decide
from node_agent.metrics import AgentMetrics
from node_agent.orders import OrderDesk
from node_agent.peers import PeerDirectory, PeerPoll
from node_agent.settings import AgentSettings

log = logging.getLogger(__name__)


class Agent:
    def __init__(
        self,
        *,
        settings: AgentSettings,
        clock: Clock,
        metrics: AgentMetrics,
        checker: ApiChecker,
        desk: OrderDesk,
        fencer: Fencer,
        keeper: WatchdogKeeper,
        directory: PeerDirectory,
        poll: PeerPoll,
        control_plane: Callable[[], bool],
        committed: Callable[[], bool] = lambda: True,
    ) -> None:
        self._s = settings
        self._clock = clock
        self._metrics = metrics
        self._checker = checker
        self._desk = desk
        self._fencer = fencer
        self._keeper = keeper
        self._directory = directory
        self._poll = poll
        self._control_plane = control_plane
        self._committed = committed
        self._policy = Policy(
            api_failure_threshold=settings.api_failure_threshold,
            isolation_timeout_s=settings.isolation_timeout_s,
            min_peers=settings.min_peers,
            too_few_peers=settings.too_few_peers,
            outage_quorum=settings.quorum,
        )
        self._next_check: float | None = None
        self._peers_at_open = 0
        self._support_at: float | None = None  # when the answers of the last peer-based Run arrived
        self.decision: Decision | None = None

    # The loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # keep deciding; a stuck or dead loop stops the feeding anyway
                log.exception("decision loop step failed")
            stop.wait(self._sleep_s())

    def _sleep_s(self) -> float:
        if self._next_check is None:
            return 0.0
        return max(0.0, min(self._s.loop_tick_s, self._next_check - self._clock.monotonic()))

    def step(self) -> Decision:
        now = self._clock.monotonic()
        if self._next_check is None or now >= self._next_check:
            self._next_check = now + self._s.api_check_interval_s
            result = self._checker.check()
            if result.ok and result.order_token:
                self._desk.submit(result.order_token, OrderSource.API)
        self._update_question()
        if self._should_ask():
            self._poll.ask_next_batch(self._ask_deadline())
        decision = self._decide()
        self._fencer.check_watchdog()
        return decision

    # Steps -----------------------------------------------------------------------------

    def _known_peers(self) -> int:
        count = len(self._directory.peers())
        self._metrics.known_peers.set(count)
        return count

    def _update_question(self) -> None:
        enough = self._known_peers() >= self._s.min_peers
        cut_off = (
            not self._checker.last_ok and self._checker.failures >= self._s.api_failure_threshold
        )
        wanted = cut_off or (enough and self._control_plane())
        if not wanted:
            self._poll.close()
            self._support_at = None
            return
        if self._poll.is_open and enough and self._peers_at_open < self._s.min_peers:
            self._poll.close()  # peers became known: ask them afresh
        if not self._poll.is_open:
            self._poll.open()
            self._support_at = None
            self._peers_at_open = len(self._directory.peers())

    def _should_ask(self) -> bool:
        if not self._poll.is_open or self._fencer.record is not None:
            return False
        if self._known_peers() == 0:
            return False
        last = self._poll.last_ask_at
        if last is None:
            return True
        since = self._clock.monotonic() - last
        if since < self._s.loop_tick_s:
            return False
        if self.decision is None or self.decision.verdict is not Verdict.RUN:
            return True  # undecided: next batch now
        if since >= self._s.api_check_interval_s:
            return True  # peers re-read our NodeRemediation: how an order reaches us
        return self._evidence_ageing()

    def _evidence_ageing(self) -> bool:
        """Would the current Run verdict still hold on answers younger than half the
        isolation timeout? If not, refresh them before they expire (a control-plane
        outage needs a majority of fresh answers, which ask batch by batch)."""
        half = replace(self._policy, isolation_timeout_s=self._s.isolation_timeout_s / 2)
        observation = self._observe()
        current = decide(observation, self._policy)
        return decide(observation, half).key != current.key

    def _ask_deadline(self) -> float | None:
        open_s = self._poll.open_s()
        if open_s is None:
            return None
        now = self._clock.monotonic()
        newest = min((a.age_s for a in self._poll.answers()), default=open_s)
        return now - min(open_s, newest) + self._s.isolation_timeout_s

    def _observe(self) -> Observation:
        return Observation(
            fence_order=self._desk.fence_source,
            api_reachable=bool(self._checker.last_ok),
            api_failures=self._checker.failures,
            control_plane=self._control_plane(),
            known_peers=self._known_peers(),
            answers=self._poll.answers() if self._poll.is_open else (),
            question_open_s=self._poll.open_s(),
            committed=self._committed(),
            support_age_s=(
                None if self._support_at is None else self._clock.monotonic() - self._support_at
            ),
        )

    def _decide(self) -> Decision:
        decision = decide(self._observe(), self._policy)
        if decision.support_age_s is not None:
            at = self._clock.monotonic() - decision.support_age_s
            self._support_at = at if self._support_at is None else max(self._support_at, at)
        if self.decision is None or decision.key != self.decision.key:
            self._metrics.decisions.labels(verdict=str(decision.verdict), reason=str(decision.reason)).inc()
            level = logging.WARNING if decision.verdict is not Verdict.RUN else logging.INFO
            log.log(level, "decision: %s (%s) %s", decision.verdict, decision.reason, decision.detail)
        self.decision = decision
        if decision.verdict is Verdict.FENCE:
            if self._fencer.record is None:
                self._fencer.begin(str(decision.reason))
            return decision
        if self._fencer.record is None:
            if decision.verdict is Verdict.RUN:
                self._keeper.ensure_open()
            self._keeper.grant(self._clock.monotonic() + self._s.feed_grant_s)
        return decision

    @property
    def may_disarm(self) -> bool:
        """Whether a clean shutdown may disarm the watchdog: no fence began and the node
        was last found free to run (not while it suspects it is cut off)."""
        return (
            self._fencer.record is None
            and self.decision is not None
            and self.decision.verdict is Verdict.RUN
        )
