"""The policy's pure verdicts, one reason at a time, with an injected clock."""

from __future__ import annotations

import pytest

from core.clock import FakeClock
from webhook.policy import (
    ClusterFacts,
    ExistingFacts,
    NodeFacts,
    Outcome,
    Reason,
    Request,
    Source,
    alert_target,
    decide_approve,
    decide_cancel,
    decide_firing,
    decide_resolved,
    parse_policy,
)

CLOCK = FakeClock()
NOW = CLOCK.now()
NOT_READY = NodeFacts("node-1", {}, "Unknown")
CALM = ClusterFacts(total_nodes=10, unhealthy_nodes=1, recent_starts=(), paused=False)
ALERT = Request(Source.ALERTMANAGER, "node-1")


def firing(
    policy: dict | None = None,  # type: ignore[type-arg]
    node: NodeFacts | None = NOT_READY,
    existing: ExistingFacts | None = None,
    cluster: ClusterFacts = CALM,
    request: Request = ALERT,
    now: float = NOW,
):  # type: ignore[no-untyped-def]
    return decide_firing(request, node, existing, cluster, parse_policy(policy or {}), now)


def test_accepted_with_the_default_plan() -> None:
    v = firing()
    assert (v.outcome, v.reason) == (Outcome.ACCEPTED, Reason.ACCEPTED)
    assert v.plan is not None
    assert (v.plan.group, str(v.plan.strategy), str(v.plan.escalation)) == (
        "default",
        "OutOfServiceTaint",
        "OperatorApproval",
    )
    assert not v.plan.dry_run and not v.plan.approval_required


def test_active_remediation_is_a_duplicate() -> None:
    for phase in (None, "Pending", "AwaitingApproval", "Fencing", "Recovering"):
        v = firing(existing=ExistingFacts(phase, NOW - 5, fence_issued=phase == "Fencing"))
        assert (v.outcome, v.reason) == (Outcome.DUPLICATE, Reason.ALREADY_ACTIVE), phase


def test_duplicate_wins_over_every_rejection() -> None:
    v = firing(
        policy={"paused": True},
        cluster=ClusterFacts(10, 10, (NOW,) * 10, paused=True),
        existing=ExistingFacts("Fencing", NOW, True),
    )
    assert v.outcome is Outcome.DUPLICATE


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_cooldown_after_a_finished_remediation(phase: str) -> None:
    policy = {"cooldown": "30m"}
    existing = ExistingFacts(phase, NOW - 29 * 60, False)
    v = firing(policy, existing=existing)
    assert (v.outcome, v.reason) == (Outcome.REJECTED, Reason.COOLDOWN)
    assert "60s" in v.message
    later = firing(policy, existing=existing, now=NOW + 61)
    assert later.outcome is Outcome.ACCEPTED


def test_a_cancelled_remediation_has_no_cooldown() -> None:
    v = firing(existing=ExistingFacts("Cancelled", NOW - 1, False))
    assert v.outcome is Outcome.ACCEPTED


def test_unknown_node() -> None:
    v = firing(node=None)
    assert (v.outcome, v.reason) == (Outcome.REJECTED, Reason.NODE_NOT_FOUND)


def test_paused_by_the_policy_file_or_the_switch() -> None:
    assert firing({"paused": True}).reason is Reason.PAUSED
    switched = firing(cluster=ClusterFacts(10, 1, (), paused=True, pause_reason="maintenance"))
    assert switched.reason is Reason.PAUSED
    assert "maintenance" in switched.message


def test_opt_out_label() -> None:
    node = NodeFacts("node-1", {"nodewarden.io/remediation": "disabled"}, "Unknown")
    assert firing(node=node).reason is Reason.NODE_OPTED_OUT
    other_value = NodeFacts("node-1", {"nodewarden.io/remediation": "enabled"}, "Unknown")
    assert firing(node=other_value).outcome is Outcome.ACCEPTED


@pytest.mark.parametrize(
    "label", ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"]
)
def test_control_plane_excluded_unless_enabled(label: str) -> None:
    node = NodeFacts("cp-1", {label: ""}, "Unknown")
    assert firing(node=node).reason is Reason.CONTROL_PLANE_EXCLUDED
    assert firing({"nodes": {"includeControlPlane": True}}, node=node).outcome is Outcome.ACCEPTED


def test_node_selector() -> None:
    policy = {
        "nodes": {
            "selector": {
                "matchLabels": {"pool": "workers"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}],
            }
        }
    }
    ok = NodeFacts("n", {"pool": "workers", "zone": "a"}, "False")
    wrong_zone = NodeFacts("n", {"pool": "workers", "zone": "c"}, "False")
    no_pool = NodeFacts("n", {"zone": "a"}, "False")
    assert firing(policy, node=ok).outcome is Outcome.ACCEPTED
    assert firing(policy, node=wrong_zone).reason is Reason.NODE_NOT_SELECTED
    assert firing(policy, node=no_pool).reason is Reason.NODE_NOT_SELECTED


