"""The timing model: every bound and every expected milestone nodewarden's numbers come from,
computed from the settings alone. Pure: no clock, no I/O.

Bounds (safety; what the agent publishes and the controller counts on):

- `isolation_detect_s` D: an agent cut off at its last heartbeat T has stopped feeding its
  watchdog by T + D (docs/node-agent.md, "Timing"): D = k*max(I, 2A) + 2A + S + G, with
  G = max(2A, P) + 2t the feed grant.
- `isolation_to_reset_s`: the machine is reset by T + D + W.
- `fence_deadline_s(rule)`: how long after its starting point the evidence rule counts the
  node as fenced (controller/evidence.py): AcknowledgedWatchdog 2W + margin + skew after
  the acknowledged last feed; AgentHeartbeatStale D + 2W + margin + skew after the start
  (the heartbeat with peer silence, else the later of the heartbeat and the order).

The recovery timeline (expectation; seconds after a power-off at 0): each periodic loop
the recovery waits for (the kubelet's Lease renewal, the agent's heartbeat, the node
lifecycle monitor, the kube-state-metrics scrape, the rule evaluation, pod GC) is at an
unknown phase, a fraction in [0, 1] of its period. Every milestone is monotonic in every
phase, so all phases at 0 give the earliest timeline, at 1 the latest, at 0.5 the
expected (median) one. The milestones:

  node_not_ready     the kubelet's last renewal + grace period + the monitor's phase
  alert_firing       the first scrape, then the first evaluation, that see the node not
                     Ready (and, for NodeLeaseStale, its Lease older than the threshold);
                     NodeNotReady adds its `for:` rounded up to whole evaluations
  alert_received     + Alertmanager's group_wait
  fence_ordered      + the confirmation: the peers asked whether they reach the node's
                     agent give up at their own request timeout (the controller's peer
                     timeout bounds it)
  fence_proven       the later of (order + silence_settle_s: peer silence is then on
                     record) and the AgentHeartbeatStale deadline from the agent's last
                     heartbeat
  taint_added        the fencing taint's settle after the proof: it goes on then, and
                     recovery waits fencing_taint_settle_s + skew (+ 0.5 s: its
                     timeAdded is rounded up to the second)
  pod_force_deleted  at once: ResourceDeletion, or the controller deleting the pods the
                     taint evicts (delete_pods_after_taint); else pod GC's next run
  replacement_running + the Kubernetes side's start time (an input, measured)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.timing.inputs import AgentTimings, ControllerTimings, TimingInputs

ACKNOWLEDGED_WATCHDOG = "AcknowledgedWatchdog"
AGENT_HEARTBEAT_STALE = "AgentHeartbeatStale"
PHASES = ("kubelet_renew", "agent_heartbeat", "node_monitor", "scrape", "evaluation", "pod_gc")
MILESTONES = ("node_not_ready", "alert_firing", "alert_received", "fence_ordered", "fence_proven",
              "taint_added", "pod_force_deleted", "replacement_running")


# -- bounds ------------------------------------------------------------------------------


def api_check_period_s(a: AgentTimings) -> float:
    """Checks start every max(I, 2A): one check is two calls of at most A each."""
    return max(a.api_check_interval_s, 2 * a.api_check_timeout_s)


def feed_grant_s(a: AgentTimings) -> float:
    return max(2 * a.api_check_timeout_s, a.peer_request_timeout_s) + 2 * a.loop_tick_s


def isolation_detect_s(a: AgentTimings) -> float:
    """D: last heartbeat (or order stored) to the last watchdog feed, for a cut-off agent."""
    return (a.api_failure_threshold * api_check_period_s(a) + 2 * a.api_check_timeout_s
            + a.isolation_timeout_s + feed_grant_s(a))


def isolation_to_reset_s(a: AgentTimings) -> float:
    """Last heartbeat to the machine's reset, at the latest: D + W."""
    return isolation_detect_s(a) + a.watchdog_timeout_s


