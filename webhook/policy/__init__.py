"""The remediation policy: its typed model (`model`), the validating loader for
`rules/remediation.yaml` (`load`) and the pure verdict functions (`decide`)."""

from webhook.policy.decide import (
    ClusterFacts,
    ExistingFacts,
    NodeFacts,
    Outcome,
    Plan,
    Reason,
    Request,
    Source,
    Verdict,
    alert_target,
    decide_approve,
    decide_cancel,
    decide_firing,
    decide_resolved,
)
from webhook.policy.load import PolicyError, load_policy, parse_policy
from webhook.policy.model import Escalation, Group, LabelSelector, Policy, Strategy

__all__ = [
    "ClusterFacts",
    "Escalation",
    "ExistingFacts",
    "Group",
    "LabelSelector",
    "NodeFacts",
    "Outcome",
    "Plan",
    "Policy",
    "PolicyError",
    "Reason",
    "Request",
    "Source",
    "Strategy",
    "Verdict",
    "alert_target",
    "decide_approve",
    "decide_cancel",
    "decide_firing",
    "decide_resolved",
    "load_policy",
    "parse_policy",
]
