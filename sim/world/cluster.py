"""The simulated cluster: the API server plus the machines, kubelets, control-plane
controllers, workload controllers, per-node agent processes with watchdog devices, the
peer network, faults, the invariant monitor, the timeline and kube-state-metrics.

    with Cluster(nodes=5, time_scale=0.05, workloads=["db=statefulset:3"]) as cluster:
        cluster.fault("power-off", "node-2")
        ...
        assert cluster.invariants()["violations"] == []
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..apiserver.errors import ApiError
from ..apiserver.resources import ResourceType
from ..apiserver.server import ADMIN, WEBHOOK, ApiServer, agent_identity, node_object
from ..apiserver.store import Entry
from ..bmc.fleet import BmcFleet, BmcOptions
from ..bmc.power import MachinePower
from . import faults as faults_mod
from .attachdetach import AttachDetachController
from .control_routes import SimRoutes
from .controller_config import ControllerConfig
from .controller_manager import ControllerManager, Loop
from .csi_attacher import ExternalAttacher
from .facts import ZONE_LABEL, attachment_name, derived_fields, ready_status
from .invariants import OUT_OF_SERVICE, InvariantMonitor
from .kubelet import Kubelet
from .network import PeerNetwork
from .nodelifecycle import NodeLifecycleController
from .nodes import Power, SimNode
from .podgc import PodGCController
from .processes import NodeProcess
from .recorder import EventRecorder
from .scheduler import Scheduler
from .statefulset import StatefulSetController, statefulset_defaults
from .tainteviction import TaintEvictionController
from .ticker import Ticker
from .timeline import Timeline
from .timings import Timings
from .watchdog import WatchdogDevice
from .workloads import WorkloadControllers, default_tolerations, garbage_collect, workload_objects

log = logging.getLogger("sim.cluster")


def agent_address(index: int) -> str:
    """A loopback address of the node's own (127.77.x.y), with a free port."""
    host = f"127.77.{index // 250}.{index % 250 + 1}"
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


