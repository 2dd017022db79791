"""The pod garbage collector (pkg/controller/podgc/gc_controller.go), every 20 s:

- gcTerminating: a terminating pod on a node that is not Ready and carries the
  `node.kubernetes.io/out-of-service` taint key is marked Failed (unless already
  Succeeded/Failed) and force-deleted;
- gcOrphaned: a pod bound to a node that does not exist is quarantined: only when the node
  is still missing 40 s later (quarantineTime; checked again at the next pass) is the pod
  marked Failed with the `DisruptionTarget` condition (`DeletionByPodGC`, "PodGC: node no
  longer exists") and force-deleted;
- gcUnscheduledTerminating: a terminating pod bound to no node is force-deleted.
The terminated-pod threshold (12,500) is never reached in the simulator.
"""

from __future__ import annotations

from typing import Any

from ..apiserver.errors import ApiError
from ..timefmt import rfc3339
from .controller_config import ControllerConfig


class PodGCController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self._quarantine: dict[str, float] = {}  # missing node -> when it may be confirmed gone

    def run(self) -> None:
        cfg = self.cfg
        now = cfg.clock()
        nodes = {name: entry for (_, name), entry in cfg.items("nodes")}
        victims: list[tuple[dict[str, Any], str, str, bool]] = []
        for _key, entry in cfg.items("pods"):
            node_name = entry.fields.get("spec.nodeName", "")
            deleting = bool(entry.fields.get("sim.deleting"))
            if not node_name:
                if deleting:
                    victims.append((entry.obj(), "", "terminating and never scheduled", False))
                continue
            node = nodes.get(node_name)
            if node is None:
                self._quarantine.setdefault(node_name, now + cfg.timings.pod_gc_quarantine_s)
                continue
            if deleting and node.fields.get("sim.ready") != "True" and node.fields.get("sim.oos"):
                victims.append((entry.obj(), node_name,
                                "terminating on a not-Ready node with the out-of-service taint", False))
        gone = set()
        for node_name, due in list(self._quarantine.items()):
            if node_name in nodes:
                del self._quarantine[node_name]
            elif now >= due:
                gone.add(node_name)
                del self._quarantine[node_name]
        if gone:
            for _key, entry in cfg.items("pods"):
                if entry.fields.get("spec.nodeName", "") in gone:
                    victims.append((entry.obj(), entry.fields["spec.nodeName"],
                                    "orphaned: node no longer exists", True))
        for pod, node_name, reason, orphaned in victims:
            self._force_delete(pod, node_name, reason, orphaned)

    def _force_delete(self, pod: dict[str, Any], node_name: str, reason: str, orphaned: bool) -> None:
        cfg = self.cfg
        meta = pod["metadata"]
        now = rfc3339(cfg.clock())

        def failed(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != meta["uid"]:
                return False
            status = obj.setdefault("status", {})
            if status.get("phase") in ("Succeeded", "Failed"):
                return False
            status["phase"] = "Failed"
            if orphaned:
                conds = status.setdefault("conditions", [])
                conds[:] = [c for c in conds if c.get("type") != "DisruptionTarget"]
                conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                              "message": "PodGC: node no longer exists", "lastTransitionTime": now})
            return None

        try:
            cfg.registry.mutate(cfg.rt("pods"), meta["namespace"], meta["name"], failed, subresource="status")
            cfg.registry.delete(cfg.rt("pods"), meta["namespace"], meta["name"], grace_period=0,
                                preconditions={"uid": meta["uid"]})
        except ApiError:
            return
        cfg.timeline.add("pod-force-deleted", node_name, f"{meta['namespace']}/{meta['name']}", reason,
                         uid=meta["uid"], by="pod-gc")