def test_ready_node_is_not_remediated() -> None:
    v = firing(node=NodeFacts("node-1", {}, "True"))
    assert (v.outcome, v.reason) == (Outcome.REJECTED, Reason.NODE_READY)
    for status in ("False", "Unknown", None):
        assert firing(node=NodeFacts("node-1", {}, status)).outcome is Outcome.ACCEPTED


@pytest.mark.parametrize(
    ("max_unhealthy", "total", "unhealthy", "engaged"),
    [
        ("40%", 10, 4, False),
        ("40%", 10, 5, True),
        ("40%", 5, 2, False),
        ("40%", 5, 3, True),
        ("40%", 4, 2, True),  # 40% of 4 is 1.6, rounded down to 1
        (2, 100, 2, False),
        (2, 100, 3, True),
        (0, 10, 1, True),
        ("100%", 3, 3, False),
    ],
)
def test_storm_protection(max_unhealthy: object, total: int, unhealthy: int, engaged: bool) -> None:
    policy = {"stormProtection": {"maxUnhealthy": max_unhealthy}}
    v = firing(policy, cluster=ClusterFacts(total, unhealthy, (), paused=False))
    if engaged:
        assert (v.outcome, v.reason) == (Outcome.REJECTED, Reason.STORM_PROTECTION)
        assert f"{unhealthy} of {total}" in v.message
    else:
        assert v.outcome is Outcome.ACCEPTED


def test_rate_limit_counts_starts_inside_the_window() -> None:
    policy = {"rateLimit": {"maxRemediations": 2, "window": "10m"}}
    inside = (NOW - 60, NOW - 500)
    v = firing(policy, cluster=ClusterFacts(10, 1, inside, paused=False))
    assert (v.outcome, v.reason) == (Outcome.REJECTED, Reason.RATE_LIMITED)
    one_outside = (NOW - 60, NOW - 601)
    assert firing(policy, cluster=ClusterFacts(10, 1, one_outside, paused=False)).accepted


def test_dry_run_from_policy_or_request() -> None:
    v = firing({"dryRun": True})
    assert (v.reason, v.plan.dry_run) == (Reason.ACCEPTED_DRY_RUN, True)  # type: ignore[union-attr]
    asked = firing(request=Request(Source.OPERATOR, "node-1", dry_run=True))
    assert (asked.reason, asked.plan.dry_run) == (Reason.ACCEPTED_DRY_RUN, True)  # type: ignore[union-attr]


def test_groups_first_match_wins_and_inherit_defaults() -> None:
    policy = {
        "defaults": {"strategy": "ResourceDeletion", "escalation": "None"},
        "groups": [
            {"name": "db", "selector": {"matchLabels": {"role": "db"}}, "approvalRequired": True},
            {"name": "all", "selector": {}, "escalation": "FenceAgent"},
        ],
    }
    db = firing(policy, node=NodeFacts("n", {"role": "db"}, "False"))
    assert (db.outcome, db.reason) == (Outcome.ACCEPTED, Reason.AWAITING_APPROVAL)
    assert db.plan is not None
    assert (
        db.plan.group,
        str(db.plan.strategy),
        str(db.plan.escalation),
        db.plan.approval_required,
    ) == ("db", "ResourceDeletion", "None", True)
    other = firing(policy, node=NodeFacts("n", {}, "False"))
    assert other.plan is not None
    assert (other.plan.group, str(other.plan.escalation)) == ("all", "FenceAgent")


def test_check_order_gives_one_reason() -> None:
    # paused, opted out, not ready and storming at once: the earliest check names it
    node = NodeFacts("node-1", {"nodewarden.io/remediation": "disabled"}, "Unknown")
    v = firing({"paused": True}, node=node, cluster=ClusterFacts(3, 3, (), paused=False))
    assert v.reason is Reason.PAUSED


# Alert targeting ------------------------------------------------------------------


def test_alert_target() -> None:
    policy = parse_policy({"alerts": {"matchLabels": {"severity": "critical"}}})
    assert alert_target("NodeNotReady", {"node": "n1", "severity": "critical"}, policy) == "n1"
    assert alert_target("Other", {"node": "n1"}, policy).reason is Reason.ALERT_NOT_HANDLED  # type: ignore[union-attr]
    assert alert_target("NodeNotReady", {"node": "n1"}, policy).reason is Reason.ALERT_NOT_HANDLED  # type: ignore[union-attr]
    no_node = alert_target("NodeNotReady", {"severity": "critical", "instance": "x"}, policy)
    assert no_node.reason is Reason.NO_NODE_LABEL  # type: ignore[union-attr]
    bad = alert_target("NodeNotReady", {"node": "Bad Name!", "severity": "critical"}, policy)
    assert bad.reason is Reason.INVALID_NODE_NAME  # type: ignore[union-attr]


