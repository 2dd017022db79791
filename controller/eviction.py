"""Which of a fenced node's pods the out-of-service taint evicts: pure.

With the taint on a NotReady node, Kubernetes' taint-eviction controller deletes every pod
that does not tolerate `node.kubernetes.io/out-of-service:NoExecute` (the dead kubelet
never confirms, so they stay Terminating), and pod GC's next pass (every 20 s) then
force-deletes the terminating pods of an out-of-service node (`pkg/controller/podgc`,
`gcTerminating`). Once the fence is proven and the taint is on, the controller deletes
exactly those pods itself, with grace 0, instead of waiting out pod GC's period: the same
pods, the same end, 0-20 s sooner.

A pod that tolerates the taint stays where it is, as it would: its owner asked to keep it
on the node. A toleration with `tolerationSeconds` makes Kubernetes evict the pod only
once they have passed; such a pod is left to Kubernetes too.

The matching follows `k8s.io/api/core/v1` `Toleration.ToleratesTaint`: an empty effect
matches every effect; an empty key with `Exists` matches every taint; `Exists` matches any
value; `Equal` (the default operator) needs the same value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import names


def tolerates(toleration: Mapping[str, Any], key: str, value: str, effect: str) -> bool:
    """Whether `toleration` tolerates the taint `key=value:effect`."""
    t_effect = toleration.get("effect") or ""
    if t_effect and t_effect != effect:
        return False
    t_key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not t_key:
        return operator == "Exists"
    if t_key != key:
        return False
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == value
    return False  # an unknown operator tolerates nothing (the API server refuses it anyway)


def evicted_by_out_of_service(pod: Mapping[str, Any]) -> bool:
    """Whether the out-of-service taint evicts `pod` (a pod object as the API returns it)."""
    spec = pod.get("spec") or {}
    for toleration in spec.get("tolerations") or []:
        if isinstance(toleration, Mapping) and tolerates(
            toleration, names.OUT_OF_SERVICE_TAINT_KEY, names.OUT_OF_SERVICE_TAINT_VALUE,
            names.OUT_OF_SERVICE_TAINT_EFFECT,
        ):
            return False
    return True
