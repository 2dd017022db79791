"""The chaos suite's world faults: group partitions, API slowness and 429 throttling, a
kube-controller-manager restart, a slow or stuck CSI detach, a webhook replica restarting
mid-delivery and an agent clock offset. Drawn for a seed from their
own random stream (`draw`), after the benign faults and the attacks, so that those are
the same with or without them; carried out by the runner (`carry_out`) through the
simulator's faults (docs/sim.md "Faults"). The rules they keep are in
tests/chaos/schedule.py's docstring; what each may cost is judged in tests/chaos/judge.py.

The clock offset is not a step: the agent reads its offset when it starts
(harness/agent_clock.py), so it is a world option of the schedule (`clock_offsets`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tests.chaos.schedule import (
    ACTIVE_S,
    API_SLOW_DELAY_S,
    CLOCK_OFFSET_BEYOND_S,
    CLOCK_OFFSET_WITHIN_S,
    CSI_STALL_AFTER_S,
    DEAD_LONG_S,
    DEAD_SHORT_S,
    GROUP_END_S,
    GROUP_SIZES,
    NODE_GAP_S,
    NODES,
    OUTAGE_CLEARANCE_S,
    TAIL_S,
    THROTTLE_FRACTIONS,
    THROTTLE_RETRY_AFTER_S,
    WEBHOOK_DOWN_S,
    WORLD_P,
    WORLD_S,
    Incident,
    Step,
    _overlap,
)

if TYPE_CHECKING:
    from harness.world import World
    from tests.chaos.schedule import _Builder

MID_DELIVERY_S = 0.03  # wall: the kill follows the delivery's start by this much, while it is handled
TRIES = 10  # places tried for an API fault


def draw(seed: int, b: _Builder, attacks: list[Step], incidents: list[Incident]) -> tuple[list[Step], dict[str, float]]:
    """(steps, clock offsets) of the seed's world faults, fitted around the benign faults
    already in `b` (unhealthy and silent spans, outages, when each node is free; their
    `incidents`) and the `attacks`. Updates `b` with what it adds."""
    rng = random.Random(f"world-faults-{seed}")
    out: list[Step] = []
    stops = [(s.at, s.at + (s.restart_after or 5.0)) for s in attacks if s.action == "agent-stop"]
    targeted = {s.node for s in attacks if s.node} | {s.by for s in attacks if s.by}

    if rng.random() < WORLD_P["group-partition"]:
        size = rng.choice([n for n in GROUP_SIZES if n <= b.max_unhealthy])
        low, high = DEAD_SHORT_S if rng.random() < 0.35 else DEAD_LONG_S
        length = rng.uniform(low, high)
        # The benign faults keep max_unhealthy nodes down most of the time: the group goes
        # at the first moment from a random one on that leaves room for it.
        first = rng.uniform(20.0, ACTIVE_S - DEAD_SHORT_S[0])
        moments = sorted({first} | {z for _, z in b.unhealthy if z > first} | {f for f in b.free_at.values() if f > first})
        for t in moments:
            end = t + length
            free = [n for n in NODES if b.free_at[n] <= t and n not in targeted]
            if end > GROUP_END_S or len(free) < size:
                continue
            span = (t, end + TAIL_S["dead"])
            if _overlap(b.unhealthy, *span) - 1 + size > b.max_unhealthy:
                continue
            silent = b.silent + stops
            if any(a < span[1] and span[0] < z and _overlap(silent, max(span[0], a), min(span[1], z)) - 1 + size > 2
                   for a, z in b.outages):
                continue
            group = ",".join(sorted(rng.sample(free, size)))
            for node in group.split(","):
                b.unhealthy.append(span)
                b.silent.append(span)
                b.free_at[node] = span[1] + NODE_GAP_S
            out += [Step(t, "group-partition", group), Step(end, "heal", group)]
            break

    for action in ("api-slow", "api-throttle"):
        if rng.random() >= WORLD_P[action]:
            continue
        for _ in range(TRIES):
            duration = rng.uniform(*WORLD_S[action])
            t = rng.uniform(10.0, ACTIVE_S - duration)
            span = (t, t + duration)
            if any(a < span[1] + OUTAGE_CLEARANCE_S and span[0] - OUTAGE_CLEARANCE_S < z for a, z in b.outages + stops):
                continue
            if _overlap(b.silent, *span) - 1 > 2:
                continue
            b.outages.append(span)
            if action == "api-slow":
                out.append(Step(t, action, duration=duration, delay=round(rng.uniform(*API_SLOW_DELAY_S), 1)))
            else:
                out.append(Step(t, action, duration=duration, retry_after=rng.choice(THROTTLE_RETRY_AFTER_S),
                                fraction=rng.choice(THROTTLE_FRACTIONS)))
            break

    if rng.random() < WORLD_P["kcm-restart"]:
        out.append(Step(rng.uniform(20.0, ACTIVE_S - 30.0), "kcm-restart"))

    offsets: dict[str, float] = {}
    if rng.random() < WORLD_P["clock-offset"]:
        node = rng.choice(NODES)
        # Beyond the bound the agent is a silent peer all along: only if no outage ever
        # has more than one other silent peer.
        calm = all(_overlap(b.silent + stops, a, z) - 1 <= 1 for a, z in b.outages)
        if calm and rng.random() < 0.5:
            offsets[node] = rng.choice((-1.0, 1.0)) * CLOCK_OFFSET_BEYOND_S
        else:
            offsets[node] = round(rng.uniform(-CLOCK_OFFSET_WITHIN_S, CLOCK_OFFSET_WITHIN_S), 2)

    if rng.random() < WORLD_P["csi-stall"]:
        long_dead = [i for i in incidents if i.dead and i.end - i.start >= 150.0]
        duration = rng.uniform(*WORLD_S["csi-stall"])
        if long_dead:
            at = rng.choice(long_dead).start + rng.uniform(*CSI_STALL_AFTER_S)
        else:
            at = rng.uniform(10.0, ACTIVE_S - WORLD_S["csi-stall"][0])
        at = min(at, ACTIVE_S - WORLD_S["csi-stall"][0])
        out.append(Step(at, "csi-stall", duration=min(duration, ACTIVE_S - at)))

    if rng.random() < WORLD_P["webhook-restart"]:
        long_dead = [i for i in incidents if i.dead and i.end - i.start >= 150.0]
        if long_dead:
            target = rng.choice(long_dead)
            out.append(Step(target.start, "webhook-restart", target.node,
                            restart_after=round(rng.uniform(*WEBHOOK_DOWN_S), 1)))

    steps = [replace(s, at=round(s.at, 1), duration=round(s.duration, 1)) for s in out]
    return steps, offsets


class WebhookRestart:
    """`webhook-restart`: armed at its step, it SIGKILLs the webhook replica just after
    Alertmanager begins a firing delivery for the step's node (`on_post`, an Alertmanager
    hook), starts it again `restart_after` later and records when it was down and when it
    was ready again (`window`, wall seconds)."""

    def __init__(self, world: World, step: Step, note: Callable[[str], None]) -> None:
        self.w, self.step, self.note = world, step, note
        self.window: tuple[float, float] | None = None
        self.busy = False
        self._armed = True
        self._lock = threading.Lock()

    def on_post(self, node: str, status: str) -> None:
        with self._lock:
            if not self._armed or node != self.step.node or status != "firing":
                return
            self._armed, self.busy = False, True
        threading.Thread(target=self._restart, daemon=True, name="webhook-restart").start()

    def _restart(self) -> None:
        time.sleep(MID_DELIVERY_S)
        down = time.time()
        try:
            self.w.kill_webhook(0)
            time.sleep((self.step.restart_after or 0.0) * self.w.scale)
            self.w.start_webhook(0)
            self.note(f"killed mid-delivery of {self.step.node}'s alert, ready again after "
                      f"{(time.time() - down) / self.w.scale:.0f}s")
        except Exception as err:  # reported, and the world judged without a webhook
            self.note(f"webhook restart failed: {type(err).__name__}: {err}")
        finally:
            self.window = (down, time.time())
            self.busy = False


def is_world_step(step: Step) -> bool:
    """A step `carry_out` runs: a world fault, or the heal of a group partition."""
    return step.action in ("group-partition", "api-slow", "api-throttle", "kcm-restart", "csi-stall") or (
        step.action == "heal" and "," in step.node)


def carry_out(cluster: Any, step: Step) -> str:
    """Run one world step through the simulator's faults; what happened, for the report."""
    c = cluster
    if step.action == "group-partition":
        c.fault("partition-group", step.node)
        return f"{step.node} cut from the API and from every other node"
    if step.action == "heal":
        for node in step.nodes:
            c.fault("heal", node)
        return f"{step.node} healed"
    if step.action == "api-slow":
        c.fault("api-slow", duration_s=step.duration, delay_s=step.delay)
        return f"every API answer {step.delay:g}s late"
    if step.action == "api-throttle":
        c.fault("api-throttle", duration_s=step.duration, retry_after_s=step.retry_after or 1,
                fraction=step.fraction or 1.0)
        return f"{step.fraction or 1.0:.0%} of API requests answered 429"
    if step.action == "kcm-restart":
        c.fault("controller-manager-restart")
        return "kube-controller-manager restarting"
    if step.action == "csi-stall":
        c.fault("csi-stall", duration_s=step.duration)
        return f"no volume detaches for {step.duration:g}s"
    raise ValueError(f"not a world step: {step}")  # webhook-restart is armed by the runner (WebhookRestart)
