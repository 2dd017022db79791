"""The NodeRemediation contract (`nodewarden.io/v1alpha1`): the one owner of its shape.

The webhook creates NodeRemediations and writes the operator's parts of them; the
controller drives `status.phase` and records what it did; the agent reports on its own
node. All of them spell the resource's enumerated values from here, so a phase, a
strategy or an escalation rung is named once, and `WRITERS` says which identity writes
which field. The typed status parts and their one parser are `core.remediation_status`.
The CRD's schema (`helm/nodewarden/crds/noderemediations.yaml`) and
docs/noderemediation.md must say the same; tests check that they do.
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
    # A request someone else created (kubectl) that the webhook's policy refused: nothing
    # was done to the node, and no cooldown follows.
    REJECTED = "Rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.CANCELLED, Phase.FAILED, Phase.REJECTED})
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


# -- requests made with a person's own Kubernetes credentials (kubectl) ---------------------
# The chart's ValidatingAdmissionPolicy (templates/admission-operators.yaml) makes each of
# these equal to the authenticated username of whoever wrote it, so they are identities,
# not claims. The webhook turns them into status; only the webhook and the controller
# write status.
REQUESTED_BY_ANNOTATION = "nodewarden.io/requested-by"
APPROVED_BY_ANNOTATION = "nodewarden.io/approved-by"
CANCELLED_BY_ANNOTATION = "nodewarden.io/cancelled-by"
CANCEL_REASON_ANNOTATION = "nodewarden.io/cancel-reason"

# `spec.trigger.source` values. The webhook writes the first two; a person's kubectl the third.
SOURCE_ALERTMANAGER = "alertmanager"
SOURCE_OPERATOR = "operator"
SOURCE_KUBECTL = "kubectl"
MANUAL_SOURCES = frozenset({SOURCE_OPERATOR, SOURCE_KUBECTL})


def annotation(obj: dict[str, Any], key: str) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(key) or "").strip()


def is_foreign(obj: dict[str, Any]) -> bool:
    """Created by someone other than the webhook: a person's request with kubectl. Such an
    object carries the requester's (admission-checked) annotation or names kubectl as its
    source; its spec is theirs, so nothing in it counts until the webhook has decided on it
    and written `status.plan`."""
    source = ((obj.get("spec") or {}).get("trigger") or {}).get("source")
    return bool(annotation(obj, REQUESTED_BY_ANNOTATION)) or source not in (
        SOURCE_ALERTMANAGER, SOURCE_OPERATOR)


def decided(obj: dict[str, Any]) -> bool:
    """The webhook has written the first phase: before that, nobody acts on the object."""
    return bool((obj.get("status") or {}).get("phase"))


# -- who writes what ------------------------------------------------------------------------


class Writer(enum.StrEnum):
    """The identities that write a NodeRemediation."""

    WEBHOOK = "webhook"
    CONTROLLER = "controller"
    AGENT = "node agent"  # the node's own agent, `status.agentReport` only
    PERSON = "person"  # with kubectl and their own credentials: the object, spec, annotations


_BOTH = frozenset({Writer.WEBHOOK, Writer.CONTROLLER})
# Every field of the object and the identities that write it; docs/noderemediation.md's
# status table says the same (a test checks), and the chart's RBAC and admission policies
# enforce it. The status paths are the ones `core.remediation_status` shapes.
WRITERS: dict[str, frozenset[Writer]] = {
    "spec": frozenset({Writer.WEBHOOK, Writer.PERSON}),
    f"metadata.annotations.{REQUESTED_BY_ANNOTATION}": frozenset({Writer.PERSON}),
    f"metadata.annotations.{APPROVED_BY_ANNOTATION}": frozenset({Writer.PERSON}),
    f"metadata.annotations.{CANCELLED_BY_ANNOTATION}": frozenset({Writer.PERSON}),
    f"metadata.annotations.{CANCEL_REASON_ANNOTATION}": frozenset({Writer.PERSON}),
    f"metadata.annotations.{ACKNOWLEDGED_ANNOTATION}": frozenset({Writer.PERSON}),
    "status.phase": _BOTH,
    "status.reason": _BOTH,
    "status.message": _BOTH,
    "status.phaseSince": _BOTH,
    "status.history": _BOTH,
    "status.alerts": frozenset({Writer.WEBHOOK}),
    "status.requestedBy": frozenset({Writer.WEBHOOK}),
    "status.plan": frozenset({Writer.WEBHOOK}),
    "status.approval": frozenset({Writer.WEBHOOK}),
    "status.cancellation": frozenset({Writer.WEBHOOK}),
    "status.fence": frozenset({Writer.CONTROLLER}),
    "status.fence.acknowledgement": frozenset({Writer.CONTROLLER}),
    "status.fence.evidence": frozenset({Writer.CONTROLLER}),
    "status.fence.peerSilence": frozenset({Writer.CONTROLLER}),
    "status.fence.lastAnswer": frozenset({Writer.CONTROLLER}),
    "status.fence.refusal": frozenset({Writer.CONTROLLER}),
    "status.recovery": frozenset({Writer.CONTROLLER}),
    "status.escalation": frozenset({Writer.CONTROLLER}),
    "status.kubeletRestart": frozenset({Writer.CONTROLLER}),
    "status.agentReport": frozenset({Writer.AGENT}),
    "status.conditions": frozenset({Writer.CONTROLLER}),
}


class ConditionType(enum.StrEnum):
    """`status.conditions[].type`, set by the controller on entering a phase."""

    FENCED = "Fenced"
    RECOVERED = "Recovered"
    NODE_READY = "NodeReady"
