"""The disruption controller (pkg/controller/disruption/disruption.go), every controller
period: the status of each PodDisruptionBudget, which the eviction subresource spends.

- pods: those of the budget's namespace its selector matches (an empty selector, none);
- expected pods and desired healthy: `minAvailable` as a number: that number, and the
  count of pods; `maxUnavailable`, or `minAvailable` as a percentage: scaled (rounding
  up) against the sum of the scales of the pods' controllers (a ReplicaSet a Deployment
  controls counts as the Deployment); a pod whose controller is not found fails the sync
  (`disruptionsAllowed` 0, `DisruptionAllowed` False `SyncFailed`), a pod with none is
  left out;
- current healthy: Ready pods neither terminating nor in `disruptedPods` for less than
  the deletion timeout (2 min); `disruptedPods` keeps only such pods;
- `disruptionsAllowed` = current - desired healthy, 0 when negative or when no pod is
  expected; `observedGeneration`; `DisruptionAllowed` True `SufficientPods` / False
  `InsufficientPods`. Written only when something changed.
"""

from __future__ import annotations

import math
from typing import Any

from ..apiserver.errors import ApiError
from ..apiserver.registry import INTERNAL
from ..apiserver.selectors import label_selector_requirements
from ..timefmt import parse, rfc3339
from .controller_config import ControllerConfig

DELETION_TIMEOUT_S = 120.0


class DisruptionController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg

    def run(self) -> None:
        cfg = self.cfg
        now = cfg.clock()
        for (ns, name), entry in cfg.items("poddisruptionbudgets", "policy"):
            budget = entry.obj()
            pods = [e.obj() for _k, e in cfg.items("pods", namespace=ns)]
            status = budget_status(budget, [p for p in pods if selected(budget, p)], self._scale, now)
            if status != (budget.get("status") or {}):
                budget["status"] = status
                try:
                    cfg.registry.update(cfg.rt("poddisruptionbudgets", "policy"), ns, name, budget,
                                        "status", INTERNAL)
                except ApiError:
                    pass  # changed or gone meanwhile: the next pass sees it

    def _scale(self, namespace: str, ref: dict[str, Any]) -> tuple[str, int] | None:
        """(uid, replicas) of the controller `ref` names, as the controller's finders do."""
        kind = ref.get("kind")
        if kind not in ("ReplicaSet", "StatefulSet", "Deployment"):
            return None
        owner = self.cfg.obj(kind.lower() + "s", namespace, ref.get("name", ""), "apps")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        parent = _controller_of(owner)
        if kind == "ReplicaSet" and parent is not None and parent.get("kind") == "Deployment":
            return self._scale(namespace, parent)
        return owner["metadata"]["uid"], int((owner.get("spec") or {}).get("replicas", 1))


def selected(budget: dict[str, Any], pod: dict[str, Any]) -> bool:
    reqs = label_selector_requirements((budget.get("spec") or {}).get("selector"))
    labels = pod["metadata"].get("labels") or {}
    return bool(reqs) and all(r.matches(labels) for r in reqs or ())


def budget_status(budget: dict[str, Any], pods: list[dict[str, Any]], scale: Any, now: float) -> dict[str, Any]:
    """The status the controller writes for `budget` over its `pods`; `scale(namespace,
    controllerRef)` gives (uid, replicas) or None when the controller is not found."""
    old = budget.get("status") or {}
    generation = int(budget["metadata"].get("generation", 0))
    try:
        expected, desired = _expected_and_desired(budget, pods, scale)
    except LookupError as exc:
        return {**old, "disruptionsAllowed": 0,
                "conditions": _condition(old, False, "SyncFailed", str(exc), now)}
    disrupted = {}
    for pod in pods:
        when = (old.get("disruptedPods") or {}).get(pod["metadata"]["name"])
        at = parse(when)
        if at is not None and not pod["metadata"].get("deletionTimestamp") and at + DELETION_TIMEOUT_S >= now:
            disrupted[pod["metadata"]["name"]] = when
    healthy = sum(1 for p in pods if not p["metadata"].get("deletionTimestamp")
                  and p["metadata"]["name"] not in disrupted and _ready(p))
    allowed = healthy - desired if expected > 0 and healthy > desired else 0
    status: dict[str, Any] = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                              "disruptionsAllowed": allowed, "observedGeneration": generation}
    if disrupted:
        status["disruptedPods"] = disrupted
    status["conditions"] = _condition({**old, "observedGeneration": generation}, allowed > 0,
                                      "SufficientPods" if allowed > 0 else "InsufficientPods", "", now)
    return status


def _expected_and_desired(budget: dict[str, Any], pods: list[dict[str, Any]], scale: Any) -> tuple[int, int]:
    spec = budget.get("spec") or {}
    ns = budget["metadata"].get("namespace", "")
    if spec.get("maxUnavailable") is not None:
        expected = _expected_scale(ns, pods, scale)
        return expected, max(0, expected - _scaled(spec["maxUnavailable"], expected))
    min_available = spec.get("minAvailable")
    if isinstance(min_available, int):
        return len(pods), min_available
    if min_available is not None:
        expected = _expected_scale(ns, pods, scale)
        return expected, _scaled(min_available, expected)
    return 0, 0


def _expected_scale(namespace: str, pods: list[dict[str, Any]], scale: Any) -> int:
    scales: dict[str, int] = {}
    for pod in pods:
        ref = _controller_of(pod)
        if ref is None or ref.get("uid") in scales:
            continue
        found = scale(namespace, ref)
        if found is None:
            raise LookupError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        scales[found[0]] = found[1]
    return sum(scales.values())


def _scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent, rounding up."""
    if isinstance(value, int):
        return value
    return math.ceil(int(str(value).rstrip("%")) * total / 100)


def _controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _condition(status: dict[str, Any], allowed: bool, reason: str, message: str, now: float) -> list[dict[str, Any]]:
    """UpdateDisruptionAllowedCondition: the transition time moves only with the status."""
    state = "True" if allowed else "False"
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    since = old["lastTransitionTime"] if old and old.get("status") == state else rfc3339(now)
    others = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
    return [*others, {"type": "DisruptionAllowed", "status": state, "reason": reason, "message": message,
                      "observedGeneration": status.get("observedGeneration", 0), "lastTransitionTime": since}]
