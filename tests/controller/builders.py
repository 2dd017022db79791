"""Builders of NodeRemediation dicts and observations for the controller's pure tests."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.evidence import FenceTiming
from controller.machine import MachineConfig
from controller.model import (
    Acknowledgement,
    AgentInfo,
    NodeObs,
    Observations,
    PeerObs,
    RemediationView,
    Witness,
    format_time,
    parse_time,
)
from core.fence_order import Action, FenceOrder, OrderKey, sign_order

T0 = 1_800_000_000.0  # the moment the remediation was accepted
BOOT = "11111111-aaaa-bbbb-cccc-000000000001"
NEW_BOOT = "22222222-aaaa-bbbb-cccc-000000000002"
TIMING = FenceTiming(safety_margin_s=10.0, max_clock_skew_s=5.0, ack_timeout_s=60.0)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # the controller's signing key in these tests
CFG = MachineConfig(timing=TIMING, order_ttl_s=900.0, fence_agent_configured=True,
                    order_key=OrderKey.of(KEY.public_key()))


def order_token(issued_at: float = T0, boot: str = BOOT, ttl: float = 900.0, *, node: str = "node-1",
                uid: str = "uid-1", key: Ed25519PrivateKey = KEY) -> str:
    """A fence order signed like the controller's (deterministic: a fixed nonce)."""
    return sign_order(FenceOrder(node=node, remediation_uid=uid, action=Action.FENCE, issued_at=issued_at,
                                 expires_at=issued_at + ttl, boot_id=boot, nonce="00"), key)


def remediation(phase: str | None = "Confirming", *, phase_since: float = T0, source: str = "alertmanager",
                dry_run: bool = False, approval_required: bool = False, strategy: str = "OutOfServiceTaint",
                on_unproven: str = "OperatorApproval", reason: str = "Started",
                **status: Any) -> RemediationView:
    spec = {"nodeName": "node-1", "dryRun": dry_run, "approvalRequired": approval_required,
            "strategy": strategy, "escalation": on_unproven,
            "trigger": {"source": source, "receivedAt": format_time(T0)}}
    st: dict[str, Any] = dict(status)
    if phase is not None:
        st.update({"phase": phase, "reason": reason, "phaseSince": format_time(phase_since)})
    return RemediationView.parse({"metadata": {"name": "node-1", "uid": "uid-1", "resourceVersion": "7"},
                                  "spec": spec, "status": st})


def fence_status(issued_at: float = T0, boot: str = BOOT, ack: dict[str, Any] | None = None,
                 ttl: float = 900.0, **extra: Any) -> dict[str, Any]:
    fence = {"order": order_token(issued_at, boot, ttl), "action": "fence", "issuedAt": format_time(issued_at),
             "expiresAt": format_time(issued_at + ttl), "bootId": boot, **extra}
    if ack is not None:
        fence["acknowledgement"] = ack
    return fence


def agent(heartbeat: float | None = T0 - 60, *, capable: bool = True, watchdog: float | None = 60.0,
          detect: float | None = 97.0, boot: str = BOOT, duration: float = 40.0,
          keys: tuple[str, ...] | None = (OrderKey.of(KEY.public_key()).fingerprint(),),
          offset: float | None = 0.0, offset_error: float | None = 0.01) -> AgentInfo:
    """An agent as published: by default it trusts the controller's key, and its clock is
    measured on time."""
    return AgentInfo(present=True, self_fence_capable=capable, watchdog_timeout_s=watchdog,
                     isolation_detect_s=detect, boot_id=boot, peer_endpoint="http://127.77.0.2:9471",
                     heartbeat_renewed_at=heartbeat, heartbeat_duration_s=duration, key_fingerprints=keys,
                     clock_offset_s=offset, clock_offset_error_s=offset_error)


def node(ready: str = "Unknown", *, lease: float | None = T0 - 60, boot: str = BOOT, exists: bool = True,
         oos: bool = False, agent_info: AgentInfo | None = None, fencing: float | None = T0) -> NodeObs:
    """`fencing`: when nodewarden's fencing taint was added (None: not on the node)."""
    return NodeObs(exists=exists, ready=ready, boot_id=boot, lease_renewed_at=lease, lease_duration_s=40.0,
                   has_oos_taint=oos, has_fencing_taint=fencing is not None, fencing_taint_added_at=fencing,
                   agent=agent_info if agent_info is not None else agent())


NOBODY_REACHES = PeerObs(asked=3, reachable=0, unreachable=3, errors=0)


def seen(fence: dict[str, Any] | None = None, *, ack: dict[str, Any] | None = None, delivered: bool = True,
         refusal: str = "", silence: dict[str, Any] | None = None,
         fence_agent_ok_at: float | None = None) -> Witness:
    """What the controller process itself saw of `fence`'s order (default: the default order)."""
    token = (fence or fence_status())["order"]
    acknowledgement = None
    if ack is not None:
        acknowledgement = Acknowledgement(parse_time(ack.get("at")) or 0.0, str(ack.get("via", "")),
                                          parse_time(ack["lastFeedAt"]) or 0.0, float(ack["watchdogTimeoutSeconds"]))
    return Witness(order=token, delivery_attempted=delivered, ack=acknowledgement, refusal_reason=refusal,
                   refusal_at=None, peer_silence=dict(silence or {}), fence_agent_succeeded_at=fence_agent_ok_at)


def observe(now: float, node_obs: NodeObs | None = None, peers: PeerObs | None = NOBODY_REACHES,
            **kw: Any) -> Observations:
    """Observations in which this controller delivered the default order (see `seen`)."""
    kw.setdefault("witness", seen())
    return Observations(now=now, node=node_obs if node_obs is not None else node(), peers=peers, **kw)
