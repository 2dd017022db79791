"""What the state machine returns, and what it is configured with.

`Decision` (the next phase, its enumerated reason, the status subtrees to set and the
actions to run), `Action`/`ActionKind`, and `MachineConfig`; plus the two helpers every
phase handler uses (`stay`, `elapsed`). Pure data: no I/O, no clock but `Observations.now`.
`controller.machine` re-exports all of it; the phase handlers import it from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from controller.evidence import FenceTiming
from controller.model import Phase, RemediationView
from core.fence_order import OrderKey


class ActionKind(enum.StrEnum):
    ISSUE_ORDER = "IssueOrder"  # sign an order and record it (the intent), then deliver it
    DELIVER_ORDER = "DeliverOrder"  # deliver the recorded order, directly and through peers
    CHECK_PEER_SILENCE = "CheckPeerSilence"  # ask every other agent when it last said "healthy"
    RUN_FENCE_AGENT = "RunFenceAgent"  # the escalation command (attempt already recorded)
    ADD_FENCING_TAINT = "AddFencingTaint"  # nodewarden's NoExecute taint, once the fence is proven
    APPLY_TAINT = "ApplyTaint"
    DELETE_EVICTED_PODS = "DeleteEvictedPods"  # pod GC's rule (terminating pods), without waiting for it
    DELETE_RESOURCES = "DeleteResources"
    REMOVE_TAINT = "RemoveTaint"  # the out-of-service taint and the fencing taint


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    phase: Phase
    reason: str  # a Reason, or the stored reason of a phase another writer set
    message: str
    status: dict[str, Any] = field(default_factory=dict)  # status subtrees to set
    actions: tuple[Action, ...] = ()
    requeue_s: float | None = None  # look again at most this much later


@dataclass(frozen=True)
class MachineConfig:
    timing: FenceTiming
    order_ttl_s: float = 1800.0
    confirm_timeout_s: float = 300.0
    operator_grace_s: float = 5.0  # a person's request waits this long before its fence order
    approval_timeout_s: float = 3600.0
    kubelet_restart_first: bool = False
    kubelet_restart_wait_s: float = 60.0
    fence_timeout_s: float = 900.0
    escalation_timeout_s: float = 3600.0
    fence_agent_configured: bool = False
    fence_agent_attempts: int = 3
    recover_timeout_s: float = 120.0
    delete_pods_after_taint: bool = True  # once the taint is on, delete its terminating pods (pod GC's rule) at once
    pod_gc_period_s: float = 20.0  # Kubernetes' pod GC period: how long the deletion keeps looking
    # How long the fencing taint must have been on the node (plus the clock skew) before
    # recovery: a kubelet that read its pods before the taint was there has renewed its Lease
    # by then (every 10 s), and the watch has shown it.
    fencing_taint_settle_s: float = 11.0
    node_not_back_after_s: float = 1800.0
    alive_grace_s: float = 30.0  # a node seen alive after its fence: how long to wait for its new boot
    silence_settle_s: float = 2.0  # after the order is stored, before peers' "healthy" answers are final
    order_key: OrderKey | None = None  # this controller's public key: stored orders must verify with it


def stay(rem: RemediationView, reason: str, message: str, status: dict[str, Any] | None = None,
          actions: tuple[Action, ...] = (), requeue_s: float | None = None) -> Decision:
    return Decision(rem.phase, reason, message, status or {}, actions, requeue_s)


def elapsed(rem: RemediationView, now: float) -> float:
    return now - (rem.phase_since if rem.phase_since is not None else now)
