"""Prometheus and Alertmanager, emulated for the chaos suite: the `NodeNotReady` rule
evaluated on the nodes' Ready condition, and Alertmanager's webhook deliveries to the
real webhook, with the misbehaviour Alertmanager is allowed (at-least-once delivery,
an HA pair's second copy, retries overtaking each other, repeats, late redeliveries).

The real chain (Debian's Prometheus and Alertmanager) is tested end to end in
tests/e2e/test_chain.py; here it would be too slow to start for every seed, and could not
be made to duplicate or reorder on purpose.

What it models, in cluster seconds (multiplied by the world's time scale):

- the rule `NodeNotReady` (`Ready` not True, `for: 30s`) evaluated every 15 s: pending at
  the first evaluation that sees the node not Ready, firing two evaluations later;
  `startsAt` is the moment it became pending, as Prometheus sets it, and stays the same
  for every notification of that episode; the fingerprint is one per node (the hash of
  the alert's labels), the same in every episode;
- Alertmanager's route from docs/webhook.md: `group_by: [alertname, node]`,
  `group_wait: 0s`, `group_interval: 30s`, `repeat_interval: 5m`, `send_resolved: true`:
  a firing notification at once, again every 5 minutes while it fires, a resolved one at
  the next group interval after the node is Ready again (`endsAt` set);
- a failed delivery (5xx, no answer) is retried every 10 s until it succeeds, as
  Alertmanager sends an unacknowledged notification again at the next flush;
- duplicates: with probability `duplicate_p` a notification goes twice (within 3 s);
- reordering: with probability `delay_p` a resolved or repeated notification is held
  back up to `max_delay_s`, so that later ones overtake it (the first firing
  notification of an episode is never held back: that would only delay recovery);
- `flap(node)`: a resolved notification for the firing alert while the node is still
  down (one scrape missed resets the rule), then it fires again after `for:` with a new
  `startsAt`;
- `stale(node)`: the node's last firing notification delivered again, late.

Every delivery and the webhook's answer is kept in `deliveries`.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from harness.world import ALERTMANAGER_TOKEN, World
from tests.chaos.schedule import Delivery

EVAL_S = 15.0
FOR_S = 30.0
GROUP_WAIT_S = 0.0
GROUP_INTERVAL_S = 30.0
REPEAT_S = 300.0
RETRY_S = 10.0
DUPLICATE_WITHIN_S = 3.0


def _fingerprint(node: str) -> str:
    """Alertmanager's fingerprint is a hash of the alert's labels: one per node."""
    return hashlib.sha256(f"NodeNotReady/{node}/critical".encode()).hexdigest()[:16]


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Rule:
    state: str = "inactive"  # inactive | pending | firing
    active_at: float = 0.0  # wall time it became pending: the alert's startsAt
    pending_evals: int = 0
    last_sent: float = 0.0
    last_firing: dict[str, Any] | None = None  # the last firing notification's alert


@dataclass
class Sent:
    at: float
    node: str
    status: str
    kind: str  # first | repeat | resolved | flap | stale
    starts_at: str
    copy: int
    code: int = 0
    outcome: str = ""
    reason: str = ""
    attempts: int = 0
    delayed_s: float = 0.0
    answered_at: float = 0.0
    error: str = ""

    def line(self, t0: float, scale: float) -> str:
        where = f"t={(self.at - t0) / scale:7.1f}s"
        answer = f"{self.code} {self.outcome} {self.reason}".strip() if self.code else (self.error or "no answer")
        extra = f" held {self.delayed_s:.0f}s" if self.delayed_s else ""
        extra += f" after {self.attempts} attempts" if self.attempts > 1 else ""
        done = f" answered t={(self.answered_at - t0) / scale:7.1f}s" if self.answered_at else ""
        return (f"{where}  {self.status:8} {self.node} ({self.kind}, copy {self.copy}, startsAt {self.starts_at})"
                f"{extra}: {answer}{done}")


class Alertmanager:
    def __init__(self, world: World, seed: int | None, delivery: Delivery) -> None:
        self.w = world
        self.scale = world.scale
        self.seed = seed
        self.delivery = delivery
        self.rules = {node: _Rule() for node in world.cluster.nodes}
        self.deliveries: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = 0
        self._threads: list[threading.Thread] = []
        self._loop = threading.Thread(target=self._run, name="alertmanager", daemon=True)
        self.on_post: list[Callable[[str, str], None]] = []  # (node, status) as each delivery attempt begins

    # -- the rule ---------------------------------------------------------------------

    def start(self) -> Alertmanager:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._loop.join(timeout=10)
        for t in list(self._threads):
            t.join(timeout=15)

    def _ready(self, node: str) -> bool:
        obj = self.w.cluster.get("nodes", node) or {}
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (obj.get("status") or {}).get("conditions") or [])

    def _run(self) -> None:
        interval = EVAL_S * self.scale
        while not self._stop.wait(interval):
            for node in self.rules:
                self._evaluate(node, self._ready(node))

    def _evaluate(self, node: str, ready: bool) -> None:
        now = time.time()
        with self._lock:
            rule = self.rules[node]
            if not ready:
                if rule.state == "inactive":
                    rule.state, rule.active_at, rule.pending_evals = "pending", now, 0
                    return
                rule.pending_evals += 1
                if rule.state == "pending" and rule.pending_evals * EVAL_S >= FOR_S:
                    rule.state = "firing"
                    self._notify(node, rule, "firing", "first", delay_after=GROUP_WAIT_S)
                elif rule.state == "firing" and now - rule.last_sent >= REPEAT_S * self.scale:
                    self._notify(node, rule, "firing", "repeat")
            elif rule.state == "pending":
                rule.state = "inactive"
            elif rule.state == "firing":
                rule.state = "inactive"
                wait = self._rng(node).uniform(0.0, GROUP_INTERVAL_S)
                self._notify(node, rule, "resolved", "resolved", delay_after=wait)

    # -- what the runner asks for -------------------------------------------------------

    def flap(self, node: str) -> bool:
        """Resolve the node's firing alert while the node is down; it fires again later."""
        with self._lock:
            rule = self.rules[node]
            if rule.state != "firing":
                return False
            self._notify(node, rule, "resolved", "flap")
            rule.state = "inactive"
            return True

    def stale(self, node: str) -> bool:
        with self._lock:
            rule = self.rules[node]
            if rule.last_firing is None:
                return False
            self._send(node, dict(rule.last_firing), "stale", copy=1, hold_s=0.0)
            return True

    # -- delivery -----------------------------------------------------------------------

    def _rng(self, node: str) -> random.Random:
        self._counter += 1
        return random.Random(f"{self.seed}/{node}/{self._counter}")

    def _notify(self, node: str, rule: _Rule, status: str, kind: str, delay_after: float = 0.0) -> None:
        """Called with the lock held."""
        now = time.time()
        alert = {"status": status,
                 "labels": {"alertname": "NodeNotReady", "node": node, "severity": "critical"},
                 "annotations": {"summary": f"Node {node} is not Ready."},
                 "startsAt": _rfc3339(rule.active_at),
                 "endsAt": _rfc3339(now) if status == "resolved" else "0001-01-01T00:00:00Z",
                 "generatorURL": "http://prometheus/graph", "fingerprint": _fingerprint(node)}
        if status == "firing":
            rule.last_sent = now
            rule.last_firing = alert
        rng = self._rng(node)
        hold = 0.0
        if kind != "first" and rng.random() < self.delivery.delay_p:
            hold = rng.uniform(5.0, self.delivery.max_delay_s)
        self._send(node, alert, kind, copy=1, hold_s=delay_after + hold, held=hold)
        if rng.random() < self.delivery.duplicate_p:
            self._send(node, alert, kind, copy=2, hold_s=delay_after + hold + rng.uniform(0.0, DUPLICATE_WITHIN_S),
                       held=hold)

    def _send(self, node: str, alert: dict[str, Any], kind: str, copy: int, hold_s: float,
              held: float = 0.0) -> None:
        sent = Sent(time.time() + hold_s * self.scale, node, alert["status"], kind, alert["startsAt"], copy,
                    delayed_s=held)
        self.deliveries.append(sent)
        thread = threading.Thread(target=self._deliver, args=(sent, alert, hold_s), daemon=True,
                                  name=f"deliver-{node}")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _deliver(self, sent: Sent, alert: dict[str, Any], hold_s: float) -> None:
        if hold_s and self._stop.wait(hold_s * self.scale):
            sent.error = "not sent: stopped"
            return
        body = {"version": "4", "groupKey": f'{{}}:{{alertname="NodeNotReady", node="{sent.node}"}}',
                "truncatedAlerts": 0, "status": alert["status"], "receiver": "nodewarden",
                "groupLabels": {"alertname": "NodeNotReady", "node": sent.node},
                "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
                "externalURL": "http://alertmanager:9093", "alerts": [alert]}
        while True:
            sent.attempts += 1
            for hook in list(self.on_post):
                hook(sent.node, sent.status)
            try:
                response = requests.post(f"{self.w.webhook_url}/api/v1/alerts", json=body, timeout=5,
                                         headers={"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"})
                sent.code = response.status_code
                if response.status_code < 500:
                    sent.answered_at = time.time()
                    try:
                        verdict = response.json()["alerts"][0]
                        sent.outcome, sent.reason = verdict.get("outcome", ""), verdict.get("reason", "")
                    except (ValueError, KeyError, IndexError, TypeError):
                        sent.outcome = response.text[:200]
                    return
            except requests.RequestException as err:
                sent.error = type(err).__name__
            if self._stop.wait(RETRY_S * self.scale):
                return
