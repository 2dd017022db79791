"""The taint-eviction controller (pkg/controller/tainteviction/taint_eviction.go).

For every pod on a node with NoExecute taints: a taint the pod does not tolerate evicts
it at once; otherwise it is evicted after the smallest tolerationSeconds among the
matching tolerations, counted from when THIS controller first saw the pod need it (its
timed work queue lives in memory: a restarted controller starts counting again; the
taint's `timeAdded` is not read). Tolerating forever, or the taints going away, cancels
the pending eviction. An eviction adds the `DisruptionTarget` condition
(`DeletionByTaintManager`), deletes the pod gracefully (terminating pods included: the
delete is then a no-op) and records `TaintManagerEviction` "Marking for deletion Pod
ns/name"; a cancel records "Cancelling deletion of Pod ns/name". Each pod is evicted once
per scheduled work item, as the real queue keeps a finished item until it is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..apiserver.errors import ApiError
from ..timefmt import rfc3339
from .controller_config import ControllerConfig
from .recorder import object_ref
from .tolerations import eviction_delay_s

COMPONENT = "taint-eviction-controller"


@dataclass
class Work:
    namespace: str
    name: str
    created_at: float
    fire_at: float
    done: bool = False


class TaintEvictionController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self._work: dict[str, Work] = {}  # pod uid -> scheduled eviction

    def run(self) -> None:
        cfg = self.cfg
        now = cfg.clock()
        seen: set[str] = set()
        for (_, node_name), entry in cfg.items("nodes"):
            if not entry.fields.get("sim.noexecute"):
                continue
            taints = [t for t in (entry.obj().get("spec") or {}).get("taints") or []
                      if t.get("effect") == "NoExecute"]
            for pod in cfg.pods_on(node_name):
                meta = pod["metadata"]
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                uid = meta["uid"]
                delay = eviction_delay_s(taints, (pod.get("spec") or {}).get("tolerations") or [])
                if delay is None:
                    continue  # tolerated forever: any pending work is cancelled below
                seen.add(uid)
                work = self._work.get(uid)
                if work is not None and delay == 0 and not work.done:
                    work.fire_at = now  # a taint it does not tolerate: evict at once
                if work is None:
                    work = Work(meta["namespace"], meta["name"], now, now + cfg.timings.real(delay))
                    self._work[uid] = work
                if not work.done and now >= work.fire_at:
                    work.done = True
                    self._evict(pod, node_name, taints)
        for uid in [u for u in self._work if u not in seen]:
            work = self._work.pop(uid)
            if not work.done and cfg.obj("pods", work.namespace, work.name) is not None:
                cfg.events.record({"kind": "Pod", "apiVersion": "v1", "namespace": work.namespace,
                                   "name": work.name, "uid": uid}, "Normal", "TaintManagerEviction",
                                  f"Cancelling deletion of Pod {work.namespace}/{work.name}", COMPONENT)

    def _evict(self, pod: dict[str, Any], node_name: str, taints: list[dict[str, Any]]) -> None:
        cfg = self.cfg
        meta = pod["metadata"]
        now = rfc3339(cfg.clock())
        cfg.events.record(object_ref({**pod, "kind": "Pod", "apiVersion": "v1"}), "Normal",
                          "TaintManagerEviction", f"Marking for deletion Pod {meta['namespace']}/{meta['name']}",
                          COMPONENT)

        def mark(obj: dict[str, Any]) -> bool | None:
            if obj["metadata"]["uid"] != meta["uid"]:
                return False
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [x for x in conds if x.get("type") != "DisruptionTarget"]
            conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                          "message": "Taint manager: deleting due to NoExecute taint",
                          "lastTransitionTime": now})
            return None

        try:
            cfg.registry.mutate(cfg.rt("pods"), meta["namespace"], meta["name"], mark, subresource="status")
            cfg.registry.delete(cfg.rt("pods"), meta["namespace"], meta["name"],
                                preconditions={"uid": meta["uid"]})
        except ApiError:
            return
        keys = ",".join(sorted({str(t.get("key")) for t in taints}))
        cfg.timeline.add("eviction", node_name, f"{meta['namespace']}/{meta['name']}",
                         f"NoExecute taint {keys}", uid=meta["uid"])
