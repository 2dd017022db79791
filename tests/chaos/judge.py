"""The chaos judge: what a run of one schedule is held to, from what the run recorded
(the simulator's timeline and invariant monitor, the remediations' transitions, the
agents' logs). A mixin of the runner (tests/chaos/runner.py), which records; judged on a
recorded timeline without a world in tests/chaos/test_judge.py.

What is checked after the schedule, once every node is back, Ready and untainted, every
remediation finished and every pod running (or the settle time ran out):

1. the simulator's invariant monitor reports no violation (at-most-one, unsafe-taint,
   stale-taint);
2. no node that died and came back keeps the out-of-service taint;
3. the StatefulSet pods of every dead node run on another node within the recovery bound
   (`recovery_bound`, tests/chaos/bound.py), for every fault that lasted that long;
4. no remediation ends `Failed` with reason `FenceNotObserved`, and no remediation holds
   more than one fence order;
5. no node is reset by its watchdog without a reason: a fence order for it since it
   booted, or a fault that cuts it off (`judge_resets`). Resetting is always safe, so the
   invariant monitor cannot see a node fenced for nothing; this check does;
6. the world faults' own rules (tests/chaos/judge_world.py): group partitions, API
   slowness and throttling, a controller-manager restart, agent clocks off;
7. no fence without cause under attack: no remediation reaches Fenced while the last
   answer to its order is a refusal (anything but AlreadyRebooted) and the node has not
   been reset or powered off since the order (`judge_refused`); no out-of-service taint on
   a node that had no fault and no reset before it (`judge_taints`).

Attacks and mistakes (forged status, an untrusted key, a stopped agent, slow clients,
floods) may delay a recovery but never make it unsafe: a recovery that an attack
overlapped is judged against the bound restarted at the attack's end, like an API
outage, and the report says how much later than the un-attacked bound the pod moved; a
remediation that escalated to a person (AwaitingApproval) during an attack is not held to
the bound, since nobody approves in this world.

`finding_kind` names each finding's kind (FINDING_KINDS), so that a shrunk schedule
(tests/chaos/minimize.py) is held to fail the same way as the original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.waits import ready
from harness.world import agent_config
from sim.world.timings import Timings
from tests.chaos.bound import leader_takeover_s, recovery_bound
from tests.chaos.judge_world import WorldJudge
from tests.chaos.schedule import ATTACK_ACTIONS, Incident, Step

if TYPE_CHECKING:
    from harness.world import World

SETTLE_S = 600.0  # cluster seconds after the last step for everything to come back
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
FENCE_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) .*FENCE begun: trigger=(\w+)")

# The kinds of finding, most serious first: (kind, a pattern of its text).
FINDING_KINDS = (
    ("invariant:at-most-one", re.compile(r"^invariant at-most-one ")),
    ("invariant:unsafe-taint", re.compile(r"^invariant unsafe-taint ")),
    ("invariant:stale-taint", re.compile(r"^invariant stale-taint ")),
    ("invariant:other", re.compile(r"^invariant ")),
    ("fenced-although-refused", re.compile(r"although its agent refused the order")),
    ("taint-without-fault", re.compile(r"tainted out-of-service at .* without any fault")),
    ("taint-on-untrusted-clock", re.compile(r"tainted out-of-service at .* although its clock is")),
    ("reset-without-cause", re.compile(r"reset by its watchdog at .* with no fence order")),
    ("two-fence-orders", re.compile(r"stored \d+ different fence orders")),
    ("fence-not-observed", re.compile(r"Failed/FenceNotObserved")),
    ("taint-left", re.compile(r"still has the out-of-service taint")),
    ("recovery-late", re.compile(r"not running elsewhere by")),
    ("not-settled", re.compile(r"^not settled ")),
    ("run-stopped", re.compile(r"^the run stopped: ")),
)


def finding_kind(finding: str) -> str:
    """The kind of a finding (FINDING_KINDS), "other" for none of them."""
    return next((kind for kind, pattern in FINDING_KINDS if pattern.search(finding)), "other")


def worst_kind(findings: list[str]) -> str:
    """The most serious kind among `findings` ("" for none)."""
    kinds = {finding_kind(f) for f in findings}
    order = [k for k, _ in FINDING_KINDS] + ["other"]
    return next((k for k in order if k in kinds), "")


@dataclass
class Transition:
    at: float
    node: str
    uid: str
    phase: str
    reason: str
    order: str  # a digest of the fence order, "" before one is stored
    answer: str = ""  # the agent's last answer to the order: "<outcome>/<reason>"


@dataclass
class Recovery:
    pod: str
    incident: Incident
    died_at: float  # wall
    deadline: float  # wall
    bound_s: float  # cluster seconds from the (possibly restarted) start
    started_from: float  # wall: the fault, or the end of an API outage
    moved_at: float | None
    moved_to: str = ""
    checked: bool = True  # False: the node came back before the deadline
    note: str = ""  # how the bound was carried over to another dead node
    base_deadline: float = 0.0  # wall: the deadline had no attack overlapped
    attacked: str = ""  # the attacks that extended the deadline

    def delay_s(self, scale: float) -> float:
        """Cluster seconds the pod moved later than the un-attacked bound (0 if not later)."""
        if self.moved_at is None or not self.base_deadline:
            return 0.0
        return max(0.0, (self.moved_at - self.base_deadline) / scale)

    def ok(self) -> bool:
        return not self.checked or (self.moved_at is not None and self.moved_at <= self.deadline)


class Judge(WorldJudge):
    """The judging half of the runner: reads what the run recorded."""

    w: World
    out: Path
    recoveries: list[Recovery]
    unsettled: list[str]

    def published(self) -> tuple[float, float]:
        """The largest isolation-detect and watchdog timeout the agents publish (wall s)."""
        d = w = 0.0
        for node in self.c.nodes:
            ann = ((self.c.get("nodes", node) or {}).get("metadata") or {}).get("annotations") or {}
            d = max(d, float(ann.get("nodewarden.io/isolation-detect-seconds") or 0))
            w = max(w, float(ann.get("nodewarden.io/watchdog-timeout-seconds") or 0))
        return d, w

    def bound(self) -> dict[str, float]:
        return recovery_bound(self.scale, *self.published())

    def attack_windows(self, node: str = "") -> list[tuple[float, float, Step]]:
        """(wall start, wall end, step) of every attack or mistake that may slow a recovery
        (of `node`: its own agent stopped, or its status forged, count only for it)."""
        out = []
        for st in self.schedule.steps:
            if st.action not in ATTACK_ACTIONS or st not in self.step_at:
                continue
            if st.node and node and st.node != node:
                continue
            a = self.step_at[st]
            length = st.duration if st.duration else (st.restart_after or 0.0)
            out.append((a, a + length * self.scale, st))
        return out

    def _deadline(self, died_at: float, attacks: bool = False, node: str = "") -> tuple[float, float, float]:
        """(start, deadline, bound seconds): restarted at the end of any API outage (and,
        with `attacks`, of any attack on `node` or on everything) that overlaps, extended by
        every leader kill in the window."""
        base = sum(self.bound().values()) * self.scale
        takeover = leader_takeover_s(self.scale) * self.scale
        api_outages = [(self.step_at[s], self.step_at[s] + s.duration * self.scale)
                       for s in self.schedule.steps if s.action == "api-outage" and s in self.step_at]
        outages = api_outages + self.world_windows()
        if attacks:
            outages += [(a, b) for a, b, _ in self.attack_windows(node)]
        kills = [self.step_at[s] for s in self.schedule.steps if s.action == "leader-kill" and s in self.step_at]
        # The stricter world: an API outage longer than the renew deadline restarts the
        # simulated kube-controller-manager, which takes its Lease again only after its
        # restart back-off and the lease duration (then every controller starts afresh).
        kt = Timings()
        cm_restart = (kt.controller_manager_restart_s + kt.leader_lease_duration_s + kt.leader_retry_period_s) * self.scale
        start, deadline = died_at, died_at + base
        for _ in range(50):  # a fixed point: both only grow
            new_start = max([start] + [b for a, b in outages if a < deadline and b > start])
            kills_in = sum(1 for k in kills if new_start - takeover <= k <= deadline)
            restarted = any(a < deadline and b > died_at for a, b in api_outages)  # attacks restart nothing
            new_deadline = new_start + base + takeover * kills_in + (cm_restart if restarted else 0.0)
            if (new_start, new_deadline) == (start, deadline):
                break
            start, deadline = new_start, new_deadline
        return start, deadline, (deadline - start) / self.scale

    def _dead_spans(self) -> list[tuple[Incident, float, float]]:
        """(incident, wall start, wall end) of every fault that leaves a node dead."""
        spans = []
        for inc in self.schedule.incidents():
            if inc.dead and inc.start_step in self.step_at:
                end = self.step_at.get(inc.end_step, float("inf")) if inc.end_step else float("inf")
                spans.append((inc, self.step_at[inc.start_step], end))
        return spans

    def judge_recoveries(self) -> None:
        """Each StatefulSet pod of a dead node must run elsewhere within the bound. When its
        replacement is placed on a node that is itself already dead (Kubernetes cannot know
        before that node's grace period), the pod is that node's to recover: the bound then
        runs from that node's fault, and any later start counts (on that node once it is
        back, or on the first node once it is back)."""
        timeline = self.c.timeline
        started = [e for e in timeline.events(kind="pod-started") if e.at >= self.t0]
        placed = [e for e in timeline.events(kind="scheduled") if e.at >= self.t0]
        spans = self._dead_spans()
        for inc, died_at, back_at in spans:
            start, deadline, bound_s = self._deadline(died_at)
            for pod in self.pods_at(inc):
                obj, left, since, note = f"default/{pod}", {inc.node}, died_at, ""
                pod_start, pod_deadline, pod_bound = start, deadline, bound_s
                first_placed: float | None = None
                for _ in range(len(spans)):
                    place = next((e for e in placed if e.object == obj and e.at > since and e.node not in left), None)
                    onto = place and next(((j, a, b) for j, a, b in spans
                                           if j.node == place.node and a <= place.at < b), None)
                    if not place or not onto:
                        break
                    j, j_died, _ = onto
                    j_start, j_deadline, j_bound = self._deadline(j_died)
                    if j_deadline > pod_deadline:
                        pod_start, pod_deadline, pod_bound = j_start, j_deadline, j_bound
                    note = f"; its replacement was placed on {j.node}, itself down since t={self.ct(j_died):.1f}s"
                    left, since = {j.node}, place.at
                    first_placed = place.at if first_placed is None else first_placed
                if first_placed is None:
                    moved = next((e for e in started if e.object == obj and e.node != inc.node and e.at > died_at),
                                 None)
                else:  # any start of a later replacement, on its first node too once that is back
                    moved = next((e for e in started if e.object == obj and e.at > first_placed), None)
                # Placed elsewhere, the pod must start somewhere whether or not its first
                # node came back meanwhile.
                recovery = Recovery(pod, inc, died_at, pod_deadline, pod_bound, pod_start,
                                    moved.at if moved else None, moved.node if moved else "",
                                    checked=first_placed is not None or back_at > pod_deadline, note=note,
                                    base_deadline=pod_deadline)
                self._under_attack(recovery, back_at)
                self.excuse_off_clock(recovery)
                self.recoveries.append(recovery)

    def _under_attack(self, r: Recovery, back_at: float) -> None:
        """Extend a recovery's deadline by the attacks that overlap it (see the module
        docstring); one that escalated to a person under attack is not held to it."""
        node = r.incident.node
        hits = [st for a, b, st in self.attack_windows(node) if a < r.deadline and b > r.started_from]
        if not hits:
            return
        start, deadline, bound_s = self._deadline(r.died_at, attacks=True, node=node)
        if deadline > r.deadline:
            r.started_from, r.deadline, r.bound_s = start, deadline, bound_s
        r.attacked = ", ".join(sorted({st.action for st in hits}))
        r.checked = r.checked and back_at > r.deadline
        escalated = any(t.node == node and t.phase == "AwaitingApproval" and r.died_at <= t.at <= r.deadline
                        for t in self.transitions)
        if escalated and r.checked and not r.ok():
            r.checked = False
            r.note += f"; escalated to a person (AwaitingApproval) under {r.attacked}"

    def _fence_lines(self, node: str) -> list[tuple[float, str]]:
        """The agent's "FENCE begun" log lines on `node`: (wall time, trigger)."""
        path = self.out / "sim" / "logs" / f"agent-{node}.log"
        found = []
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            match = FENCE_LINE.match(line)
            if match:
                at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append((at, match.group(2)))
        return found

    def judge_resets(self) -> list[str]:
        """Every watchdog reset has a reason: a fence order for that node since it booted,
        or a fault that cut it off (from everything; from its peers while the API fails its
        checks: an outage, throttling or slowness; its agent killed for longer than the
        watchdog's timeout, or stopped).

        A 429 or an answer later than the agent's check timeout is a failed check, on
        purpose: an agent that cannot renew its heartbeat must act as cut off, or the
        controller's heartbeat-staleness proof would not hold. So a node cut off from its
        peers while throttling fails its checks (3 in a row at 60 % is 22 % per window)
        fences itself as it would in an outage (seed 206)."""
        s = self.scale
        after = 40.0 * s  # a fence begun just before a fault ended fires up to W later
        check_timeout = agent_config(s, 1.0, Path(), Path(), Path())["api_check_timeout_s"] / s  # cluster s
        outages = [(self.step_at[st], self.step_at[st] + st.duration * s)
                   for st in self.schedule.steps if st in self.step_at and (
                       st.action in ("api-outage", "api-throttle")
                       or (st.action == "api-slow" and st.delay >= check_timeout))]
        orders: dict[str, list[float]] = {}
        seen: set[tuple[str, str]] = set()
        for t in self.transitions:
            if t.order and (t.uid, t.order) not in seen:
                seen.add((t.uid, t.order))
                orders.setdefault(t.node, []).append(t.at)

        stops = [(st.node, self.step_at[st], self.step_at[st] + (st.restart_after or 5.0) * s)
                 for st in self.schedule.steps if st.action == "agent-stop" and st in self.step_at]

        def cut_off(node: str, at: float) -> bool:
            # A stopped agent that could not withdraw its capability (cut off from the API)
            # leaves its watchdog armed on purpose: the reset is its promise kept.
            if any(n == node and a <= at <= b + after for n, a, b in stops) or self.cut_off_by_group(node, at, after):
                return True
            for inc in self.schedule.incidents():
                if inc.node != node or inc.start_step not in self.step_at:
                    continue
                start = self.step_at[inc.start_step]
                end = self.step_at.get(inc.end_step, float("inf")) if inc.end_step else float("inf")
                if inc.kind == "partition-all" and start <= at <= end + after:
                    return True
                if inc.kind == "agent-kill" and start <= at <= start + (inc.start_step.restart_after or 5.0) * s + after:
                    return True
                if inc.kind == "partition-peers" and any(
                        max(start, a) <= at <= min(end, b) + after for a, b in outages):
                    return True
            return False

        out = []
        boots = self.c.timeline.events(kind="node-booted")
        for fired in self.c.timeline.events(kind="watchdog-fired", since=self.t0):
            node, at = fired.node, fired.at
            booted = max((b.at for b in boots if b.node == node and b.at <= at), default=0.0)
            if any(booted <= o <= at for o in orders.get(node, [])) or cut_off(node, at):
                continue
            why = [trigger for when, trigger in self._fence_lines(node) if when <= at]
            agent = f" (its agent's last fence: {why[-1]})" if why else ""
            out.append(f"{node} reset by its watchdog at t={self.ct(at):.1f}s with no fence order for it since it "
                       f"booted and no fault cutting it off{agent}")
        return out

    def _reset_between(self, node: str, a: float, b: float) -> bool:
        timeline = self.c.timeline
        return any(e.node == node and a <= e.at <= b for e in timeline.events(kind="watchdog-fired")) or any(
            e.node == node and a <= e.at <= b and (e.data or {}).get("power") == "off"
            for e in timeline.events(kind="node-power"))

    def _off_at(self, node: str, at: float) -> bool:
        """The node was powered off at `at` (its last power event before it says so): a
        refusal then came from a peer relaying the order, not from the node's agent."""
        last = [e for e in self.c.timeline.events(kind="node-power") if e.node == node and e.at <= at]
        return bool(last) and (last[-1].data or {}).get("power") == "off"

    def judge_refused(self) -> list[str]:
        """A refused order is not a fence: no Fenced while the agent's last answer is a
        refusal, the node is not powered off, and it has not been reset or powered off
        since the order."""
        out = []
        order_at: dict[tuple[str, str], float] = {}
        answer: dict[str, str] = {}
        for t in self.transitions:
            if t.order:
                order_at.setdefault((t.uid, t.order), t.at)
            answer[t.uid] = t.answer or answer.get(t.uid, "")
            refused = answer[t.uid].startswith(("Rejected", "CannotFence"))
            if t.phase == "Fenced" and refused and t.order:
                since = order_at[(t.uid, t.order)]
                if not self._reset_between(t.node, since, t.at) and not self._off_at(t.node, t.at):
                    out.append(f"remediation of {t.node} (uid {t.uid[:8]}) Fenced/{t.reason} at t={self.ct(t.at):.1f}s "
                               f"although its agent refused the order ({answer[t.uid]}) and the node was not "
                               f"reset since the order (t={self.ct(since):.1f}s)")
        return out

    def judge_taints(self) -> list[str]:
        """No out-of-service taint on a node without a fault or a reset before it."""
        out = []
        for e in self.c.timeline.events(kind="taint-added", since=self.t0):
            if (e.data or {}).get("key") != OUT_OF_SERVICE:
                continue
            faulted = any(inc.node == e.node and inc.start_step in self.step_at
                          and self.step_at[inc.start_step] <= e.at for inc in self.schedule.incidents())
            if not faulted and not self._reset_between(e.node, self.t0, e.at):
                out.append(f"{e.node} tainted out-of-service at t={self.ct(e.at):.1f}s without any fault or reset "
                           "before it")
        return out

    def findings(self) -> list[str]:
        c, w = self.c, self.w
        out = []
        if self.unsettled:
            out.append(f"not settled {SETTLE_S:.0f}s after the last step: " + "; ".join(self.unsettled))
        for v in c.invariants()["violations"]:
            out.append(f"invariant {v['kind']} at t={self.ct(v['at']):.1f}s on {v['node']}: {v['object']}: {v['detail']}")
        for node in c.nodes:
            if w.has_taint(node):
                out.append(f"{node} still has the out-of-service taint (Ready={ready(c, node)})")
        for t in self.transitions:
            if t.phase == "Failed" and t.reason == "FenceNotObserved":
                out.append(f"remediation of {t.node} (uid {t.uid[:8]}) Failed/FenceNotObserved at t={self.ct(t.at):.1f}s")
        orders: dict[str, set[str]] = {}
        for t in self.transitions:
            if t.order:
                orders.setdefault(t.uid, set()).add(t.order)
        for uid, seen in orders.items():
            if len(seen) > 1:
                node = next(t.node for t in self.transitions if t.uid == uid)
                out.append(f"remediation of {node} (uid {uid[:8]}) stored {len(seen)} different fence orders")
        out += self.judge_resets()
        out += self.judge_refused()
        out += self.judge_taints()
        out += self.judge_clock()
        self.judge_recoveries()
        for r in self.recoveries:
            if not r.ok():
                moved = (f"it started on {r.moved_to} at t={self.ct(r.moved_at):.1f}s" if r.moved_at
                         else "it never started elsewhere")
                out.append(f"{r.pod} ran on {r.incident.node} when {r.incident.kind} began at t={self.ct(r.died_at):.1f}s; "
                           f"not running elsewhere by t={self.ct(r.deadline):.1f}s (bound {r.bound_s:.0f}s from "
                           f"t={self.ct(r.started_from):.1f}s); {moved}{r.note}")
        return out
