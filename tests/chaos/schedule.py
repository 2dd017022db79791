"""Seeded fault schedules for the chaos suite: a list of timed steps, generated from a
seed with `random.Random(seed)`, kept realistic.

Times are cluster seconds (Kubernetes' real durations) from the start of the schedule;
the runner multiplies them by the world's time scale.

Step actions:

| action | meaning |
|---|---|
| `power-off`, `power-on`, `reboot`, `kubelet-stop`, `kubelet-start`, `heal` | the simulator's faults on `node` |
| `partition` | the simulator's partition of `node` from `scope` (`api`, `peers`, `all`) |
| `api-outage` | every API request fails for `duration` cluster seconds |
| `agent-kill` | the node's agent process is SIGKILLed, restarted after `restart_after` |
| `leader-kill` | SIGKILL the controller that holds the Lease, start a new one |
| `alert-flap` | once `node`'s remediation is in `Fencing`, Alertmanager sends "resolved" for the firing alert and fires again after `for:` (a scrape gap resets the rule): a resolved notification mid-fence |
| `alert-stale` | Alertmanager redelivers `node`'s last firing notification late, out of order (after the node is back) |
| `forge-status` | adversary: once `node`'s remediation holds a fence order, `by`'s agent credential writes its status: `scope` `agent-report` (agentReport.lastFeedAt = the node's kubelet Lease renewTime, its bootId and watchdog timeout) or `phase-fenced` (status.phase Fenced with a satisfied fence.evidence) |
| `untrusted-key` | mistake: for `duration`, every controller (the running ones are killed) signs with a key the agents do not trust, as after a key rotation that did not reach the agents; then trusted controllers again |
| `agent-stop` | mistake: `node`'s agent is stopped cleanly (SIGTERM: it withdraws its capability and disarms), started again after `restart_after` |
| `slow-clients` | adversary without credentials: for `duration`, slow clients hold `scope` (`agents`: every agent's peer port, 40 connections each sending a body one byte every 2 s; `webhook`: 16 connections sending headers a byte at a time) |
| `flood` | adversary without credentials: for `duration`, unauthenticated requests as fast as 4 connections go, at `scope` (`agents` or `webhook`) |
| `group-partition` | the simulator's group partition of `node` (`node-2,node-5`: a zone or a site), cut from the API and from every other node, connected among themselves; `heal` with the same `node` ends it |
| `api-slow` | every API answer comes `delay` cluster seconds late, for `duration` |
| `api-throttle` | a share `fraction` of API requests is answered 429 with `Retry-After: retry_after` (whole wall seconds, as the real header), for `duration` |
| `kcm-restart` | the simulated kube-controller-manager exits and comes back after its restart back-off and lease wait |
| `csi-stall` | the CSI driver's detach hangs for `duration` (slow or stuck): no volume detaches before its end |
| `webhook-restart` | the webhook replica is SIGKILLed (master and workers) just after Alertmanager begins its first firing delivery for `node` after `at`, mid-delivery, and started again `restart_after` later |

Besides the steps, `clock_offsets` (`{node: cluster seconds}`, a world option: the agent
reads it when it starts) runs a node's agent with a wall clock that far off.

Every kind of issue 16 is generated (`TODO_ACTIONS`, refused in a file, is empty).

World faults (`WORLD_LIMITS`, `WORLD_P`, `WORLD_S`) come from a third random stream
(`random.Random(f"world-faults-{seed}")`), drawn after the benign faults and the attacks,
which are the same with or without them (`generate(seed, world_faults=False)`). They keep
the same rules: each node of a group partition is an unhealthy node and a silent peer
(its agent cannot answer the rest), and the group is a minority (2 or 3 nodes, never
more than `max_unhealthy` unhealthy at once: since the benign faults keep that many down
most of the time, the group goes at the first moment from a random one that leaves room,
and may end after `ACTIVE_S`, by `GROUP_END_S`); API slowness and throttling count as API
outages (an agent may take a slow or refused API for a lost one) and keep 100 s away from
every other outage and from a stopped agent; an agent clock beyond the controller's skew
bound (±60 s) makes that agent a silent peer for ever (its peers refuse its dates), so it
is given only when no outage ever has more than one other silent peer, otherwise the
offset is one within the bound (under half a second); a CSI stall begins while a long
dead fault's pods are moving (`CSI_STALL_AFTER_S` into it), when there is one; a webhook
restart waits for the alert of a long dead fault's node.

Attacks and mistakes (`ATTACK_LIMITS` bounds each per schedule, `ATTACK_S` their
durations) are drawn from their own random stream (`random.Random(f"attacks-{seed}")`), so
a seed's benign faults are the same with or without them (`generate(seed, attacks=False)`).
An adversary picks its moment: a status forgery targets a node with a long fault (one
that leaves the machine running if there is one: a stopped kubelet, a cut from the API),
half the time while the node's agent is stopped (so that the real agent cannot fence
first); an untrusted key
covers the start of a long fault; slow clients on the agents cover an API outage when
there is one. The at-most-`max_unhealthy` rule is unchanged: attacks add no unhealthy
node of their own (a stopped agent leaves its node healthy).

What keeps a schedule realistic:

- every fault ends: a powered-off node is powered on, a partition heals, a stopped
  kubelet starts again, an outage has a duration, a killed agent is restarted;
- at most `max_unhealthy` (2 or 3) nodes are unhealthy at once, counting the time a node
  needs to come back after its fault ends (it may have been reset by its watchdog), so the
  StatefulSet always has somewhere to go;
- a node gets a new fault only a while after it came back, once its agent has published
  itself on its new boot (before that nodewarden rightly escalates instead of counting on
  self-fencing);
- an API outage never overlaps more than 2 nodes whose agents may not answer their peers:
  with 7 nodes, the agents tell an outage from their own isolation by a majority of *all*
  known peers answering "the API is down too" (docs/node-agent.md, outage quorum), so with
  3 silent peers every agent would fence by design - safe, but not the schedule we mean to
  test. Every kind of fault counts: powered off, rebooting, cut off from peers and agent
  killed silence the agent at once, and a stopped kubelet or a partition from the API
  gets the node fenced, which resets it and silences its agent while it reboots (seed 17
  of an earlier generator met an outage with one of each and three silent peers);
- one leader kill at a time, a minute apart at least (the new controller has started).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NODES = [f"node-{i}" for i in range(1, 8)]
STATEFULSET_FIRST_NODES = NODES[:3]  # a fresh cluster's scheduler places db-0..2 on node-1..3

ACTIVE_S = 560.0  # every fault starts and ends within this window
DEAD_SHORT_S = (40.0, 150.0)  # back before any recovery can be expected
DEAD_LONG_S = (330.0, 420.0)  # long enough for the recovery bound to be checked
TAIL_S = {"dead": 120.0, "reboot": 60.0, "agent-kill": 90.0, "peers": 10.0}
NODE_GAP_S = 60.0  # healthy time between two faults of one node, after the tail
LEADER_KILL_SPACING_S = 60.0

DEAD_ACTIONS = {"power-off": "power-on", "kubelet-stop": "kubelet-start"}
NODE_ACTIONS = {"power-off", "power-on", "reboot", "kubelet-stop", "kubelet-start", "partition",
                "heal", "agent-kill"}
ALERT_ACTIONS = {"alert-flap", "alert-stale"}
ATTACK_ACTIONS = {"forge-status", "untrusted-key", "agent-stop", "slow-clients", "flood"}
ACTIONS = NODE_ACTIONS | ALERT_ACTIONS | ATTACK_ACTIONS | {"api-outage", "leader-kill"}
WORLD_ACTIONS = {"group-partition", "api-slow", "api-throttle", "kcm-restart", "csi-stall", "webhook-restart"}
ACTIONS |= WORLD_ACTIONS
DURATION_ACTIONS = {"api-outage", "untrusted-key", "slow-clients", "flood", "api-slow", "api-throttle", "csi-stall"}
# Fault kinds of issue 16 not generated yet (refused in a file): none left.
TODO_ACTIONS: set[str] = set()

FORGE_KINDS = ("agent-report", "phase-fenced")
ATTACK_TARGETS = ("agents", "webhook")
# At most this many of each attack or mistake in one schedule.
ATTACK_LIMITS = {"forge-status": 1, "untrusted-key": 1, "agent-stop": 1, "slow-clients": 1, "flood": 1}
ATTACK_P = {"forge-status": 0.5, "untrusted-key": 0.35, "agent-stop": 0.3, "slow-clients": 0.5, "flood": 0.3}
ATTACK_S = {"untrusted-key": (120.0, 300.0), "slow-clients": (30.0, 200.0), "flood": (20.0, 90.0),
            "agent-stop": (30.0, 240.0)}  # agent-stop: restart_after
OUTAGE_CLEARANCE_S = 100.0  # a lone stopped agent keeps this far from any API outage

# World faults (their own stream, see the module docstring): at most this many of each.
WORLD_LIMITS = {"group-partition": 1, "api-slow": 1, "api-throttle": 1, "kcm-restart": 1, "clock-offset": 1,
                "csi-stall": 1, "webhook-restart": 1}
WORLD_P = {"group-partition": 0.4, "api-slow": 0.3, "api-throttle": 0.3, "kcm-restart": 0.3, "clock-offset": 0.3,
           "csi-stall": 0.3, "webhook-restart": 0.3}
WEBHOOK_DOWN_S = (0.0, 30.0)  # restart_after: the replica is started again this long after it was killed
WORLD_S = {"api-slow": (20.0, 90.0), "api-throttle": (20.0, 120.0), "csi-stall": (10.0, 300.0)}  # durations
CSI_STALL_AFTER_S = (30.0, 250.0)  # a stall begins this long into a long dead fault: while its pods move
GROUP_SIZES = (2, 3)  # a minority of the 7 nodes, and never above max_unhealthy
GROUP_END_S = ACTIVE_S + DEAD_LONG_S[1]  # a group partition may start late, once the benign faults leave room
API_SLOW_DELAY_S = (0.5, 5.0)  # around the agents' API check timeout (2.5 cluster s in the chaos world)
THROTTLE_RETRY_AFTER_S = (1, 2)  # wall seconds, as the header says
THROTTLE_FRACTIONS = (0.3, 0.6, 1.0)
CLOCK_OFFSET_WITHIN_S = 0.4  # cluster seconds: under the controller's skew bound (1 s)
CLOCK_OFFSET_BEYOND_S = 60.0  # cluster seconds: far beyond it
CLOCK_SKEW_S = 1.0  # the controller's MAX_CLOCK_SKEW_S in the chaos world, in cluster seconds


@dataclass(frozen=True)
class Step:
    at: float
    action: str
    node: str = ""
    scope: str = ""  # partition: api | peers | all
    duration: float = 0.0  # api-outage
    restart_after: float | None = None  # agent-kill, agent-stop
    by: str = ""  # forge-status: the node whose agent credential writes
    delay: float = 0.0  # api-slow: cluster seconds
    fraction: float = 0.0  # api-throttle: share of requests refused
    retry_after: int = 0  # api-throttle: Retry-After, wall seconds

    @property
    def nodes(self) -> list[str]:
        """The nodes a step names (a group partition, or its heal, names several)."""
        return [n for n in self.node.split(",") if n]

    def describe(self) -> str:
        words = [self.action]
        if self.node:
            words.append(self.node)
        if self.action == "partition":
            words.append(f"--from {self.scope}")
        if self.action in ("forge-status", "slow-clients", "flood"):
            words.append(f"--{'kind' if self.action == 'forge-status' else 'at'} {self.scope}")
        if self.by:
            words.append(f"--as {self.by}")
        if self.action in DURATION_ACTIONS:
            words.append(f"--duration {self.duration:g}")
        if self.action == "api-slow":
            words.append(f"--delay {self.delay:g}")
        if self.action == "api-throttle":
            words.append(f"--retry-after {self.retry_after} --fraction {self.fraction:g}")
        if self.action in ("agent-kill", "agent-stop", "webhook-restart") and self.restart_after is not None:
            words.append(f"--restart-after {self.restart_after:g}")
        return f"t={self.at:7.1f}s  " + " ".join(words)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", 0.0, None) or k == "at"}


@dataclass(frozen=True)
class Delivery:
    """How Alertmanager's deliveries misbehave in this schedule (all of it is normal for
    Alertmanager: at-least-once delivery, an HA pair, retries that overtake each other)."""

    duplicate_p: float = 0.0  # a notification is delivered twice (the HA pair's second copy)
    delay_p: float = 0.0  # a resolved or repeated notification is held back, overtaken by later ones
    max_delay_s: float = 60.0


@dataclass
class Incident:
    """A node's fault, from the step that starts it to the step that ends it."""

    node: str
    kind: str  # power-off, kubelet-stop, partition-api, partition-all, partition-peers, partition-group, reboot, agent-kill
    start: float
    end: float
    start_step: Step | None = None
    end_step: Step | None = None

    @property
    def tail_s(self) -> float:
        """How long after its end the node may still be down or rejoining (it may have been
        reset by its watchdog, and reboots)."""
        if self.dead:
            return TAIL_S["dead"]
        return TAIL_S["peers" if self.kind == "partition-peers" else self.kind]

    @property
    def dead(self) -> bool:
        """The node can neither run nor report its workloads: nodewarden must fence it and
        move them (if it lasts long enough)."""
        return self.kind in ("power-off", "kubelet-stop", "partition-api", "partition-all", "partition-group")


