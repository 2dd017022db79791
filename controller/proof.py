"""Which inputs of a fence's proof the controller can trust: pure functions.

The NodeRemediation status is a record of what happened, never an input to trust:
anyone allowed to write `noderemediations/status` could have written any of it. So the
proof is derived, and derived again at the moment of tainting, only from:

- the order: the stored token, verified with this controller's own public key; its signed
  payload (node, remediation uid, issuedAt, expiresAt, bootId) replaces the status fields
  of the same names;
- what this controller process saw itself (`Witness`): the agent's acknowledgement or
  refusal as delivered to it, the peers' silence it asked for, a fence-agent run it made.
  A refusal recorded in the status counts as well: it can only make the controller more
  careful;
- the Node, the kubelet's Lease and the agent's heartbeat Lease, from its own informers;
- the agent's `status.agentReport`, only while agents' writes are admission-restricted to
  their own node (`Observations.agent_reports_refused` is empty), and only with a `bootId`
  equal to the order's (a missing one never defaults to the order's boot);
- an operator's approval (the webhook's field, written on an authenticated operator call)
  given after the order was issued;
- the assumptions the self-fencing rules make about the agent, checked from what it
  publishes on its heartbeat Lease (`key_distrusted`, `clock_skew`): it trusts this controller's key, and
  its clock's offset against the API server is measured and within the bound (the
  measured worst case, if larger than the bound but not provably beyond it, is what the
  deadlines count).

`refusals` lists every input that was offered and not trusted, for the loop to report
(Warning Event, log line, metric) once per remediation and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.model import (
    Acknowledgement,
    AgentInfo,
    FenceRecord,
    Observations,
    Reason,
    RemediationView,
    Witness,
    parse_time,
)
from core.fence_order import Action, FenceOrder, OrderKey, Rejection, decode_order, verify_order
from core.remediation import Escalation


@dataclass(frozen=True)
class Refusal:
    reason: Reason
    message: str


def verified_order(rem: RemediationView, key: OrderKey | None) -> FenceOrder | Refusal:
    """The stored fence order, if this controller's key signed it for this remediation."""
    fence = rem.fence
    if fence is None:
        return Refusal(Reason.ORDER_NOT_OURS, "no fence order is recorded")
    if key is None:
        return Refusal(Reason.ORDER_NOT_OURS, "this controller has no key to verify the stored order with")
    decoded = decode_order(fence.order)
    if isinstance(decoded, Rejection):
        return Refusal(Reason.ORDER_NOT_OURS, f"the stored order is not an order ({decoded.reason})")
    # verify_order is the agents' check; here only its signature, form and node checks
    # matter, so the validity window and the boot are the order's own.
    checked = verify_order(fence.order, public_keys=[key], node=rem.node, now=decoded.issued_at,
                           boot_id=decoded.boot_id, boot_time=None, max_clock_skew_s=0.0)
    if isinstance(checked, Rejection):
        return Refusal(Reason.ORDER_NOT_OURS,
                       f"the stored order does not verify with this controller's key ({checked.reason})")
    if checked.remediation_uid != rem.uid or checked.action is not Action.FENCE:
        return Refusal(Reason.ORDER_NOT_OURS, "the stored order was issued for another remediation or action")
    return checked


def witness_for(witness: Witness, rem: RemediationView) -> Witness:
    """The witness, if it is about the order recorded now (else nothing was seen)."""
    token = rem.fence.order if rem.fence else ""
    return witness if token and witness.order == token else Witness(order=token)


def trusted_fence(rem: RemediationView, obs: Observations, key: OrderKey | None) -> FenceRecord | Refusal:
    """The fence record rebuilt from the signed order and this process's own witness."""
    order = verified_order(rem, key)
    if isinstance(order, Refusal):
        return order
    assert rem.fence is not None
    seen = witness_for(obs.witness, rem)
    return replace(rem.fence, issued_at=order.issued_at, expires_at=order.expires_at, boot_id=order.boot_id,
                   ack=seen.ack, peer_silence=dict(seen.peer_silence),
                   refusal_reason=seen.refusal_reason or rem.fence.refusal_reason)