def controller_manager_loops(cfg: ControllerConfig) -> tuple[list[Loop], dict[str, object]]:
    """A fresh kube-controller-manager process: new controllers, empty memories."""
    t = cfg.timings
    lifecycle, eviction, gc = NodeLifecycleController(cfg), TaintEvictionController(cfg), PodGCController(cfg)
    adc, sts, workloads = AttachDetachController(cfg), StatefulSetController(cfg), WorkloadControllers(cfg)
    loops: list[Loop] = [
        (t.node_monitor_period_s, lifecycle.run), (t.controller_period_s, lifecycle.tainting_pass),
        (t.controller_period_s, eviction.run), (t.pod_gc_period_s, gc.run), (t.controller_period_s, adc.run),
        (t.controller_period_s, sts.run), (t.controller_period_s, workloads.run)]
    return loops, {"nodelifecycle": lifecycle, "tainteviction": eviction, "podgc": gc, "attachdetach": adc,
                   "statefulset": sts, "workloads": workloads}


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
        self.outage_mode = "unavailable"
        self.api_weather = faults_mod.ApiWeather()
        self._outage_until = 0.0
        self._stopped = False
        self.nodes: dict[str, SimNode] = {}
        self.kubelets: dict[str, Kubelet] = {}
        self.processes: dict[str, NodeProcess] = {}
        self.watchdogs: dict[str, WatchdogDevice] = {}
        self._node_uids: dict[str, str] = {}
        self._sync_pending: set[str] = set()
        self._lock = threading.RLock()
        self.invariants_monitor = InvariantMonitor(self)
        self.network = PeerNetwork(self._peer_blocked, self._resolve, lambda: self.partition_mode)
        self.agent_cmd = agent_cmd
        self.agent_nodes = None if agent_nodes is None else set(agent_nodes)
        self.agent_values = dict(agent_values or {})
        self.agent_env = dict(agent_env or {})
        use_watchdogs = bool(agent_cmd) if watchdogs is None else watchdogs
        self.bmcs: BmcFleet | None = None if bmcs is None else BmcFleet(
            MachinePower(is_on=lambda n: self.nodes[n].power is not Power.OFF, off=self.power_off,
                         on=self.power_on, reset=self.reboot),
            self.workdir / "bmc", bmcs, self.ticker.call_later)

        self.registry.admission.append(default_tolerations)
        self.registry.admission.append(statefulset_defaults)
        self.registry.delete_hooks.append(garbage_collect(self))
        self.registry.commit_hooks.append(self._on_commit)
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
        paused = self._paused_during_outage
        self.controllers: list[tuple[float, Callable[[], None]]] = [
            (self.timings.controller_period_s, paused(Scheduler(self.controller_config).run)),
            (self.timings.controller_period_s, paused(ExternalAttacher(self.controller_config).run)),
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
            self.api.add_identity(agent_identity(name), node=name)
            if agent_cmd:
                node.address = agent_address(i)
            if use_watchdogs and (self.agent_nodes is None or name in self.agent_nodes or not agent_cmd):
                device = WatchdogDevice(name, self.workdir / "nodes" / name / "watchdog",
                                        self.timings.watchdog_timeout_s, self._watchdog_event(name))
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
            self.ticker.every(min(0.25, self.timings.watchdog_timeout_s / 20), self._check_watchdogs)
        for period, fn in self.controllers:
            self.ticker.every(period, fn, first_delay=period / 2)
        self.controller_manager.start()
        for name, node in self.nodes.items():
            self.kubelets[name].start(node.epoch)
        self.ticker.start()
        if self.bmcs is not None:
            self.bmcs.start(list(self.nodes))
        if self.agent_cmd:
            for name in self.nodes:
                if self.runs_agent(name):
                    self._process(name).start()
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

    def control_plane_up(self) -> bool:
        return self.clock() >= self._outage_until

    def _paused_during_outage(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.control_plane_up():
                fn()

        return run

    @property
    def lifecycle(self) -> NodeLifecycleController | None:
        """The running controller manager's node lifecycle controller (None while it is down)."""
        ctrl = self.controller_manager.controllers.get("nodelifecycle")
        return ctrl if isinstance(ctrl, NodeLifecycleController) else None

    def api_reachable(self, node: str) -> bool:
        n = self.nodes.get(node)
        return self.control_plane_up() and n is not None and "api" not in n.partition and not n.island

    def volume_attached(self, pv: str, node: str) -> bool:
        entry = self.store.get(self.registry.table(self.rt("volumeattachments", "storage.k8s.io")), "",
                               attachment_name(pv, node))
        if entry is None:
            return False
        va = entry.obj()
        return bool((va.get("status") or {}).get("attached")) and not va["metadata"].get("deletionTimestamp")

    def kubeconfig(self, identity: str = "admin") -> Path:
        """Path of the kubeconfig for "admin", "webhook" or "agent:<node>"."""
        kc = self.workdir / "kubeconfigs"
        if identity == "admin":
            return kc / "admin.kubeconfig"
        if identity == "webhook":
            return kc / "webhook.kubeconfig"
        if identity.startswith("agent:") and identity[6:] in self.nodes:
            path = kc / f"agent-{identity[6:]}.kubeconfig"
            if not path.exists():
                self.api.write_kubeconfig(path, agent_identity(identity[6:]))
            return path
        raise KeyError(f"unknown identity {identity!r}")

    def peer_proxy(self, source: str = "external") -> str:
        """The HTTP proxy URL through which `source` (a node, or "external") reaches agents."""
        return self.network.proxy_for(source)

    # -- machines ---------------------------------------------------------------------

    def runs_agent(self, name: str) -> bool:
        return bool(self.agent_cmd) and (self.agent_nodes is None or name in self.agent_nodes)

    def _process(self, name: str) -> NodeProcess:
        proc = self.processes.get(name)
        if proc is None:
            node = self.nodes[name]
            account = self.workdir / "nodes" / name / "serviceaccount"
            service_env = self.api.write_service_account(account, agent_identity(name)) if self.api.tls else {}
            values = {"node": name, "kubeconfig": str(self.kubeconfig(f"agent:{name}")),
                      "service_account": str(account),
                      "watchdog": str(self.watchdogs[name].path) if name in self.watchdogs else "",
                      "address": node.address, "workdir": str(self.workdir), **self.agent_values}
            proxy = self.network.proxy_for(name)
            env = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
                   "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **service_env,
                   **self.agent_env}
            proc = NodeProcess(name, self.agent_cmd or "", values, env,
                               self.workdir / "logs" / f"agent-{name}.log")
            self.processes[name] = proc
        return proc

    def power_off(self, name: str, reason: str) -> None:
        node = self.nodes[name]
        with node.lock:
            if node.power is Power.OFF:
                return
            node.power = Power.OFF
            node.epoch += 1
            for pod in node.running.values():
                self.invariants_monitor.pod_stopped(name, pod)
            node.running.clear()
            node.starting.clear()
            node.terminating.clear()
            node.down_since = self.clock()
        if name in self.watchdogs:
            self.watchdogs[name].power_lost()
        if name in self.processes:
            self.processes[name].kill()
        self.timeline.add("node-power", name, f"node/{name}", f"off ({reason})", power="off")

    def power_on(self, name: str) -> None:
        node = self.nodes[name]
        with node.lock:
            if node.power is not Power.OFF:
                return
            node.power = Power.BOOTING
            node.epoch += 1
            node.synced_since_boot = False
            node.boot_id = str(uuid.uuid4())
            node.boots += 1
            epoch = node.epoch
        if name in self.watchdogs:
            self.watchdogs[name].power_restored()
        self.timeline.add("node-power", name, f"node/{name}", f"on, booting (boot {node.boot_id[:8]})",
                          power="booting", bootId=node.boot_id)
        self.ticker.call_later(self.timings.boot_delay_s, lambda: self._booted(name, epoch))

    def _booted(self, name: str, epoch: int) -> None:
        node = self.nodes[name]
        with node.lock:
            if node.epoch != epoch or node.power is not Power.BOOTING:
                return
            node.power = Power.RUNNING
            node.booted_at = self.clock()
            node.down_since = None
        self.timeline.add("node-booted", name, f"node/{name}", f"kubelet started (boot {node.boot_id[:8]})",
                          bootId=node.boot_id)
        self.kubelets[name].start(epoch)
        if self.runs_agent(name) and not self._stopped:
            self._process(name).start()

    def reboot(self, name: str, reason: str) -> None:
        node = self.nodes[name]
        self.power_off(name, reason)
        epoch = node.epoch

        def back() -> None:
            if node.epoch == epoch and node.power is Power.OFF:
                self.power_on(name)

        self.ticker.call_later(self.timings.reboot_delay_s, back)

    def reset(self, name: str, reason: str) -> None:
        self.nodes[name].resets += 1
        self.reboot(name, reason)

    def set_kubelet(self, name: str, enabled: bool) -> None:
        node = self.nodes[name]
        with node.lock:
            node.kubelet_enabled = enabled
        self.timeline.add("fault", name, f"node/{name}", "kubelet started" if enabled else "kubelet stopped")
        if enabled:
            self.nudge(name)

    def partition(self, name: str, scope: set[str]) -> None:
        node = self.nodes[name]
        with node.lock:
            node.partition |= scope
        self.timeline.add("fault", name, f"node/{name}", f"partitioned from {', '.join(sorted(scope))}",
                          partition=sorted(node.partition))

    def partition_group(self, names: list[str]) -> None:
        """Cut these nodes off from the API and from every other node, but not from each other."""
        island = ",".join(sorted(names))
        for name in names:
            node = self.nodes[name]
            with node.lock:
                node.island = island
        self.timeline.add("fault", detail=f"group partition: {island} cut from the API and the rest",
                          group=sorted(names))

    def heal(self, name: str | None) -> None:
        for node in ([self.nodes[name]] if name else list(self.nodes.values())):
            with node.lock:
                if not node.partition and not node.island:
                    continue
                node.partition.clear()
                node.island = ""
            self.timeline.add("fault", node.name, f"node/{node.name}", "partition healed")
            self.nudge(node.name)

    def api_outage(self, duration_s: float, mode: str) -> None:
        scaled = duration_s * self.timings.scale
        self.outage_mode = mode
        self._outage_until = max(self._outage_until, self.clock() + scaled)
        self.timeline.add("fault", detail=f"API server outage for {scaled:.1f}s ({mode})")

        def end() -> None:
            if self.control_plane_up():
                self.timeline.add("fault", detail="API server back")

        self.ticker.call_later(scaled + 0.01, end)

    def kill_agent(self, name: str, restart_after_s: float | None) -> None:
        proc = self.processes.get(name)
        if proc is None:
            raise faults_mod.FaultError(f"no agent process on {name}")
        proc.kill()
        self.timeline.add("fault", name, f"agent/{name}", "agent process killed")
        delay = (5.0 if restart_after_s is None else restart_after_s) * self.timings.scale
        node = self.nodes[name]
        epoch = node.epoch

        def restart() -> None:
            if node.epoch == epoch and node.power is Power.RUNNING and not self._stopped:
                proc.start()
                self.timeline.add("agent-restarted", name, f"agent/{name}", "restarted by the kubelet")

        self.ticker.call_later(delay, restart)

    def _watchdog_event(self, name: str) -> Callable[[str, str], None]:
        def record(kind: str, detail: str) -> None:
            self.timeline.add(kind, name, f"watchdog/{name}", detail)

        return record

    def _check_watchdogs(self) -> None:
        for name, device in self.watchdogs.items():
            if device.expired():
                self.timeline.add("watchdog-fired", name, f"watchdog/{name}",
                                  f"not fed for {device.timeout_s:.1f}s: resetting the machine")
                self.reset(name, "watchdog")

    def fault(self, action: str, node: str = "", **options: Any) -> dict[str, Any]:
        """Inject a fault (see `faults`). Options: from_, duration_s, mode, restart_after_s.
        Durations are cluster seconds: they are multiplied by the time scale."""
        return self.apply_fault(faults_mod.Fault(action, node, **options))

    def apply_fault(self, fault: faults_mod.Fault) -> dict[str, Any]:
        return faults_mod.apply(self, fault)

    # -- network ----------------------------------------------------------------------

    def _resolve(self, address: str) -> str | None:
        for node in self.nodes.values():
            if node.address and node.address == address:
                return node.name
        return None

    def _peer_blocked(self, source: str, destination: str) -> bool:
        islands = set()
        for name in (source, destination):
            node = self.nodes.get(name)
            if node is not None and "peers" in node.partition:
                return True
            islands.add(node.island if node is not None else "")
        return len(islands) > 1  # one side is in a group partition the other is not in

    # -- change hooks -----------------------------------------------------------------

    def nudge(self, node: str) -> None:
        """Ask a kubelet to sync soon (debounced)."""
        with self._lock:
            if node in self._sync_pending or node not in self.kubelets:
                return
            self._sync_pending.add(node)

        def sync() -> None:
            with self._lock:
                self._sync_pending.discard(node)
            self.kubelets[node].sync()

        self.ticker.call_later(0.02, sync)

    def _on_commit(self, rt: ResourceType, obj: dict[str, Any] | None, prev: Entry | None) -> None:
        if rt.kind == "Pod":
            node = ((obj or {}).get("spec") or {}).get("nodeName") or (
                prev.fields.get("spec.nodeName") if prev is not None else "")
            if node:
                self.nudge(node)
        elif rt.kind == "VolumeAttachment" and obj is not None:
            node = (obj.get("spec") or {}).get("nodeName")
            if node and (obj.get("status") or {}).get("attached"):
                self.nudge(node)
        elif rt.kind == "Node" and obj is not None:
            name = obj["metadata"]["name"]
            old = prev.obj() if prev is not None else {}
            old_taints = {(t.get("key"), t.get("effect")) for t in (old.get("spec") or {}).get("taints") or []}
            new_taints = {(t.get("key"), t.get("effect")) for t in (obj.get("spec") or {}).get("taints") or []}
            for key, effect in sorted(new_taints - old_taints, key=str):
                if key == OUT_OF_SERVICE:
                    self.invariants_monitor.on_taint_added(name)
                self.timeline.add("taint-added", name, f"node/{name}", f"{key}:{effect}", key=key, effect=effect)
            for key, effect in sorted(old_taints - new_taints, key=str):
                self.timeline.add("taint-removed", name, f"node/{name}", f"{key}:{effect}", key=key, effect=effect)
            before, after = ready_status(old) if old else "", ready_status(obj)
            if before and before != after:
                reason = next((c.get("reason", "") for c in (obj.get("status") or {}).get("conditions") or []
                               if c.get("type") == "Ready"), "")
                self.timeline.add("node-condition", name, f"node/{name}", f"Ready={after} ({reason})",
                                  ready=after)

    # -- building worlds --------------------------------------------------------------

    def apply_manifest(self, text: str, namespace: str = "default") -> list[dict[str, Any]]:
        """Create or replace every object in a YAML stream (like `kubectl apply`)."""
        applied = []
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            rt = self.registry.types.by_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
            if rt is None:
                raise ValueError(f"no resource serves {doc.get('apiVersion')}/{doc.get('kind')}")
            ns = (doc.get("metadata") or {}).get("namespace") or (namespace if rt.namespaced else "")
            name = (doc.get("metadata") or {}).get("name", "")
            try:
                result = self.registry.create(rt, ns, doc)
            except ApiError as err:
                if err.code != 409:
                    raise
                current = self.registry.get(rt, ns, name)
                doc.setdefault("metadata", {})["resourceVersion"] = str(current.rv)
                result = self.registry.update(rt, ns, name, doc)
            applied.append(result.obj)
        return applied

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
