"""Which of a fenced node's pods the controller force-deletes after the out-of-service
taint: pure.

Exactly pod GC's rule, sooner: pod GC (`pkg/controller/podgc`, `gcTerminating`, every 20 s)
force-deletes the pods that are already terminating on a node that is not Ready and carries
the out-of-service taint. The decision (controller/after_fence.py) checks the node (not
Ready, the taint on, the fence proven again, the fencing taint settled); this module picks
the pods: those with a `deletionTimestamp`.

Which pods are terminating is Kubernetes' doing: the taint-eviction controller marks for
deletion every pod that does not tolerate one of the node's NoExecute taints, and the
fencing taint has been on since the proof. A pod that tolerates both taints is not
terminating and stays where it is, as with pod GC: its owner asked to keep it on the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def terminating(pod: Mapping[str, Any]) -> bool:
    """Whether pod GC would force-delete `pod` (a pod object as the API returns it) from an
    out-of-service node that is not Ready: it is terminating."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))
