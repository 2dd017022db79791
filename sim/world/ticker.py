"""One thread that runs every periodic and delayed task of the simulated cluster
(kubelets, controllers), in due-time order. One thread keeps thousands of simulated
nodes cheap; a task that falls behind shows up as lateness, which the scale benchmark
measures."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sim.ticker")


class Ticker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sim-ticker", daemon=True)
        self.max_lateness_s = 0.0
        self.paused = threading.Event()  # set while the control plane is "down" (API outage)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def call_at(self, due: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), fn))
            self._cond.notify()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_at(self.clock() + max(0.0, delay), fn)

    def every(self, period: float, fn: Callable[[], None], first_delay: float | None = None,
              alive: Callable[[], bool] = lambda: True) -> None:
        """Run fn every `period` seconds (measured from its due time, so it does not drift)
        for as long as alive() is true."""

        def run(due: float) -> None:
            if not alive():
                return
            try:
                fn()
            except Exception:
                log.exception("periodic task %s failed", getattr(fn, "__qualname__", fn))
            nxt = due + period
            now = self.clock()
            if nxt < now:  # fell behind: skip missed runs rather than bunching them
                nxt = now + period
            self.call_at(nxt, lambda: run(nxt))

        start = self.clock() + (period if first_delay is None else first_delay)
        self.call_at(start, lambda: run(start))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > self.clock()):
                    timeout = None if not self._heap else max(0.0, self._heap[0][0] - self.clock())
                    self._cond.wait(timeout if timeout is None else min(timeout, 1.0))
                if self._stopped:
                    return
                due, _, fn = heapq.heappop(self._heap)
            late = self.clock() - due
            if late > self.max_lateness_s:
                self.max_lateness_s = late
            try:
                fn()
            except Exception:
                log.exception("task failed")
