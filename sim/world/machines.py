"""The machines' power and their processes: power off and on, boot, reboot, reset (the
watchdog's doing), the kubelet switched off and on, the agent process killed and restarted
by the kubelet. Given a narrow `MachineConfig` (the machines, their watchdogs and agent
processes, the timeline, a ticker, a clock, the timings and a few functions), never the
cluster.

Every power change bumps the node's epoch; a delayed step (boot done, back from reboot,
agent restart) checks the epoch it was scheduled under and does nothing if the machine
has changed state since, so a stale timer never boots a machine that was powered off again.
Losing power stops every container at once (the invariant monitor is told of each) and
kills the agent; the watchdog device sees the power loss and its return. The kubelet's
admissions and refusals die with the boot: the next kubelet admits every pod afresh.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .faults import FaultError
from .nodes import Power, RunningPod, SimNode
from .processes import NodeProcess
from .ticker import Ticker
from .timeline import Timeline
from .timings import Timings
from .watchdog import WatchdogDevice


@dataclass(frozen=True)
class MachineConfig:
    nodes: dict[str, SimNode]
    watchdogs: dict[str, WatchdogDevice]
    processes: dict[str, NodeProcess]  # the agent processes started so far
    timeline: Timeline
    ticker: Ticker
    clock: Callable[[], float]
    timings: Timings
    pod_stopped: Callable[[str, RunningPod], None]  # (node, pod): a container stopped by power loss
    start_kubelet: Callable[[str, int], None]  # (node, epoch)
    start_agent: Callable[[str], None]  # start the node's agent process if it runs one
    stopped: Callable[[], bool]  # the cluster is shutting down: start nothing
    nudge: Callable[[str], None]  # ask the node's kubelet to sync soon


class Machines:
    def __init__(self, cfg: MachineConfig) -> None:
        self.cfg = cfg

    def power_off(self, name: str, reason: str) -> None:
        cfg = self.cfg
        node = cfg.nodes[name]
        with node.lock:
            if node.power is Power.OFF:
                return
            node.power = Power.OFF
            node.epoch += 1
            for pod in node.running.values():
                cfg.pod_stopped(name, pod)
            node.running.clear()
            node.starting.clear()
            node.terminating.clear()
            node.admitted.clear()
            node.rejected.clear()
            node.down_since = cfg.clock()
        if name in cfg.watchdogs:
            cfg.watchdogs[name].power_lost()
        if name in cfg.processes:
            cfg.processes[name].kill()
        cfg.timeline.add("node-power", name, f"node/{name}", f"off ({reason})", power="off")

    def power_on(self, name: str) -> None:
        cfg = self.cfg
        node = cfg.nodes[name]
        with node.lock:
            if node.power is not Power.OFF:
                return
            node.power = Power.BOOTING
            node.epoch += 1
            node.synced_since_boot = False
            node.admitted.clear()  # a new kubelet admits every pod it sees afresh
            node.rejected.clear()
            node.boot_id = str(uuid.uuid4())
            node.boots += 1
            epoch = node.epoch
        if name in cfg.watchdogs:
            cfg.watchdogs[name].power_restored()
        cfg.timeline.add("node-power", name, f"node/{name}", f"on, booting (boot {node.boot_id[:8]})",
                         power="booting", bootId=node.boot_id)
        cfg.ticker.call_later(cfg.timings.boot_delay_s, lambda: self._booted(name, epoch))

    def _booted(self, name: str, epoch: int) -> None:
        cfg = self.cfg
        node = cfg.nodes[name]
        with node.lock:
            if node.epoch != epoch or node.power is not Power.BOOTING:
                return
            node.power = Power.RUNNING
            node.booted_at = cfg.clock()
            node.down_since = None
        cfg.timeline.add("node-booted", name, f"node/{name}", f"kubelet started (boot {node.boot_id[:8]})",
                         bootId=node.boot_id)
        cfg.start_kubelet(name, epoch)
        if not cfg.stopped():
            cfg.start_agent(name)

    def reboot(self, name: str, reason: str) -> None:
        node = self.cfg.nodes[name]
        self.power_off(name, reason)
        epoch = node.epoch

        def back() -> None:
            if node.epoch == epoch and node.power is Power.OFF:
                self.power_on(name)

        self.cfg.ticker.call_later(self.cfg.timings.reboot_delay_s, back)

    def reset(self, name: str, reason: str) -> None:
        self.cfg.nodes[name].resets += 1
        self.reboot(name, reason)

    def set_kubelet(self, name: str, enabled: bool) -> None:
        node = self.cfg.nodes[name]
        with node.lock:
            node.kubelet_enabled = enabled
        self.cfg.timeline.add("fault", name, f"node/{name}", "kubelet started" if enabled else "kubelet stopped")
        if enabled:
            self.cfg.nudge(name)

    def kill_agent(self, name: str, restart_after_s: float | None) -> None:
        cfg = self.cfg
        proc = cfg.processes.get(name)
        if proc is None:
            raise FaultError(f"no agent process on {name}")
        proc.kill()
        cfg.timeline.add("fault", name, f"agent/{name}", "agent process killed")
        delay = (5.0 if restart_after_s is None else restart_after_s) * cfg.timings.scale
        node = cfg.nodes[name]
        epoch = node.epoch

        def restart() -> None:
            if node.epoch == epoch and node.power is Power.RUNNING and not cfg.stopped():
                proc.start()
                cfg.timeline.add("agent-restarted", name, f"agent/{name}", "restarted by the kubelet")

        cfg.ticker.call_later(delay, restart)

    # -- watchdogs --------------------------------------------------------------------

    def watchdog_event(self, name: str) -> Callable[[str, str], None]:
        """The callback a node's watchdog device reports through (onto the timeline)."""
        def record(kind: str, detail: str) -> None:
            self.cfg.timeline.add(kind, name, f"watchdog/{name}", detail)

        return record

    def check_watchdogs(self) -> None:
        """Reset every machine whose watchdog expired (run on a short ticker period)."""
        for name, device in self.cfg.watchdogs.items():
            if device.expired():
                self.cfg.timeline.add("watchdog-fired", name, f"watchdog/{name}",
                                      f"not fed for {device.timeout_s:.1f}s: resetting the machine")
                self.reset(name, "watchdog")