@dataclass
class Schedule:
    seed: int | None
    steps: list[Step]
    max_unhealthy: int = 3
    delivery: Delivery = field(default_factory=Delivery)
    clock_offsets: dict[str, float] = field(default_factory=dict)  # node -> cluster seconds its agent's clock is off

    def off_clock(self) -> set[str]:
        """The nodes whose agent's clock is off beyond the controller's skew bound."""
        return {n for n, o in self.clock_offsets.items() if abs(o) > CLOCK_SKEW_S}

    @property
    def end(self) -> float:
        last = 0.0
        for s in self.steps:
            last = max(last, s.at + (s.duration if s.action in DURATION_ACTIONS else 0.0))
        return last

    def incidents(self) -> list[Incident]:
        """The node faults, paired start to end (a fault still open at the end of the
        schedule ends at infinity)."""
        open_: dict[str, Incident] = {}
        done: list[Incident] = []
        for s in sorted(self.steps, key=lambda s: s.at):
            if s.action in DEAD_ACTIONS or s.action == "partition":
                kind = s.action if s.action != "partition" else f"partition-{s.scope}"
                open_[s.node] = Incident(s.node, kind, s.at, float("inf"), s)
            elif s.action == "group-partition":  # one incident per node of the group
                for node in s.nodes:
                    open_[node] = Incident(node, "partition-group", s.at, float("inf"), s)
            elif s.action in DEAD_ACTIONS.values() or s.action == "heal":
                for node in s.nodes:
                    inc = open_.pop(node, None)
                    if inc is not None:
                        inc.end, inc.end_step = s.at, s
                        done.append(inc)
            elif s.action in ("reboot", "agent-kill"):
                done.append(Incident(s.node, s.action, s.at, s.at, s, s))
        return sorted(done + list(open_.values()), key=lambda i: i.start)

    def describe(self) -> str:
        head = (f"schedule (seed {self.seed}): {len(self.steps)} steps over {self.end:.0f} cluster seconds, "
                f"at most {self.max_unhealthy} nodes unhealthy; Alertmanager duplicates "
                f"{self.delivery.duplicate_p:.0%}, delays {self.delivery.delay_p:.0%} of its notifications")
        if self.clock_offsets:
            head += "; agent clocks off: " + ", ".join(f"{n} {o:+g}s" for n, o in sorted(self.clock_offsets.items()))
        return "\n".join([head] + ["  " + s.describe() for s in self.steps])

    def to_json(self) -> dict[str, Any]:
        doc = {"seed": self.seed, "maxUnhealthy": self.max_unhealthy, "delivery": asdict(self.delivery),
               "steps": [s.to_json() for s in self.steps]}
        if self.clock_offsets:
            doc["clockOffsets"] = dict(self.clock_offsets)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Schedule:
        steps = [Step(**s) for s in doc["steps"]]
        for s in steps:
            if s.action in TODO_ACTIONS:
                raise ValueError(f"action {s.action!r} waits for the simulator (TODO) in {s}")
            if s.action not in ACTIONS:
                raise ValueError(f"unknown action {s.action!r} in {s}")
        offsets = {str(n): float(o) for n, o in (doc.get("clockOffsets") or {}).items()}
        unknown = set(offsets) - set(NODES)
        if unknown:
            raise ValueError(f"clockOffsets for unknown nodes {sorted(unknown)}")
        return cls(doc.get("seed"), sorted(steps, key=lambda s: s.at), int(doc.get("maxUnhealthy", 3)),
                   Delivery(**doc.get("delivery", {})), offsets)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Schedule:
        return cls.from_json(json.loads(path.read_text()))


