"""The recovery bound of the chaos world: the longest a dead node's StatefulSet pod may
take to run elsewhere, computed from the world's own settings (the simulator's Kubernetes
timings, the controller's settings as the world starts it, the agents' published values,
the emulated Prometheus rule and Alertmanager route). Pure: no world is started.
"""

from __future__ import annotations

from pathlib import Path

from harness.world import controller_env
from sim.world.timings import Timings
from tests.chaos.alerts import EVAL_S, FOR_S, GROUP_WAIT_S

# Real processes on a loaded 2-core machine: each of the steps from a fault to a moved pod
# runs a little late (process scheduling, Python start-up of a new controller, HTTP round
# trips with their floors). Wall seconds, added once to every bound.
WALL_SLACK_S = 3.0


def controller_timings(scale: float) -> dict[str, float]:
    """The controller's settings as the world starts it (wall seconds)."""
    env = controller_env(scale, Path(), Path(), Path(), Path(), "", "probe")
    prefix = "NODEWARDEN_CONTROLLER_"
    return {k[len(prefix):].lower(): float(v) for k, v in env.items()
            if k.startswith(prefix) and k.endswith("_S")}


def recovery_bound(scale: float, isolation_detect_s: float, watchdog_s: float) -> dict[str, float]:
    """The longest a dead node's StatefulSet pod may take to run elsewhere, from the
    moment the node died, in cluster seconds, part by part. Every term is a setting of
    the world (the simulator's Kubernetes timings, the controller's settings, the agents'
    published values, the emulated Prometheus rule and Alertmanager route):

    - the node lifecycle controller marks the node Ready=Unknown once its Lease (renewed
      at the latest when the node died) is older than the grace period, at its next
      monitor period;
    - the rule is pending at the next evaluation and fires `for:` later; Alertmanager
      sends after `group_wait`;
    - the webhook creates the remediation; the controller confirms (the node's Lease is
      stale, peers are asked whether they reach its agent) and stores a signed order:
      a few resyncs and peer timeouts;
    - the evidence rule that waits longest: `AgentHeartbeatStale` without peer silence
      (another node may be down too, or cut off from peers), counted from the order:
      order + D + 2W + margin + skew, with D (`isolation-detect-seconds`) and W
      (`watchdog-timeout-seconds`) as the agents publish them on their Nodes. An agent
      that acknowledges an order (API-only partition, stopped kubelet) has stopped
      feeding by then, so `AcknowledgedWatchdog` is never later;
    - Fenced -> Recovering -> the taint written: two resyncs;
    - Kubernetes moves the pod: the taint-eviction controller deletes it, the pod GC
      (every 20 s) force-deletes it from the tainted not-Ready node, the StatefulSet
      controller recreates it, the scheduler binds it, the attach-detach controller
      detaches the volume from the tainted node at once and attaches it to the new one,
      the kubelet starts the pod;
    - slack for real processes on a loaded test machine (wall seconds).

    The runner adds what a schedule adds on top: an API outage restarts the count at its
    end (nothing progresses without the API, and the node lifecycle controller trusts
    every node for one grace period after it); a leader kill adds the standby's takeover
    (the Lease's duration plus a retry period).
    """
    k = Timings()  # Kubernetes' real durations: the simulator scales them like everything else
    c = {name: value / scale for name, value in controller_timings(scale).items()}  # to cluster seconds
    return {
        "node Ready=Unknown (grace period + monitor period)": k.node_monitor_grace_period_s + k.node_monitor_period_s,
        "alert (evaluation interval + for: + group_wait)": EVAL_S + FOR_S + GROUP_WAIT_S,
        "remediation to stored order (4 resyncs + 3 peer timeouts)": 4 * c["resync_s"] + 3 * c["peer_timeout_s"],
        "fence evidence from the order (D + 2W + margin + skew)":
            isolation_detect_s / scale + 2 * watchdog_s / scale + c["safety_margin_s"] + c["max_clock_skew_s"],
        "Fenced to taint (2 resyncs)": 2 * c["resync_s"],
        # The stricter world: a detach waits for the CSI external-attacher's unpublish
        # (csi_detach_delay_s) before the VolumeAttachment and its finalizer go, and an
        # attach for the attacher to add its finalizer first (one more loop).
        "pod moves (eviction, pod GC period, StatefulSet, scheduler, detach, CSI unpublish, attach, start)":
            4 * k.controller_period_s + k.pod_gc_period_s + k.controller_period_s + k.csi_detach_delay_s
            + k.controller_period_s + k.attach_delay_s + k.pod_start_delay_s,
        "test machine slack": WALL_SLACK_S / scale,
    }


def leader_takeover_s(scale: float) -> float:
    c = controller_timings(scale)
    return (c["lease_duration_s"] + c["retry_period_s"]) / scale
