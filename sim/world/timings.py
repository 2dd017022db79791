"""Every duration the simulated cluster uses, with Kubernetes' real defaults (the source of
each is in docs/sim.md).

`scaled(F)` multiplies every `_s` field by F (thresholds and counts stay), so a test can run a 50 s grace period in 2.5 s
(F = 0.05); reports divide measured times by F to give them back in real-cluster terms.
Durations written into objects (tolerationSeconds: 300, terminationGracePeriodSeconds:
30) keep their real values; the controllers that act on them apply the scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    lease_renew_interval_s: float = 10.0  # kubelet: node Lease renewal
    lease_duration_s: float = 40.0
    node_status_interval_s: float = 10.0  # kubelet: node status posts
    node_monitor_period_s: float = 5.0  # node lifecycle controller loop
    node_monitor_grace_period_s: float = 50.0  # since 1.32 (40 s before)
    pod_gc_period_s: float = 20.0
    max_wait_for_unmount_s: float = 360.0  # attach/detach: force detach from an unhealthy node
    controller_period_s: float = 1.0  # scheduler, workload controllers, attach/detach loop
    kubelet_sync_period_s: float = 10.0  # kubelet's periodic pod resync (changes wake it sooner)
    pod_start_delay_s: float = 2.0  # bound pod -> Running
    container_stop_s: float = 1.0  # kubelet: time to stop containers on deletion
    attach_delay_s: float = 2.0  # CSI ControllerPublish: VolumeAttachment seen -> attached
    csi_detach_delay_s: float = 5.0  # CSI ControllerUnpublish: VolumeAttachment deleted -> finalizer gone
    adc_sync_period_s: float = 60.0  # attach/detach reconcilerSyncDuration: re-checks its actual state
    pod_gc_quarantine_s: float = 40.0  # pod GC: a missing node is confirmed gone after this
    node_eviction_interval_s: float = 10.0  # 1 / --node-eviction-rate (0.1 node/s per zone)
    secondary_node_eviction_interval_s: float = 100.0  # 1 / --secondary-node-eviction-rate (0.01)
    unhealthy_zone_threshold: float = 0.55  # share of NotReady nodes making a zone PartialDisruption
    large_cluster_size_threshold: int = 50  # zones above it keep the secondary rate when partially down
    leader_lease_duration_s: float = 15.0  # kube-controller-manager --leader-elect-lease-duration
    leader_renew_deadline_s: float = 10.0  # --leader-elect-renew-deadline: leadership lost after it
    leader_retry_period_s: float = 2.0  # --leader-elect-retry-period
    controller_manager_restart_s: float = 10.0  # kubelet restart back-off of the crashed static pod
    boot_delay_s: float = 10.0  # powered on -> kubelet running
    reboot_delay_s: float = 30.0  # reset/reboot: time the machine is down
    watchdog_timeout_s: float = 60.0  # softdog default margin
    stale_taint_bound_s: float = 60.0  # invariant: out-of-service taint on a Ready node
    scale: float = 1.0

    def scaled(self, factor: float) -> Timings:
        if factor <= 0:
            raise ValueError("time scale must be positive")
        values = {f.name: getattr(self, f.name) * factor if f.name.endswith("_s") else getattr(self, f.name)
                  for f in dataclasses.fields(self) if f.name != "scale"}
        return Timings(**values, scale=self.scale * factor)

    def real(self, seconds: float) -> float:
        """A real-cluster duration (as written in objects) in this simulation's time."""
        return seconds * self.scale
