"""The remediation policy as typed, frozen values (what `rules/remediation.yaml` holds).

Only `webhook.policy.load` builds these from YAML; everything else takes them as given.
Label selectors follow Kubernetes' `LabelSelector` semantics exactly: `matchLabels` and
every `matchExpressions` entry must all hold; an empty selector matches everything.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.remediation import Escalation, Strategy


class SelectorOperator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is SelectorOperator.EXISTS:
            return self.key in labels
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.operator is SelectorOperator.IN:
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class MaxUnhealthy:
    """A count, or a percentage of all nodes (rounded down: the stricter choice)."""

    count: int | None = None
    percent: float | None = None

    def limit(self, total_nodes: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(total_nodes * self.percent / 100.0 + 1e-9)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True)
class AlertRules:
    names: tuple[str, ...] = ("NodeNotReady", "NodeLeaseStale", "KubeNodeNotReady", "KubeNodeUnreachable")
    node_labels: tuple[str, ...] = ("node", "kubernetes_node")
    match_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodeRules:
    selector: LabelSelector = field(default_factory=LabelSelector)
    include_control_plane: bool = False


@dataclass(frozen=True)
class RateLimit:
    max_remediations: int = 3
    window_s: float = 900.0


@dataclass(frozen=True)
class Group:
    """A node group: the first group whose selector matches a node decides its handling."""

    name: str
    selector: LabelSelector
    strategy: Strategy
    escalation: Escalation
    approval_required: bool
    # Four-eyes: the person who approves must not be the person who asked.
    four_eyes: bool = False


DEFAULT_GROUP_NAME = "default"


@dataclass(frozen=True)
class Policy:
    alerts: AlertRules = field(default_factory=AlertRules)
    nodes: NodeRules = field(default_factory=NodeRules)
    max_unhealthy: MaxUnhealthy = field(default_factory=lambda: MaxUnhealthy(percent=40.0))
    rate_limit: RateLimit = field(default_factory=RateLimit)
    cooldown_s: float = 1800.0
    paused: bool = False
    dry_run: bool = False
    defaults: Group = field(
        default_factory=lambda: Group(
            name=DEFAULT_GROUP_NAME,
            selector=LabelSelector(),
            strategy=Strategy.OUT_OF_SERVICE_TAINT,
            escalation=Escalation.OPERATOR_APPROVAL,
            approval_required=False,
        )
    )
    groups: tuple[Group, ...] = ()

    def group_for(self, labels: Mapping[str, str]) -> Group:
        """The first group whose selector matches `labels`, else the defaults."""
        for group in self.groups:
            if group.selector.matches(labels):
                return group
        return self.defaults