def trusted_report(rem: RemediationView, obs: Observations, fence: FenceRecord) -> Acknowledgement | Refusal | None:
    """The agent's own report as an acknowledgement, if it may count (None: no report)."""
    report = rem.agent_report
    if not report.get("lastFeedAt") or report.get("watchdogTimeoutSeconds") is None:
        return None
    if obs.agent_reports_refused:
        return Refusal(Reason(obs.agent_reports_refused),
                       "status.agentReport is not evidence: agents' writes are not restricted to their own "
                       "node (no admission policy nodewarden-agent-writes), so any agent could have written it")
    boot = report.get("bootId")
    if not boot:
        return Refusal(Reason.AGENT_REPORT_WITHOUT_BOOT,
                       "status.agentReport names no bootId: it is not taken as a report on the order's boot")
    if boot != fence.boot_id:
        return Refusal(Reason.AGENT_REPORT_WITHOUT_BOOT,
                       f"status.agentReport is for boot {str(boot)[:8]}, the order for {fence.boot_id[:8]}")
    last_feed = parse_time(report.get("lastFeedAt"))
    try:
        timeout = float(report["watchdogTimeoutSeconds"])
    except (TypeError, ValueError):
        return Refusal(Reason.AGENT_REPORT_WITHOUT_BOOT, "status.agentReport has no valid watchdog timeout")
    if last_feed is None:
        return Refusal(Reason.AGENT_REPORT_WITHOUT_BOOT, "status.agentReport has no valid lastFeedAt")
    return Acknowledgement(at=obs.now, via="agentReport", last_feed_at=last_feed, watchdog_timeout_s=timeout)


def key_distrusted(agent: AgentInfo, key: OrderKey | None) -> Refusal | None:
    """Why the agent would refuse this controller's orders, if it does not trust its key."""
    mine = key.fingerprint() if key is not None else ""
    if agent.key_fingerprints is not None and mine and mine in agent.key_fingerprints:
        return None
    published = ", ".join(agent.key_fingerprints or ()) or "none published"
    return Refusal(Reason.AGENT_DISTRUSTS_KEY,
                   f"the node's agent does not trust the key this controller signs orders with ({mine or '?'}; "
                   f"it trusts: {published}): it would refuse the order")


def clock_skew(agent: AgentInfo, max_skew_s: float) -> Refusal | float:
    """The skew to count in deadlines (the bound, or the measured worst case if larger),
    or why the agent's clock cannot be trusted: unmeasured, or measured beyond the bound."""
    if agent.clock_offset_s is None:
        return Refusal(Reason.CLOCK_SKEW_UNMEASURED,
                       "the node's agent has not published its clock offset against the API server: the "
                       "deadlines, on its clock, cannot be trusted")
    error = max(0.0, agent.clock_offset_error_s or 0.0)
    offset = abs(agent.clock_offset_s)
    if offset - error > max_skew_s:
        return Refusal(Reason.CLOCK_SKEW_TOO_LARGE,
                       f"the node's agent's clock is {agent.clock_offset_s:+.3f}s (±{error:.3f}s) off the API "
                       f"server's, beyond the bound of {max_skew_s:g}s: its times cannot be trusted")
    return max(max_skew_s, offset + error)


def operator_confirmed(rem: RemediationView, fence: FenceRecord) -> bool:
    """An operator confirmed the node off, after the (signed) order was issued."""
    return (rem.escalation_state.get("kind") == str(Escalation.OPERATOR_APPROVAL)
            and rem.approved_at is not None and rem.approved_at >= fence.issued_at)


def refusals(rem: RemediationView, obs: Observations, key: OrderKey | None, max_skew_s: float) -> list[Refusal]:
    """Every input offered as evidence and not trusted (for Events, logs and metrics)."""
    if rem.fence is None:
        return []
    fence = trusted_fence(rem, obs, key)
    if isinstance(fence, Refusal):
        return [fence]
    out = []
    if fence.refusal_reason and fence.ack is None:
        out.append(Refusal(Reason.ORDER_REFUSED, f"the agent refused the fence order ({fence.refusal_reason}): "
                                                 "a refused order is not a fence"))
    if obs.node.agent.present:
        distrust = key_distrusted(obs.node.agent, key) if fence.ack is None else None
        skew = clock_skew(obs.node.agent, max_skew_s)
        out += [r for r in (distrust, skew) if isinstance(r, Refusal)]
    report = trusted_report(rem, obs, fence)
    if isinstance(report, Refusal):
        out.append(report)
    return out
