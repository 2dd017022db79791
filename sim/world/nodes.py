"""The machines of the simulated cluster: power state, boot identity, network
partitions, and what their container runtime really runs (the ground truth the
invariant monitor judges against, whatever the API says)."""

from __future__ import annotations

import enum
import threading
import uuid
from dataclasses import dataclass, field


class Power(enum.StrEnum):
    OFF = "Off"  # powered off, or down during a reset/reboot
    BOOTING = "Booting"  # powered on, kubelet not started yet: cannot run pods
    RUNNING = "Running"  # kubelet started; containers can run


@dataclass
class RunningPod:
    namespace: str
    name: str
    uid: str
    volumes: tuple[str, ...]  # PersistentVolume names (ReadWriteOnce) mounted for it
    identity: str  # "ns/name" for StatefulSet pods, "" otherwise
    started_at: float

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class SimNode:
    name: str
    index: int
    address: str = ""  # host:port the node's agent listens on
    power: Power = Power.RUNNING
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    boots: int = 1
    booted_at: float = 0.0
    down_since: float | None = None
    kubelet_enabled: bool = True
    partition: set[str] = field(default_factory=set)  # subset of {"api", "peers"}
    island: str = ""  # a group partition: cut from the API and from nodes outside the group
    running: dict[str, RunningPod] = field(default_factory=dict)  # by pod uid
    starting: set[str] = field(default_factory=set)
    terminating: set[str] = field(default_factory=set)
    # The kubelet's admission on this boot (see kubelet.py): pods it admitted and has not
    # terminated yet (uid -> "ns/name"), and pods it rejected (uid -> the status to report).
    admitted: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, dict[str, str]] = field(default_factory=dict)
    epoch: int = 0  # bumped at every power transition; stale scheduled work checks it
    synced_since_boot: bool = True  # the kubelet has read its pods from the API since it booted
    resets: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def can_run_pods(self) -> bool:
        return self.power is Power.RUNNING

    @property
    def could_run_workloads(self) -> bool:
        """Runs pods, or could start them: powered on with its kubelet started, and running,
        starting or admitted (on this boot, not terminated since) at least one pod. A kubelet
        knows its pods only from the API and admits each once per boot, so a machine that
        rebooted and has not reached the API since cannot run its workloads, and neither can
        one whose kubelet synced but refused (or found terminating) every pod it saw."""
        return self.can_run_pods and bool(self.running or self.starting or self.admitted)

    @property
    def kubelet_alive(self) -> bool:
        return self.power is Power.RUNNING and self.kubelet_enabled

    def mounted_volumes(self) -> set[str]:
        return {v for p in self.running.values() for v in p.volumes}

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "name": self.name, "power": str(self.power), "bootId": self.boot_id,
                "boots": self.boots, "resets": self.resets,
                "kubeletEnabled": self.kubelet_enabled,
                "partition": sorted(self.partition), "island": self.island, "address": self.address,
                "runningPods": sorted(p.key for p in self.running.values()),
                "admittedPods": sorted(self.admitted.values()),
                "mountedVolumes": sorted(self.mounted_volumes()),
            }
