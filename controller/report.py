"""What people see of the controller's decisions: for every transition and every refused
piece of evidence, an Event on the node, a log line and a metric.

`Reporter` does no Kubernetes reads: the node's uid comes from the caller's watch-fed
view (`node`), and Events go through the recorder (which batches and rate-limits them).
A refusal is reported once per remediation and reason; a transition once, when its phase
or reason changes (or the first time a phase is stored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from controller.decision import Decision, MachineConfig
from controller.fence_agent import AgentResult
from controller.metrics import ControllerMetrics
from controller.model import Observations, Phase, Reason, RemediationView
from controller.proof import refusals
from core import names
from core.events import EventRecorder, NodeEvent

log = logging.getLogger("nodewarden.controller")
WARNING_REASONS = {Reason.FENCE_NOT_OBSERVED, Reason.FENCE_NOT_PROVEN, Reason.FENCE_AGENT_FAILED,
                   Reason.ESCALATION_TIMEOUT, Reason.AWAITING_OPERATOR_CONFIRMATION,
                   Reason.ESCALATED_TO_FENCE_AGENT, Reason.NODE_NOT_BACK, Reason.RECOVERY_FAILED,
                   Reason.NODE_ALIVE_AFTER_FENCE, Reason.CONTROL_PLANE_OUTAGE, Reason.NOT_CONFIRMED,
                   Reason.ORDER_REFUSED, Reason.ORDER_NOT_OURS, Reason.PROOF_NOT_REDERIVED}
# Reasons that say evidence was refused: each is also counted in evidence_refusals_total.
REFUSAL_REASONS = {Reason.ORDER_REFUSED, Reason.ORDER_NOT_OURS, Reason.PROOF_NOT_REDERIVED,
                   Reason.AGENT_REPORT_WITHOUT_BOOT, Reason.AGENT_WRITES_UNRESTRICTED, Reason.AGENT_DISTRUSTS_KEY,
                   Reason.CLOCK_SKEW_TOO_LARGE, Reason.CLOCK_SKEW_UNMEASURED}


class Reporter:
    def __init__(self, metrics: ControllerMetrics, events: EventRecorder, cfg: MachineConfig,
                 node: Callable[[str], dict[str, Any] | None]) -> None:
        self.metrics = metrics
        self.events = events
        self.cfg = cfg
        self._node = node  # the watch-fed Node object, or None
        self._refusals_reported: set[tuple[str, str]] = set()

    def _node_uid(self, node: str) -> str:
        obj = self._node(node) or {}
        return str((obj.get("metadata") or {}).get("uid") or "")

    def fence_check(self, node: str, result: AgentResult, usable: bool) -> None:
        self.events.record(NodeEvent(
            node=node, node_uid=self._node_uid(node),
            type="Normal" if usable else "Warning",
            reason="FenceAgentCheckPassed" if usable else f"FenceAgentCheck{result.outcome}",
            action="CheckFenceDevice", note=result.describe()))

    def refusals(self, rem: RemediationView, obs: Observations) -> None:
        """Evidence offered and not trusted: a Warning Event, a log line and a metric, once
        per remediation and reason."""
        for refusal in refusals(rem, obs, self.cfg.order_key, self.cfg.timing.max_clock_skew_s):
            key = (rem.uid, str(refusal.reason))
            if key in self._refusals_reported:
                continue
            self._refusals_reported.add(key)
            self.metrics.evidence_refusals.labels(str(refusal.reason)).inc()
            log.warning("remediation %s: evidence refused (%s): %s", rem.node, refusal.reason, refusal.message)
            self.events.record(NodeEvent(
                node=rem.node, node_uid=self._node_uid(rem.node), type="Warning",
                reason=str(refusal.reason), action="RefuseEvidence", note=refusal.message,
                related={"apiVersion": names.API_VERSION, "kind": names.KIND, "name": rem.name, "uid": rem.uid}))

    def transition(self, before: RemediationView, after: RemediationView, decision: Decision, now: float) -> None:
        if (before.phase, before.reason) == (after.phase, after.reason) and before.raw_status.get("phase"):
            return
        m = self.metrics
        if before.phase != after.phase:
            m.transitions.labels(str(before.phase), str(after.phase), str(after.reason)).inc()
            if before.phase_since is not None:
                m.phase_duration.labels(str(before.phase)).observe(max(0.0, now - before.phase_since))
            if after.phase.terminal:
                m.outcomes.labels(str(after.phase), str(after.reason)).inc()
            if after.phase is Phase.FENCED and after.fence and after.fence.evidence:
                m.fence_evidence.labels(str(after.fence.evidence.get("rule", ""))).inc()
            if after.phase is Phase.AWAITING_NODE_READY and after.received_at is not None:
                m.time_to_recovery.observe(max(0.0, now - after.received_at))
        if after.reason == Reason.FENCE_NOT_OBSERVED:
            m.fence_not_observed.inc()
        if after.reason in REFUSAL_REASONS:
            m.evidence_refusals.labels(str(after.reason)).inc()
        cause = after.escalation_state.get("cause")
        if cause in REFUSAL_REASONS and not before.escalation_state.get("cause"):
            m.evidence_refusals.labels(str(cause)).inc()
        if after.escalation_state.get("kind") and not before.escalation_state.get("kind"):
            m.escalations.labels(str(after.escalation_state["kind"]), str(after.escalation_state.get("cause"))).inc()
        warning = after.reason in WARNING_REASONS or after.phase is Phase.FAILED
        (log.warning if warning else log.info)(
            "remediation %s: %s -> %s (%s): %s", after.node, before.phase, after.phase, after.reason,
            decision.message)
        self.events.record(NodeEvent(
            node=after.node, node_uid=self._node_uid(after.node),
            type="Warning" if warning else "Normal", reason=str(after.reason), action=str(after.phase),
            note=decision.message,
            related={"apiVersion": names.API_VERSION, "kind": names.KIND, "name": after.name, "uid": after.uid}))
