"""What the chaos judge (tests/chaos/judge.py) holds the world faults to
(tests/chaos/world_faults.py). A mixin of the judge, pure on what the run recorded.

- A group partition: each of its nodes is dead for the rest of the cluster, as a node
  cut off from everything: its recovery bound counts from the partition, and its
  watchdog reset has its cause (`cut_off_by_group`). The nodes outside it are held to
  the judge's usual rules: no reset without cause, no taint without fault.
- API slowness, 429 throttling, a kube-controller-manager restart, a stalled CSI
  detach and a webhook replica restarting may delay a recovery: the bound restarts at
  their end, as after an API outage (`world_windows`; the manager's restart lasts its
  back-off, lease and retry period, the webhook's until it answered ready again). A
  webhook killed mid-delivery may have created the remediation without answering:
  Alertmanager's retry must not make a second one act (the judge's two-orders and
  invariant checks).
  They never excuse an unsafe taint, a volume on two nodes (the invariant monitor) or a
  reset without cause.
- An agent clock off by more than the controller's skew bound: the controller must
  refuse that agent's evidence rather than act on it. No out-of-service taint on that
  node unless it booted again since its fault began (a new boot is evidence that does
  not lean on the agent's clock) (`judge_clock`); a remediation of it that escalated
  to a person is not held to the recovery bound (nobody approves in this world).
  Within the bound nothing changes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sim.world.timings import Timings
from tests.chaos.schedule import Incident, Schedule, Step

if TYPE_CHECKING:
    from tests.chaos.judge import Recovery, Transition

OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def kcm_restart_s() -> float:
    """Cluster seconds without a kube-controller-manager after it restarts."""
    k = Timings()
    return k.controller_manager_restart_s + k.leader_lease_duration_s + k.leader_retry_period_s


class WorldJudge:
    c: Any
    scale: float
    schedule: Schedule
    t0: float
    step_at: dict[Step, float]
    pods_at_fault: dict[Step, list[str]]
    transitions: list[Transition]

    def ct(self, wall: float) -> float:
        """A wall time as cluster seconds since the schedule started."""
        return (wall - self.t0) / self.scale

    def pods_at(self, inc: Incident) -> list[str]:
        """The StatefulSet pods on the incident's node when its fault began (a group
        partition's are kept per node, under the step with that node alone)."""
        step = inc.start_step
        if step is None:
            return []
        if step.action == "group-partition":
            return self.pods_at_fault.get(replace(step, node=inc.node), [])
        return self.pods_at_fault.get(step, [])

    def world_windows(self) -> list[tuple[float, float]]:
        """(wall start, wall end) of the API slowness, throttling, controller-manager
        restarts, CSI stalls and webhook restarts that ran: a recovery's bound restarts at
        their end."""
        out = []
        for st in self.schedule.steps:
            if st in self.step_at and st.action in ("api-slow", "api-throttle", "kcm-restart", "csi-stall"):
                length = kcm_restart_s() if st.action == "kcm-restart" else st.duration
                out.append((self.step_at[st], self.step_at[st] + length * self.scale))
        out += [r.window for r in getattr(self, "webhook_restarts", []) if r.window is not None]
        return out

    def cut_off_by_group(self, node: str, at: float, after: float) -> bool:
        """`node` was inside a group partition at `at` (or up to `after` wall seconds after
        it healed): a reset then is its agent's promise kept."""
        for inc in self.schedule.incidents():
            if inc.node != node or inc.kind != "partition-group" or inc.start_step not in self.step_at:
                continue
            end = self.step_at.get(inc.end_step, float("inf")) if inc.end_step else float("inf")
            if self.step_at[inc.start_step] <= at <= end + after:
                return True
        return False

    def _booted_since_fault(self, node: str, at: float) -> bool:
        starts = [self.step_at[i.start_step] for i in self.schedule.incidents()
                  if i.node == node and i.start_step in self.step_at and self.step_at[i.start_step] <= at]
        since = max(starts, default=self.t0)
        return any(e.node == node and since <= e.at <= at for e in self.c.timeline.events(kind="node-booted"))

    def judge_clock(self) -> list[str]:
        """No out-of-service taint on a node whose agent's clock is beyond the skew bound,
        unless the node booted again since its fault began."""
        out = []
        off = self.schedule.off_clock()
        for e in self.c.timeline.events(kind="taint-added", since=self.t0):
            if (e.data or {}).get("key") != OUT_OF_SERVICE or e.node not in off:
                continue
            if not self._booted_since_fault(e.node, e.at):
                out.append(f"{e.node} tainted out-of-service at t={self.ct(e.at):.1f}s on its agent's evidence "
                           f"although its clock is {self.schedule.clock_offsets[e.node]:+g}s off (beyond the "
                           "skew bound) and it did not boot again since its fault")
        return out

    def excuse_off_clock(self, r: Recovery) -> None:
        """A dead node whose agent's clock is beyond the bound escalates to a person
        rather than count on that clock: not held to the bound then."""
        node = r.incident.node
        if node not in self.schedule.off_clock() or r.ok() or not r.checked:
            return
        if any(t.node == node and t.phase == "AwaitingApproval" and r.died_at <= t.at for t in self.transitions):
            r.checked = False
            r.note += (f"; escalated to a person (AwaitingApproval): its agent's clock is "
                       f"{self.schedule.clock_offsets[node]:+g}s off")