def test_alert_target_label_order() -> None:
    policy = parse_policy({"alerts": {"nodeLabels": ["instance_node", "node"]}})
    assert alert_target("NodeNotReady", {"node": "a", "instance_node": "b"}, policy) == "b"
    assert alert_target("NodeNotReady", {"node": "a"}, policy) == "a"


# Resolved alerts, cancel, approve ---------------------------------------------------

FIRING = {"fp1": ("firing", NOW - 600)}


def pending(**kw: object) -> ExistingFacts:
    base: dict[str, object] = {
        "phase": "Pending",
        "phase_since": NOW,
        "fence_issued": False,
        "alerts": FIRING,
    }
    base.update(kw)
    return ExistingFacts(**base)  # type: ignore[arg-type]


def test_resolved_cancels_before_a_fence_order() -> None:
    v = decide_resolved("node-1", "fp1", NOW - 600, pending())
    assert (v.outcome, v.reason) == (Outcome.CANCELLED, Reason.ALERT_RESOLVED)


def test_resolved_after_a_fence_order_is_recorded_only() -> None:
    v = decide_resolved("node-1", "fp1", NOW - 600, pending(phase="Fencing", fence_issued=True))
    assert (v.outcome, v.reason) == (Outcome.RECORDED, Reason.FENCE_IN_PROGRESS)


def test_resolved_does_not_cancel_while_another_alert_fires() -> None:
    alerts = {"fp1": ("firing", NOW - 600), "fp2": ("firing", NOW - 500)}
    v = decide_resolved("node-1", "fp1", NOW - 600, pending(alerts=alerts))
    assert (v.outcome, v.reason) == (Outcome.RECORDED, Reason.OTHER_ALERTS_FIRING)
    both_resolved = {"fp1": ("firing", NOW - 600), "fp2": ("resolved", NOW - 500)}
    assert (
        decide_resolved("node-1", "fp1", NOW - 600, pending(alerts=both_resolved)).outcome
        is Outcome.CANCELLED
    )


def test_resolved_of_an_operator_request_is_recorded_only() -> None:
    v = decide_resolved("node-1", "fp1", NOW - 600, pending(source="operator"))
    assert (v.outcome, v.reason) == (Outcome.RECORDED, Reason.OPERATOR_TRIGGERED)


def test_resolved_of_an_earlier_incident_or_unknown_alert_is_ignored() -> None:
    earlier = decide_resolved("node-1", "fp1", NOW - 3600, pending())
    assert (earlier.outcome, earlier.reason) == (Outcome.IGNORED, Reason.UNRELATED_ALERT)
    unknown = decide_resolved("node-1", "fp-other", NOW - 600, pending())
    assert unknown.reason is Reason.UNRELATED_ALERT


def test_resolved_without_or_after_a_remediation_is_ignored() -> None:
    assert decide_resolved("node-1", "fp1", NOW, None).reason is Reason.NO_REMEDIATION
    done = decide_resolved("node-1", "fp1", NOW, pending(phase="Succeeded"))
    assert (done.outcome, done.reason) == (Outcome.IGNORED, Reason.ALREADY_FINISHED)


def test_operator_cancel() -> None:
    assert decide_cancel("n", pending()).reason is Reason.OPERATOR_CANCELLED
    assert decide_cancel("n", pending(phase="AwaitingApproval")).outcome is Outcome.CANCELLED
    fenced = decide_cancel("n", pending(phase="Fencing", fence_issued=True))
    assert (fenced.outcome, fenced.reason) == (Outcome.REJECTED, Reason.FENCE_IN_PROGRESS)
    assert decide_cancel("n", pending(phase="Cancelled")).reason is Reason.ALREADY_FINISHED
    assert decide_cancel("n", None).reason is Reason.NO_REMEDIATION


def test_approve() -> None:
    waiting = pending(phase="AwaitingApproval", phase_since=NOW)
    assert decide_approve("n", waiting).reason is Reason.APPROVED
    done = pending(phase="AwaitingApproval", phase_since=NOW, approved_at=NOW + 1)
    assert decide_approve("n", done).reason is Reason.ALREADY_APPROVED
    # an approval from before the current wait does not count (escalation asks again)
    stale = pending(phase="AwaitingApproval", phase_since=NOW, approved_at=NOW - 100)
    assert decide_approve("n", stale).reason is Reason.APPROVED
    assert decide_approve("n", pending()).reason is Reason.NOT_AWAITING_APPROVAL
    uninitialized = pending(phase=None, approval_required=True)
    assert decide_approve("n", uninitialized).reason is Reason.APPROVED
    assert decide_approve("n", None).reason is Reason.NO_REMEDIATION