def fence_deadline_s(rule: str, a: AgentTimings, c: ControllerTimings) -> float:
    """Seconds after the rule's starting point at which the node counts as fenced."""
    tail = 2 * a.watchdog_timeout_s + c.safety_margin_s + c.max_clock_skew_s
    if rule == ACKNOWLEDGED_WATCHDOG:
        return tail
    if rule == AGENT_HEARTBEAT_STALE:
        return isolation_detect_s(a) + tail
    raise ValueError(f"no timing bound for evidence rule {rule!r}")


def worst_case_fence_s(a: AgentTimings, c: ControllerTimings) -> float:
    """The longest any self-fencing evidence rule waits: AgentHeartbeatStale's deadline."""
    return max(fence_deadline_s(r, a, c) for r in (ACKNOWLEDGED_WATCHDOG, AGENT_HEARTBEAT_STALE))


# -- the recovery timeline ---------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Seconds after the power-off, milestone by milestone (names in MILESTONES)."""

    at_s: dict[str, float]
    fence_deadline_s: float  # AgentHeartbeatStale's deadline, after the power-off
    fence_waited_for: str  # "deadline" or "controller": which of the two made the fence late


def timeline(inputs: TimingInputs, phase: float | dict[str, float] = 0.5) -> Timeline:
    """The recovery timeline with every periodic loop at `phase` (one fraction for all, or
    one per name in PHASES)."""
    p = {name: phase for name in PHASES} if isinstance(phase, int | float) else {**dict.fromkeys(PHASES, 0.5), **phase}
    a, c, k, al = inputs.agent, inputs.controller, inputs.kubernetes, inputs.alerting
    kubelet_renew = -k.node_lease_renew_interval_s * (1 - p["kubelet_renew"])
    agent_heartbeat = -api_check_period_s(a) * (1 - p["agent_heartbeat"])
    not_ready = kubelet_renew + k.node_monitor_grace_period_s + k.node_monitor_period_s * p["node_monitor"]
    seen = al.kube_state_metrics_scrape_interval_s * p["scrape"] + al.rule_evaluation_interval_s * p["evaluation"]
    evaluations_for = math.ceil(al.node_not_ready_for_s / al.rule_evaluation_interval_s - 1e-9)
    firing = not_ready + seen + evaluations_for * al.rule_evaluation_interval_s
    if al.node_lease_stale_enabled:
        firing = min(firing, max(not_ready, kubelet_renew + al.node_lease_stale_threshold_s) + seen)
    received = firing + al.group_wait_s
    ordered = received + min(a.peer_request_timeout_s, c.peer_timeout_s)
    deadline = agent_heartbeat + fence_deadline_s(AGENT_HEARTBEAT_STALE, a, c)
    proven = max(ordered + c.silence_settle_s, deadline)
    # The fencing taint goes on once the fence is proven; recovery waits until it has
    # settled (its timeAdded is rounded up to the second: half a second on average).
    tainted = proven + c.fencing_taint_settle_s + c.max_clock_skew_s + 0.5
    at_once = inputs.strategy == "ResourceDeletion" or c.delete_pods_after_taint
    deleted = tainted if at_once else tainted + k.pod_gc_period_s * p["pod_gc"]
    at = {"node_not_ready": not_ready, "alert_firing": firing, "alert_received": received,
          "fence_ordered": ordered, "fence_proven": proven, "taint_added": tainted,
          "pod_force_deleted": deleted, "replacement_running": deleted + k.replacement_start_s}
    return Timeline({name: round(at[name], 2) for name in MILESTONES}, round(deadline, 2),
                    "deadline" if deadline > ordered + c.silence_settle_s else "controller")


@dataclass(frozen=True)
class Prediction:
    earliest: Timeline
    expected: Timeline
    latest: Timeline

    def within(self, milestone: str, measured_s: float, tolerance: float = 0.1) -> bool:
        """Whether a measured median is within `tolerance` of the expected milestone."""
        expected = self.expected.at_s[milestone]
        return abs(measured_s - expected) <= tolerance * abs(expected)


def predict(inputs: TimingInputs) -> Prediction:
    return Prediction(timeline(inputs, 0.0), timeline(inputs, 0.5), timeline(inputs, 1.0))