# -- generation ---------------------------------------------------------------------------

Interval = tuple[float, float]


def _overlap(intervals: list[Interval], lo: float, hi: float) -> int:
    """The most of `intervals` that overlap at one moment of [lo, hi], counting [lo, hi]."""
    points = [lo] + [a for a, _ in intervals if lo <= a <= hi]
    return max(sum(1 for a, b in intervals if a <= p < b) for p in points) + 1


class _Builder:
    def __init__(self, rng: random.Random, max_unhealthy: int) -> None:
        self.rng = rng
        self.max_unhealthy = max_unhealthy
        self.steps: list[Step] = []
        self.unhealthy: list[Interval] = []  # nodes down or not Ready, tails included
        self.silent: list[Interval] = []  # agents that cannot answer their peers
        self.outages: list[Interval] = []
        self.peer_partitions: list[Interval] = []
        self.free_at = dict.fromkeys(NODES, 0.0)

    def _fits_outages(self, lo: float, hi: float) -> bool:
        return all(_overlap(self.silent, max(lo, a), min(hi, b)) <= 2
                   for a, b in self.outages if a < hi and lo < b)

    def node_fault(self, t: float, kind: str, node: str | None = None) -> Incident | None:
        rng = self.rng
        candidates = [n for n in NODES if self.free_at[n] <= t] if node is None else [node]
        if not candidates or self.free_at[candidates[0]] > t:
            return None
        node = rng.choice(candidates)
        if kind in ("reboot", "agent-kill"):
            end, tail = t, TAIL_S[kind]
        elif kind == "partition-peers":
            end, tail = t + rng.uniform(30.0, 300.0), TAIL_S["peers"]
        else:
            short = rng.random() < 0.35
            low, high = DEAD_SHORT_S if short else DEAD_LONG_S
            end, tail = t + rng.uniform(low, high), TAIL_S["dead"]
        if end > ACTIVE_S:
            return None
        span = (t, end + tail)
        if kind == "partition-peers":
            if _overlap(self.peer_partitions, *span) > 1:
                return None
        elif _overlap(self.unhealthy, *span) > self.max_unhealthy:
            return None
        silent = kind in SILENT_KINDS
        if silent and any(a < span[1] and span[0] < b and _overlap(self.silent, max(span[0], a), min(span[1], b)) > 2
                          for a, b in self.outages):
            return None
        # commit
        if kind == "partition-peers":
            self.peer_partitions.append(span)
        else:
            self.unhealthy.append(span)
        if silent:
            self.silent.append(span)
        self.free_at[node] = span[1] + NODE_GAP_S
        if kind == "reboot":
            self.steps.append(Step(t, "reboot", node))
        elif kind == "agent-kill":
            self.steps.append(Step(t, "agent-kill", node, restart_after=rng.choice([5.0, 5.0, 30.0, 60.0])))
        elif kind.startswith("partition-"):
            self.steps += [Step(t, "partition", node, scope=kind.split("-", 1)[1]), Step(end, "heal", node)]
        else:
            self.steps += [Step(t, kind, node), Step(end, DEAD_ACTIONS[kind], node)]
        incident = Incident(node, kind, t, end)
        if incident.dead and end - t >= 150.0:
            if rng.random() < 0.4:
                self.steps.append(Step(t + rng.uniform(30.0, 90.0), "alert-flap", node))
            if rng.random() < 0.3:
                self.steps.append(Step(end + rng.uniform(10.0, 80.0), "alert-stale", node))
        return incident

    def api_outage(self, t: float) -> bool:
        duration = self.rng.uniform(20.0, 150.0)
        span = (t, t + duration)
        if span[1] > ACTIVE_S or any(a < span[1] + 100.0 and span[0] - 100.0 < b for a, b in self.outages):
            return False
        if _overlap(self.silent, *span) - 1 > 2:
            return False
        self.outages.append(span)
        self.steps.append(Step(t, "api-outage", duration=round(duration, 1)))
        return True


