"""The NodeRemediation contract (`nodewarden.io/v1alpha1`): the one owner of its shape.

The webhook creates NodeRemediations and writes the operator's parts of them; the
controller drives `status.phase` and records what it did; the agent reports on its own
node. All of them spell the resource's enumerated values from here, so a phase, a
strategy or an escalation rung is named once. The CRD's schema
(`helm/nodewarden/crds/noderemediations.yaml`) must list the same values; a test checks
that it does.
"""

from __future__ import annotations

import enum
from typing import Any


class Phase(enum.StrEnum):
    """`status.phase`: where a remediation is. Only the controller moves it, except that
    the webhook sets the first phase and may cancel one that has not fenced yet."""

    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    CONFIRMING = "Confirming"
    FENCING = "Fencing"
    FENCED = "Fenced"
    RECOVERING = "Recovering"
    AWAITING_NODE_READY = "AwaitingNodeReady"
    SUCCEEDED = "Succeeded"
    CANCELLED = "Cancelled"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.CANCELLED, Phase.FAILED})
# Phases after which a new remediation of the node waits out the cooldown (a cancelled
# one did nothing to the node).
COOLDOWN_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class Strategy(enum.StrEnum):
    """`spec.strategy`: how workloads are recovered once the node is proven fenced."""

    OUT_OF_SERVICE_TAINT = "OutOfServiceTaint"
    RESOURCE_DELETION = "ResourceDeletion"


class Escalation(enum.StrEnum):
    """`spec.escalation`: what to do when self-fencing cannot be proven."""

    NONE = "None"
    FENCE_AGENT = "FenceAgent"
    OPERATOR_APPROVAL = "OperatorApproval"


# -- an operator's acknowledgement ---------------------------------------------------------

# Set by a person (`kubectl annotate`) once they have looked at a remediation that needs one:
# today a `Failed`/`FenceNotObserved`, whose node may have run its workloads twice. The
# value says who and what was done; the controller only checks that it is there.
ACKNOWLEDGED_ANNOTATION = "nodewarden.io/acknowledged"
FENCE_NOT_OBSERVED = "FenceNotObserved"


def needs_acknowledgement(obj: dict[str, Any]) -> bool:
    """A NodeRemediation whose fence was not observed and that no person has acknowledged."""
    status = obj.get("status") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return (status.get("phase") == Phase.FAILED and status.get("reason") == FENCE_NOT_OBSERVED
            and not str(annotations.get(ACKNOWLEDGED_ANNOTATION) or "").strip())
