"""The simulated cluster: the API server plus the machines, kubelets, control-plane
controllers, workload controllers, per-node agent processes with watchdog devices, the
peer network, faults, the invariant monitor, the timeline and kube-state-metrics.

    with Cluster(nodes=5, time_scale=0.05, workloads=["db=statefulset:3"]) as cluster:
        cluster.fault("power-off", "node-2")
        ...
        assert cluster.invariants()["violations"] == []

`Cluster` builds the world and wires its parts together; each concern lives in its own
module and gets only what it needs (kwok-style: functions, a clock, shared tables):
power and processes in `machines`, partitions and API outages in `connectivity`, agent
processes and kubeconfigs in `agents`, reactions to committed changes in `change_hooks`,
`kubectl apply` in `manifests`, the controller manager's loops in `controller_loops`.
The public methods below are the surface tests, the harness and the benchmarks use; most
delegate to those modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..apiserver.resources import ResourceType
from ..apiserver.server import ADMIN, WEBHOOK, ApiServer, agent_identity, node_object
from ..bmc.fleet import BmcFleet, BmcOptions
from ..bmc.power import MachinePower
from . import faults as faults_mod
from .agents import AgentProcesses, agent_address
from .change_hooks import ChangeHooks
from .connectivity import Connectivity
from .control_routes import SimRoutes
from .controller_config import ControllerConfig
from .controller_loops import controller_manager_loops
from .controller_manager import ControllerManager
from .csi_attacher import ExternalAttacher
from .facts import ZONE_LABEL, attachment_name, derived_fields
from .invariants import InvariantMonitor
from .kubelet import Kubelet
from .machines import MachineConfig, Machines
from .manifests import apply_manifest
from .network import PeerNetwork
from .nodelifecycle import NodeLifecycleController
from .nodes import Power, SimNode
from .processes import NodeProcess
from .recorder import EventRecorder
from .scheduler import Scheduler
from .statefulset import statefulset_defaults
from .ticker import Ticker
from .timeline import Timeline
from .timings import Timings
from .watchdog import WatchdogDevice
from .workloads import default_tolerations, garbage_collect, workload_objects

log = logging.getLogger("sim.cluster")


class Cluster:
    def __init__(self, nodes: int = 5, *, time_scale: float = 1.0, timings: Timings | None = None,
                 workdir: str | Path | None = None, host: str = "127.0.0.1", port: int = 0,
                 workloads: list[str] | tuple[str, ...] = (), agent_cmd: str | None = None,
                 agent_values: dict[str, str] | None = None, agent_env: dict[str, str] | None = None,
                 agent_nodes: list[str] | None = None,
                 watchdogs: bool | None = None, control_plane_nodes: int = 0,
                 partition_mode: str = "drop", use_tls: bool = True, node_age_s: float = 0.0,
                 zones: int = 0, bmcs: BmcOptions | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.timings = (timings or Timings()).scaled(time_scale)
        self.clock = clock
        self.api = ApiServer(host=host, port=port, workdir=workdir, clock=clock, use_tls=use_tls)
        self.workdir = self.api.workdir
        self.store, self.registry = self.api.store, self.api.registry
        self.timeline = Timeline(clock)
        self.ticker = Ticker()
        self.partition_mode = partition_mode
        self.api_weather = faults_mod.ApiWeather()
        self._stopped = False
        self.nodes: dict[str, SimNode] = {}
        self.kubelets: dict[str, Kubelet] = {}
        self.watchdogs: dict[str, WatchdogDevice] = {}
        self._node_uids: dict[str, str] = {}
        self._kubelet_syncs: dict[str, Callable[[], None]] = {}
        self.invariants_monitor = InvariantMonitor(self)
        self.changes = ChangeHooks(self._kubelet_syncs, self.ticker, self.timeline,
                                   self.invariants_monitor.on_taint_added)
        self.connectivity = Connectivity(self.nodes, self.timeline, self.ticker, clock, self.timings.scale,
                                         self.changes.nudge)
        self.network = PeerNetwork(self.connectivity.peer_blocked, self.connectivity.resolve,
                                   lambda: self.partition_mode)
        self.agent_cmd = agent_cmd
        self.agent_nodes = None if agent_nodes is None else set(agent_nodes)
        self.agent_values = dict(agent_values or {})
        self.agent_env = dict(agent_env or {})
        self.agents = AgentProcesses(self.api, self.workdir, self.nodes, self.watchdogs, self.network.proxy_for,
                                     agent_cmd=agent_cmd, agent_nodes=self.agent_nodes,
                                     agent_values=self.agent_values, agent_env=self.agent_env)
        self.processes: dict[str, NodeProcess] = self.agents.processes
        self.machines = Machines(MachineConfig(
            self.nodes, self.watchdogs, self.processes, self.timeline, self.ticker, clock, self.timings,
            pod_stopped=self.invariants_monitor.pod_stopped,
            start_kubelet=lambda name, epoch: self.kubelets[name].start(epoch),
            start_agent=self.agents.start, stopped=lambda: self._stopped, nudge=self.changes.nudge))
        use_watchdogs = bool(agent_cmd) if watchdogs is None else watchdogs
        self.bmcs: BmcFleet | None = None if bmcs is None else BmcFleet(
            MachinePower(is_on=lambda n: self.nodes[n].power is not Power.OFF, off=self.power_off,
                         on=self.power_on, reset=self.reboot),
            self.workdir / "bmc", bmcs, self.ticker.call_later)

        self.registry.admission.append(default_tolerations)
        self.registry.admission.append(statefulset_defaults)
        self.registry.delete_hooks.append(garbage_collect(self))
        self.registry.commit_hooks.append(self.changes.on_commit)
        self.registry.derived_fields = derived_fields
        self.store.add_index(self.registry.table(self.rt("pods")), "spec.nodeName")
        self.store.add_index(self.registry.table(self.rt("pods")), "sim.owner")
        self.api.set_gate(faults_mod.ClusterGate(self))
        self.api.routes.extra.append(SimRoutes(self))

        self.events = EventRecorder(self.registry, self.rt("events"), clock)
        self.controller_config = ControllerConfig(clock, self.timings, self.registry, self.store,
                                                  self.rt, self.events, self.timeline)
        self.controller_manager = ControllerManager(self.controller_config, self.ticker,
                                                    self.control_plane_up, controller_manager_loops)
        paused = self.connectivity.paused_during_outage
        self.external_attacher = ExternalAttacher(self.controller_config)
        self.controllers: list[tuple[float, Callable[[], None]]] = [
            (self.timings.controller_period_s, paused(Scheduler(self.controller_config).run)),
            (self.timings.controller_period_s, paused(self.external_attacher.run)),
            (self.timings.controller_period_s, self.invariants_monitor.run),
        ]

        nodes_rt = self.rt("nodes")
        now = clock()
        for i in range(1, nodes + 1):
            control_plane = i <= control_plane_nodes
            name = f"cp-{i}" if control_plane else f"node-{i - control_plane_nodes}"
            node = SimNode(name, i, booted_at=now)
            self.nodes[name] = node
            labels = {"node-role.kubernetes.io/control-plane": ""} if control_plane else {}
            if zones > 0:  # node-1 in zone-a, node-2 in zone-b, ... round robin
                labels[ZONE_LABEL] = f"zone-{chr(ord('a') + (i - 1) % zones)}"
            obj = node_object(name, i, now, node.boot_id, labels)
            result = self.registry.create(nodes_rt, "", obj, created_at=now - node_age_s)
            self._node_uids[name] = result.obj["metadata"]["uid"]
            self.kubelets[name] = Kubelet(self, node)
            self._kubelet_syncs[name] = self.kubelets[name].sync
            self.api.add_identity(agent_identity(name), node=name)
            if agent_cmd:
                node.address = agent_address(i)
            if use_watchdogs and (self.agent_nodes is None or name in self.agent_nodes or not agent_cmd):
                device = WatchdogDevice(name, self.workdir / "nodes" / name / "watchdog",
                                        self.timings.watchdog_timeout_s,
                                        self.machines.watchdog_event(name))
                self.watchdogs[name] = device
        for spec in workloads:
            obj = workload_objects(spec)
            self.registry.create(self.rt(obj["kind"].lower() + "s", "apps"), "default", obj)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Cluster:
        self.api.start()
        kc = self.workdir / "kubeconfigs"
        self.api.write_kubeconfig(kc / "admin.kubeconfig", ADMIN)
        self.api.write_kubeconfig(kc / "webhook.kubeconfig", WEBHOOK)
        if self.agent_cmd:
            for name in self.nodes:
                self.kubeconfig(f"agent:{name}")
        for device in self.watchdogs.values():
            device.start()
        if self.watchdogs:
            self.ticker.every(min(0.25, self.timings.watchdog_timeout_s / 20), self.machines.check_watchdogs)
        for period, fn in self.controllers:
            self.ticker.every(period, fn, first_delay=period / 2)
        self.controller_manager.start()
        for name, node in self.nodes.items():
            self.kubelets[name].start(node.epoch)
        self.ticker.start()
        if self.bmcs is not None:
            self.bmcs.start(list(self.nodes))
        for name in self.nodes:
            self.agents.start(name)
        self.timeline.add("cluster-started", detail=f"{len(self.nodes)} nodes, time scale {self.timings.scale:g}")
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for proc in self.processes.values():
            proc.terminate()
        self.ticker.stop()
        if self.bmcs is not None:
            self.bmcs.stop()
        self.network.stop()
        for device in self.watchdogs.values():
            device.stop()
        self.api.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lookups used by the components ----------------------------------------------

    def rt(self, plural: str, group: str = "", version: str = "v1") -> ResourceType:
        return self.api.resource(plural, group, version)

    def node_uid(self, name: str) -> str:
        return self._node_uids.get(name, "")

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def outage_mode(self) -> str:
        """How the API server fails during an outage ("unavailable", ...): the last one injected."""
        return self.connectivity.outage_mode

    def control_plane_up(self) -> bool:
        return self.connectivity.control_plane_up()

    @property
    def lifecycle(self) -> NodeLifecycleController | None:
        """The running controller manager's node lifecycle controller (None while it is down)."""
        ctrl = self.controller_manager.controllers.get("nodelifecycle")
        return ctrl if isinstance(ctrl, NodeLifecycleController) else None

    def api_reachable(self, node: str) -> bool:
        return self.connectivity.api_reachable(node)

    def volume_attached(self, pv: str, node: str) -> bool:
        entry = self.store.get(self.registry.table(self.rt("volumeattachments", "storage.k8s.io")), "",
                               attachment_name(pv, node))
        if entry is None:
            return False
        va = entry.obj()
        return bool((va.get("status") or {}).get("attached")) and not va["metadata"].get("deletionTimestamp")

    def kubeconfig(self, identity: str = "admin") -> Path:
        """Path of the kubeconfig for "admin", "webhook" or "agent:<node>"."""
        return self.agents.kubeconfig(identity)

    def peer_proxy(self, source: str = "external") -> str:
        """The HTTP proxy URL through which `source` (a node, or "external") reaches agents."""
        return self.network.proxy_for(source)

    # -- machines (see machines.py) -----------------------------------------------------

    def runs_agent(self, name: str) -> bool:
        return self.agents.runs_agent(name)

    def power_off(self, name: str, reason: str) -> None:
        self.machines.power_off(name, reason)

    def power_on(self, name: str) -> None:
        self.machines.power_on(name)

    def reboot(self, name: str, reason: str) -> None:
        self.machines.reboot(name, reason)

    def reset(self, name: str, reason: str) -> None:
        self.machines.reset(name, reason)

    def set_kubelet(self, name: str, enabled: bool) -> None:
        self.machines.set_kubelet(name, enabled)

    def kill_agent(self, name: str, restart_after_s: float | None) -> None:
        self.machines.kill_agent(name, restart_after_s)

    # -- connectivity (see connectivity.py) ---------------------------------------------

    def partition(self, name: str, scope: set[str]) -> None:
        self.connectivity.partition(name, scope)

    def partition_group(self, names: list[str]) -> None:
        """Cut these nodes off from the API and from every other node, but not from each other."""
        self.connectivity.partition_group(names)

    def heal(self, name: str | None) -> None:
        self.connectivity.heal(name)

    def api_outage(self, duration_s: float, mode: str) -> None:
        self.connectivity.api_outage(duration_s, mode)

    def _peer_blocked(self, source: str, destination: str) -> bool:
        return self.connectivity.peer_blocked(source, destination)

    # -- faults -------------------------------------------------------------------------

    def fault(self, action: str, node: str = "", **options: Any) -> dict[str, Any]:
        """Inject a fault (see `faults`). Options: from_, duration_s, mode, restart_after_s.
        Durations are cluster seconds: they are multiplied by the time scale."""
        return self.apply_fault(faults_mod.Fault(action, node, **options))

    def apply_fault(self, fault: faults_mod.Fault) -> dict[str, Any]:
        return faults_mod.apply(self, fault)

    def nudge(self, node: str) -> None:
        """Ask a kubelet to sync soon (debounced)."""
        self.changes.nudge(node)

    # -- building worlds --------------------------------------------------------------

    def apply_manifest(self, text: str, namespace: str = "default") -> list[dict[str, Any]]:
        """Create or replace every object in a YAML stream (like `kubectl apply`)."""
        return apply_manifest(self.registry, text, namespace)

    def apply_file(self, path: str | Path, namespace: str = "default") -> list[dict[str, Any]]:
        return self.apply_manifest(Path(path).read_text(), namespace)

    # -- observations -------------------------------------------------------------------

    def invariants(self) -> dict[str, Any]:
        return self.invariants_monitor.report()

    def node_state(self, name: str) -> dict[str, Any]:
        return self.nodes[name].snapshot()

    def get(self, plural: str, name: str, namespace: str = "", group: str = "") -> dict[str, Any] | None:
        rt = self.rt(plural, group)
        entry = self.store.get(self.registry.table(rt), namespace if rt.namespaced else "", name)
        return self.registry.decode(rt, entry) if entry else None

    def list(self, plural: str, namespace: str | None = None, group: str = "") -> list[dict[str, Any]]:
        rt = self.rt(plural, group)
        return [self.registry.decode(rt, e) for _, e in self.store.items(self.registry.table(rt), namespace)]

    def wait_for(self, predicate: Callable[[], Any], timeout: float, interval: float = 0.05,
                 message: str = "condition") -> Any:
        """Poll until predicate() is truthy; raise TimeoutError naming `message`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
            time.sleep(interval)
