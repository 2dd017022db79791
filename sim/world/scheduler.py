"""The scheduler (kube-scheduler), reduced to what recovery depends on: binds pending pods
to Ready, schedulable nodes whose NoSchedule/NoExecute taints they tolerate and whose labels
match their nodeSelector, least loaded first, and records `Scheduled` ("Successfully
assigned ns/name to node") as the real default-scheduler does."""

from __future__ import annotations

import heapq
from typing import Any

from ..timefmt import rfc3339
from .controller_config import ControllerConfig
from .tolerations import untolerated

COMPONENT = "default-scheduler"


class Scheduler:
    """Binds pending pods to Ready, schedulable nodes whose taints they tolerate and whose
    labels match their nodeSelector, choosing the least loaded node."""

    def __init__(self, cfg: ControllerConfig) -> None:
        self.c = cfg

    def run(self) -> None:
        c = self.c
        pods_table = c.table("pods")
        pending = [(k, e) for k, e in c.store.items(pods_table)
                   if not e.fields.get("spec.nodeName") and not e.fields.get("sim.deleting")]
        if not pending:
            return
        nodes: dict[str, dict[str, Any]] = {}
        load: dict[str, int] = {}
        clean: list[tuple[int, str]] = []  # heap of untainted nodes by load (lazily updated)
        for (_, name), entry in c.items("nodes"):
            if entry.fields.get("sim.ready") != "True" or entry.fields.get("spec.unschedulable") == "true":
                continue
            nodes[name] = entry.obj()
            load[name] = len(c.store.keys_by(pods_table, "spec.nodeName", name))
            if not (nodes[name].get("spec") or {}).get("taints"):
                clean.append((load[name], name))
        heapq.heapify(clean)
        tainted = [n for n in nodes if (nodes[n].get("spec") or {}).get("taints")]
        for (ns, name), entry in sorted(pending):
            pod = entry.obj()
            chosen = self._choose(pod.get("spec") or {}, nodes, load, clean, tainted)
            if chosen is None or not self._bind(ns, name, pod["metadata"]["uid"], chosen):
                continue
            load[chosen] += 1
            if chosen not in tainted:
                heapq.heappush(clean, (load[chosen], chosen))

    @staticmethod
    def _choose(spec: dict[str, Any], nodes: dict[str, dict[str, Any]], load: dict[str, int],
                clean: list[tuple[int, str]], tainted: list[str]) -> str | None:
        tolerations = spec.get("tolerations") or []
        selector = spec.get("nodeSelector") or {}

        def fits(name: str) -> bool:
            node = nodes[name]
            if untolerated((node.get("spec") or {}).get("taints") or [], tolerations,
                           ("NoSchedule", "NoExecute")):
                return False
            labels = node["metadata"].get("labels") or {}
            return all(labels.get(k) == v for k, v in selector.items())

        if selector:
            options = [(load[n], n) for n in nodes if fits(n)]
            return min(options)[1] if options else None
        while clean and clean[0][0] != load[clean[0][1]]:
            heapq.heappop(clean)  # a stale entry: that node has been given pods since
        options = [(load[n], n) for n in tainted if fits(n)]
        if clean:
            options.append(clean[0])
        return min(options)[1] if options else None

    def _bind(self, ns: str, name: str, uid: str, node: str) -> bool:
        c = self.c
        now = rfc3339(c.clock())

        def bind(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != uid or obj.get("spec", {}).get("nodeName"):
                return False
            obj["spec"]["nodeName"] = node
            return None

        result = c.registry.mutate(c.rt("pods"), ns, name, bind)
        if result is None or result.obj.get("spec", {}).get("nodeName") != node:
            return False

        def scheduled(obj: dict[str, Any]) -> None:
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [x for x in conds if x.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now})

        c.registry.mutate(c.rt("pods"), ns, name, scheduled, subresource="status")
        c.events.record({"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name, "uid": uid},
                        "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}", COMPONENT)
        c.timeline.add("scheduled", node, f"{ns}/{name}", f"bound to {node}", uid=uid)
        return True