NODE_KINDS = {"power-off": 3.0, "partition-api": 2.0, "partition-all": 2.0, "kubelet-stop": 1.5,
              "reboot": 1.5, "agent-kill": 1.5, "partition-peers": 1.0}
# Faults after which the node's agent may not answer its peers for a while (see the module
# docstring): all of them, directly or through the fence that resets the node.
SILENT_KINDS = frozenset(NODE_KINDS)


def _attacks(seed: int, steps: list[Step], incidents: list[Incident], outages: list[Step]) -> list[Step]:
    """The schedule's attacks and mistakes, from their own random stream (see the module
    docstring for where each is placed)."""
    rng = random.Random(f"attacks-{seed}")
    out: list[Step] = []
    long_dead = [i for i in incidents if i.dead and i.end - i.start >= 150.0]
    alive_kinds = [i for i in long_dead if i.kind in ("kubelet-stop", "partition-api")]
    # forge-status: another node's agent credential writes the target's remediation status.
    if long_dead and rng.random() < ATTACK_P["forge-status"]:
        target = rng.choice(alive_kinds or long_dead)
        kind = rng.choice(FORGE_KINDS)
        by = rng.choice([n for n in NODES if n != target.node])
        out.append(Step(target.start, "forge-status", target.node, scope=kind, by=by))
        if rng.random() < 0.5:  # while the node's own agent is stopped, so that it cannot act first
            out.append(Step(target.start, "agent-stop", target.node,
                            restart_after=round(target.end - target.start + 30.0, 1)))
    # untrusted-key: controllers that sign with a key the agents do not trust.
    if long_dead and rng.random() < ATTACK_P["untrusted-key"]:
        target = rng.choice([i for i in long_dead if i.kind == "partition-api"] or long_dead)
        at = max(1.0, target.start - rng.uniform(0.0, 30.0))
        duration = min(rng.uniform(*ATTACK_S["untrusted-key"]), ACTIVE_S - at)
        out.append(Step(at, "untrusted-key", duration=duration))
    # agent-stop on its own: an operator stops a healthy node's agent (a rollout, a drain).
    if rng.random() < ATTACK_P["agent-stop"] and not any(s.action == "agent-stop" for s in out):
        busy = {i.node for i in incidents}
        calm = [n for n in NODES if n not in busy]
        for _ in range(5):  # a stopped agent is a silent peer: never during an API outage
            at, after = rng.uniform(20.0, ACTIVE_S - 60.0), rng.uniform(*ATTACK_S["agent-stop"])
            if calm and not any(o.at < at + after + OUTAGE_CLEARANCE_S and at - OUTAGE_CLEARANCE_S < o.at + o.duration
                                for o in outages):
                out.append(Step(at, "agent-stop", rng.choice(calm), restart_after=after))
                break
    # slow clients and floods, over an API outage when there is one.
    for action in ("slow-clients", "flood"):
        if rng.random() >= ATTACK_P[action]:
            continue
        scope = rng.choice(ATTACK_TARGETS)
        low, high = ATTACK_S[action]
        if outages and scope == "agents":
            o = rng.choice(outages)
            at = max(1.0, o.at - rng.uniform(2.0, 15.0))
            duration = max(o.at + o.duration - at + rng.uniform(5.0, 30.0), low)
        else:
            at = rng.uniform(10.0, ACTIVE_S - low)
            duration = rng.uniform(low, high)
        out.append(Step(at, action, scope=scope, duration=min(duration, ACTIVE_S - at)))
    return [Step(round(s.at, 1), s.action, s.node, s.scope, round(s.duration, 1),
                 None if s.restart_after is None else round(s.restart_after, 1), s.by) for s in out]


