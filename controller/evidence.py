"""When a node counts as fenced: the evidence rules, as pure functions.

A node counts as fenced only on evidence, and the evidence is recorded with its rule and
every input it used. All agent-side times (last feed, heartbeat renewal) are on the
agent's clock, so each deadline adds the allowed clock skew once.

- AcknowledgedWatchdog: the agent acknowledged the order with the exact time of its last
  watchdog feed. The watchdog fires at most one timeout after that feed; by Pacemaker/SBD
  practice we wait twice the timeout, plus the safety margin and the skew.
- AgentHeartbeatStale: no acknowledgement, and the agent's heartbeat Lease has not been
  renewed since T. An agent that cannot reach the API decides it is isolated and stops
  feeding within its published worst-case detection time, counted from the later of T and
  the moment the order was stored (an agent cut off from the API but not from its peers
  fences only once a peer can relay an order); the watchdog then fires within one timeout.
  Deadline = max(T, order stored) + detection + 2 x watchdog timeout + margin + skew.
  Often already past when the alert arrives: that is where we beat fixed safe-time waits.
- Never: a refused order (any answer but an acknowledgement or "already rebooted"): the
  agent did not take it, so its silence proves nothing; escalate (OrderRefused).
- Never assumed: no agent, an agent not self-fence capable, an agent that has not
  published since the node's current boot, an agent whose heartbeat is fresh but which
  does not acknowledge, or a suspected control-plane outage (agents then deliberately do
  not fence). Those escalate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from controller.model import (
    Acknowledgement,
    AgentInfo,
    EvidenceRule,
    FenceRecord,
    Reason,
    format_time,
    parse_time,
)
from core.remediation_status import EvidenceRecord, Stamp


class Verdict(enum.StrEnum):
    SATISFIED = "Satisfied"
    WAITING = "Waiting"
    ESCALATE = "Escalate"


@dataclass(frozen=True)
class FenceTiming:
    safety_margin_s: float
    max_clock_skew_s: float
    ack_timeout_s: float


@dataclass(frozen=True)
class Evidence:
    verdict: Verdict
    reason: Reason
    message: str
    rule: EvidenceRule | None = None
    deadline: float | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    def record(self, satisfied_at: float | None) -> dict[str, Any]:
        """The `status.fence.evidence` subtree."""
        return EvidenceRecord(
            rule=str(self.rule) if self.rule else "", inputs=self.inputs,
            deadline=None if self.deadline is None else Stamp.at(self.deadline),
            satisfied_at=None if satisfied_at is None else Stamp.at(satisfied_at)).to_json()


def _acknowledged(last_feed_at: float, watchdog_timeout_s: float, via: str, t: FenceTiming,
                  now: float) -> Evidence:
    deadline = last_feed_at + 2 * watchdog_timeout_s + t.safety_margin_s + t.max_clock_skew_s
    inputs = {"lastFeedAt": format_time(last_feed_at), "watchdogTimeoutSeconds": watchdog_timeout_s,
              "deadBy": format_time(last_feed_at + watchdog_timeout_s + t.max_clock_skew_s),
              "safetyMarginSeconds": t.safety_margin_s, "maxClockSkewSeconds": t.max_clock_skew_s,
              "acknowledgedVia": via,
              "formula": "lastFeedAt + 2*watchdogTimeout + safetyMargin + maxClockSkew"}
    if now >= deadline:
        return Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                        f"the agent stopped feeding its watchdog at {format_time(last_feed_at)}; "
                        f"2 x {watchdog_timeout_s:g}s + margin have passed",
                        EvidenceRule.ACKNOWLEDGED_WATCHDOG, deadline, inputs)
    return Evidence(Verdict.WAITING, Reason.AWAITING_FENCE_DEADLINE,
                    f"acknowledged; the watchdog has fired by {format_time(deadline)}",
                    EvidenceRule.ACKNOWLEDGED_WATCHDOG, deadline, inputs)


def evaluate(agent: AgentInfo, node_boot_id: str, fence: FenceRecord, report: Acknowledgement | None,
             t: FenceTiming, now: float, outage_suspected: bool, delivered: bool = False) -> Evidence:
    """Is the node fenced? One verdict with its reason; inputs recorded for the status.

    `fence` must be the trusted record (`controller.proof.trusted_fence`): the signed
    order's times and boot, and only the acknowledgement, refusal and peer silence this
    controller saw itself; `report` the agent's own report, already checked to be
    trustworthy; `delivered`: this controller process has tried to deliver the order."""
    # 0. A refused order is not a fence: whatever the heartbeat says, the agent did not
    #    take this order, so its going silent proves nothing about it.
    if fence.refusal_reason and fence.ack is None:
        return Evidence(Verdict.ESCALATE, Reason.ORDER_REFUSED,
                        f"the agent refused the fence order ({fence.refusal_reason}): a refused order is not "
                        "a fence, and the agent's silence proves nothing")
    # 1. An acknowledgement (delivered answer, or the agent's own report in the API).
    ack = fence.ack or report
    if ack is not None:
        timeout = max(ack.watchdog_timeout_s, agent.watchdog_timeout_s or 0.0)
        return _acknowledged(ack.last_feed_at, timeout, ack.via, t, now)
    # 2. Without an acknowledgement, only a capable agent's silence can prove anything.
    if not agent.present:
        return Evidence(Verdict.ESCALATE, Reason.NO_AGENT,
                        "no nodewarden agent has ever published on this node: self-fencing cannot be assumed")
    if not agent.self_fence_capable or agent.watchdog_timeout_s is None or agent.isolation_detect_s is None:
        return Evidence(Verdict.ESCALATE, Reason.AGENT_NOT_SELF_FENCE_CAPABLE,
                        "the node's agent is not self-fence capable (no watchdog, or settings under "
                        "which an isolated agent may stay up): self-fencing cannot be assumed")
    if agent.boot_id and fence.boot_id and agent.boot_id != fence.boot_id:
        return Evidence(Verdict.ESCALATE, Reason.AGENT_NOT_SELF_FENCE_CAPABLE,
                        f"the agent has not published since the node's current boot ({fence.boot_id[:8]}): "
                        "its capability is unknown for this boot")
    if agent.heartbeat_renewed_at is None:
        return Evidence(Verdict.ESCALATE, Reason.NO_AGENT,
                        "the agent's heartbeat Lease does not exist: when it last reached the API is unknown")
    if outage_suspected:
        return Evidence(Verdict.WAITING, Reason.CONTROL_PLANE_OUTAGE,
                        "more than half of the agents' heartbeats are stale: a control-plane outage is "
                        "suspected, in which agents deliberately do not fence; not counting on self-fencing")
    if not delivered:
        return Evidence(Verdict.WAITING, Reason.FENCE_ORDERED,
                        "the order has not been sent by this controller yet: an agent's refusal would "
                        "not be known, so its silence is not counted")
    last_contact = agent.heartbeat_renewed_at
    lease_s = agent.heartbeat_duration_s or 0.0
    if now <= last_contact + lease_s + t.max_clock_skew_s and last_contact >= fence.issued_at - t.max_clock_skew_s:
        # The agent reaches the API, so it can read the order there: it must acknowledge.
        if now - fence.issued_at > t.ack_timeout_s:
            return Evidence(Verdict.ESCALATE, Reason.AGENT_ALIVE_NOT_ACKNOWLEDGING,
                            f"the agent's heartbeat is fresh ({format_time(last_contact)}) but it has not "
                            f"acknowledged the order within {t.ack_timeout_s:g}s: not fenced")
        return Evidence(Verdict.WAITING, Reason.AWAITING_ACKNOWLEDGEMENT,
                        "the agent reaches the API: waiting for its acknowledgement")
    start, counted_from = heartbeat_start(last_contact, fence, t)
    deadline = (start + agent.isolation_detect_s + 2 * agent.watchdog_timeout_s
                + t.safety_margin_s + t.max_clock_skew_s)
    inputs = {"heartbeatRenewedAt": format_time(last_contact), "orderStoredAt": format_time(fence.issued_at),
              "countedFrom": counted_from, "peerSilence": fence.peer_silence,
              "deadBy": format_time(start + agent.isolation_detect_s + agent.watchdog_timeout_s + t.max_clock_skew_s),
              "isolationDetectSeconds": agent.isolation_detect_s,
              "watchdogTimeoutSeconds": agent.watchdog_timeout_s,
              "safetyMarginSeconds": t.safety_margin_s, "maxClockSkewSeconds": t.max_clock_skew_s,
              "formula": "start + isolationDetect + 2*watchdogTimeout + safetyMargin + maxClockSkew; start = "
                         "heartbeatRenewedAt with complete peer silence, else max(heartbeatRenewedAt, orderStoredAt)"}
    if now >= deadline:
        return Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                        f"the agent has not reached the API since {format_time(last_contact)}; an isolated agent "
                        f"has reset its node by {format_time(deadline)}",
                        EvidenceRule.AGENT_HEARTBEAT_STALE, deadline, inputs)
    return Evidence(Verdict.WAITING, Reason.AWAITING_FENCE_DEADLINE,
                    f"the agent's heartbeat is stale since {format_time(last_contact)}: fenced by "
                    f"{format_time(deadline)} at the latest",
                    EvidenceRule.AGENT_HEARTBEAT_STALE, deadline, inputs)


def heartbeat_start(last_contact: float, fence: FenceRecord, t: FenceTiming) -> tuple[float, str]:
    """From when the agent's worst-case detection time counts.

    A cut-off agent stays up only on a peer's word ("the API is reachable, no order for
    you"). Peers read orders live from the API, so no such word can come after the order
    was stored; with every other agent's answer on record (complete peer silence), the
    last such word is known exactly. Without that record, count from the order."""
    silence = fence.peer_silence
    if not silence.get("complete"):
        return max(last_contact, fence.issued_at), "orderStored" if fence.issued_at > last_contact else "heartbeat"
    healthy = parse_time(silence.get("lastHealthyAnswerAt"))
    if healthy is None or healthy + t.max_clock_skew_s <= last_contact:
        return last_contact, "heartbeat"
    return max(last_contact, healthy + t.max_clock_skew_s), "lastHealthyAnswer"


def order_lifetime_ok(agent: AgentInfo, issued_at: float, expires_at: float, t: FenceTiming) -> bool:
    """An order must outlive the latest moment a cut-off agent may still need to learn it."""
    if agent.isolation_detect_s is None or agent.watchdog_timeout_s is None:
        return True  # no self-fencing will be assumed anyway
    needed = agent.isolation_detect_s + 2 * agent.watchdog_timeout_s + t.safety_margin_s + t.max_clock_skew_s
    return expires_at - issued_at > needed


# -- a BMC's confirmed power-off (the fence inventory) ------------------------------------

POWER_OFF_OUTCOMES = ("PoweredOff", "Rebooted")


def confirmed_power_off(escalation: dict[str, Any]) -> Evidence | None:
    """BmcPowerOffConfirmed: a fence agent of the inventory switched the node's power off
    and a `status` run then read Off (`PoweredOff`), or completed a `reboot`, which
    powers on only after it has seen Off (`Rebooted`). A machine without power runs
    nothing, so there is no safe-time wait: the node is dead from the confirmation on.
    Any other outcome (refused, unreachable, timed out, On again) is no evidence."""
    outcome = escalation.get("outcome")
    confirmed = parse_time(escalation.get("powerOffConfirmedAt") or escalation.get("finishedAt"))
    if outcome not in POWER_OFF_OUTCOMES or confirmed is None or escalation.get("lastExitCode") != 0:
        return None
    at = format_time(confirmed)
    inputs = {"agent": escalation.get("agent", ""), "device": escalation.get("device", ""),
              "action": escalation.get("action", ""), "outcome": outcome, "runs": escalation.get("runs", []),
              "powerOffConfirmedAt": at, "deadBy": at,
              "formula": "agent action exited 0 and a status run read Off (reboot: Off seen before On)"}
    what = "powered the node off and a status check read Off" if outcome == "PoweredOff" else \
        "power-cycled the node (Off was seen before it powered on)"
    return Evidence(Verdict.SATISFIED, Reason.FENCE_PROVEN,
                    f"{escalation.get('agent', 'the fence agent')} {what} at {at}",
                    EvidenceRule.BMC_POWER_OFF_CONFIRMED, confirmed, inputs)
