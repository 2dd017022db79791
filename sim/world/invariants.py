"""The invariant monitor: judges every run against the property nodewarden exists to
keep, using the simulator's ground truth (what each machine really runs), never the API.

1. at-most-one: a StatefulSet pod identity, or a ReadWriteOnce volume, is live on two
   nodes at once. Live = in the container runtime of a powered-on node, whether or not
   the node is partitioned and whether or not its kubelet still runs.
2. unsafe-taint: the out-of-service taint was applied to a node that could run its
   workloads at that moment: powered on with its kubelet started, and running, starting
   or admitted (on its current boot, and not terminated since) at least one pod. A kubelet
   knows its pods only from the API and admits each once per boot (kubelet.py), so a
   machine that rebooted and has not reached the API since cannot run them, nor can one
   whose kubelet synced but refused every pod it saw (a NoExecute taint they do not
   tolerate) or saw them all terminating. It had not been reset or powered off since it
   was last able to run them.
3. stale-taint: the out-of-service taint is still on a node that has been Ready on its
   current boot for longer than the configured bound: Ready since the later of the
   condition's last transition and the boot, and never while the machine is off or
   booting. A reboot shorter than the grace period never turns Ready to Unknown, and the
   old transition time would otherwise count the time the node was reset and down as
   time it was Ready.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..timefmt import parse
from .nodes import Power

if TYPE_CHECKING:
    from .cluster import Cluster
    from .nodes import RunningPod

OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


@dataclass
class Violation:
    kind: str
    node: str
    object: str
    detail: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InvariantMonitor:
    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self._lock = threading.Lock()
        self.checked = 0
        self.violations: list[Violation] = []
        self._episodes: set[tuple[str, str, str]] = set()
        self._live: dict[str, set[str]] = {}  # "pod/ns/name" | "volume/pv" -> nodes running it

    def _violate(self, kind: str, node: str, obj: str, detail: str, episode: str) -> None:
        key = (kind, obj, episode)
        with self._lock:
            if key in self._episodes:
                return
            self._episodes.add(key)
            v = Violation(kind, node, obj, detail, self.c.clock())
            self.violations.append(v)
        self.c.timeline.add("violation", node, obj, f"{kind}: {detail}")

    @staticmethod
    def _keys(pod: RunningPod) -> list[str]:
        return ([f"pod/{pod.identity}"] if pod.identity else []) + [f"volume/{v}" for v in pod.volumes]

    def pod_started(self, node: str, pod: RunningPod) -> None:
        """A pod just started on `node`: check its identity and volumes at once."""
        doubled = []
        with self._lock:
            self.checked += 1
            for key in self._keys(pod):
                nodes = self._live.setdefault(key, set())
                nodes.add(node)
                if len(nodes) > 1:
                    doubled.append((key, sorted(nodes)))
        for key, names in doubled:
            what, _, obj = key.partition("/")
            self._violate("at-most-one", names[0], key, f"{what} {obj} is live on {','.join(names)}",
                          ",".join(names))

    def pod_stopped(self, node: str, pod: RunningPod) -> None:
        with self._lock:
            for key in self._keys(pod):
                nodes = self._live.get(key)
                if nodes is not None:
                    nodes.discard(node)
                    if not nodes:
                        del self._live[key]

    def check_live(self) -> None:
        """at-most-one, from the machines' ground truth."""
        identities: dict[str, set[str]] = {}
        volumes: dict[str, set[str]] = {}
        for node in self.c.nodes.values():
            with node.lock:
                if not node.can_run_pods:
                    continue
                for pod in node.running.values():
                    if pod.identity:
                        identities.setdefault(pod.identity, set()).add(node.name)
                    for pv in pod.volumes:
                        volumes.setdefault(pv, set()).add(node.name)
        with self._lock:
            self.checked += 1
        for what, table in (("pod", identities), ("volume", volumes)):
            for obj, nodes in table.items():
                if len(nodes) > 1:
                    names = ",".join(sorted(nodes))
                    self._violate("at-most-one", sorted(nodes)[0], f"{what}/{obj}",
                                  f"{what} {obj} is live on {names}", names)

    def on_taint_added(self, node_name: str) -> None:
        node = self.c.nodes.get(node_name)
        with self._lock:
            self.checked += 1
        if node is None:
            return
        with node.lock:
            unsafe = node.could_run_workloads
            state = f"power={node.power}, kubelet={'on' if node.kubelet_enabled else 'stopped'}, " \
                    f"partition={sorted(node.partition) or 'none'}, running pods={len(node.running)}, " \
                    f"starting={len(node.starting)}, admitted on this boot={len(node.admitted)}, " \
                    f"rejected on this boot={len(node.rejected)}, " \
                    f"synced with the API since boot={node.synced_since_boot}"
            boots = node.boots
        if unsafe:
            self._violate("unsafe-taint", node_name, f"node/{node_name}",
                          f"out-of-service taint applied while the node could run pods ({state})",
                          f"boot-{boots}")

    def check_stale_taints(self) -> None:
        c = self.c
        now = c.clock()
        for (_, name), entry in c.store.items(c.registry.table(c.rt("nodes"))):
            if not entry.fields.get("sim.oos"):
                continue
            node = entry.obj()
            if not any(t.get("key") == OUT_OF_SERVICE for t in (node.get("spec") or {}).get("taints") or []):
                continue
            for cond in (node.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    since = parse(cond.get("lastTransitionTime")) or now
                    sim_node = c.nodes.get(name)
                    if sim_node is not None:
                        if sim_node.power is not Power.RUNNING:
                            continue  # off or booting: Ready=True is the API's stale word
                        since = max(since, sim_node.booted_at)
                    if now - since > c.timings.stale_taint_bound_s:
                        self._violate("stale-taint", name, f"node/{name}",
                                      f"out-of-service taint still present {now - since:.1f}s after the node became Ready",
                                      str(cond.get("lastTransitionTime")))
        with self._lock:
            self.checked += 1

    def run(self) -> None:
        self.check_live()
        self.check_stale_taints()

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"checked": self.checked, "violations": [v.to_dict() for v in self.violations]}