def generate(seed: int, attacks: bool = True, world_faults: bool = True) -> Schedule:
    rng = random.Random(seed)
    b = _Builder(rng, max_unhealthy=rng.choice([2, 3]))
    delivery = Delivery(duplicate_p=rng.choice([0.0, 0.3, 0.6]), delay_p=rng.choice([0.0, 0.3]))
    # Open with a long fault on a node that holds a StatefulSet pod on a fresh cluster,
    # so that (nearly) every schedule checks the recovery bound at least once.
    t = rng.uniform(10.0, 40.0)
    first = rng.choice(["power-off", "partition-all", "partition-api", "kubelet-stop"])
    opened = b.node_fault(t, first, rng.choice(STATEFULSET_FIRST_NODES))
    assert opened is not None, "the first fault always fits an empty schedule"
    outages_left = rng.choice([0, 1, 1, 2])
    t += rng.uniform(15.0, 60.0)
    while t < ACTIVE_S - 40.0:
        if outages_left and rng.random() < 0.15:
            if b.api_outage(t):
                outages_left -= 1
        else:
            for _ in range(3):  # the first kind that fits here
                kind = rng.choices(list(NODE_KINDS), weights=list(NODE_KINDS.values()))[0]
                if b.node_fault(t, kind) is not None:
                    break
        t += rng.uniform(10.0, 50.0)
    kills = sorted(rng.uniform(20.0, ACTIVE_S) for _ in range(rng.choice([1, 2, 3])))
    last = -LEADER_KILL_SPACING_S
    for at in kills:
        if at - last >= LEADER_KILL_SPACING_S:
            b.steps.append(Step(at, "leader-kill"))
            last = at
    steps = sorted((Step(round(s.at, 1), s.action, s.node, s.scope, s.duration, s.restart_after)
                    for s in b.steps), key=lambda s: s.at)
    schedule = Schedule(seed, steps, b.max_unhealthy, delivery)
    if attacks:
        outages = [s for s in steps if s.action == "api-outage"]
        schedule.steps = sorted(steps + _attacks(seed, steps, schedule.incidents(), outages), key=lambda s: s.at)
    if world_faults:
        from tests.chaos.world_faults import draw  # it builds on this module

        extra, schedule.clock_offsets = draw(seed, b, [s for s in schedule.steps if s.action in ATTACK_ACTIONS],
                                             schedule.incidents())
        schedule.steps = sorted(schedule.steps + extra, key=lambda s: s.at)
    return schedule
