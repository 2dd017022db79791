"""The policy file: the shipped one loads, and every bad key stops start-up by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webhook.policy import Escalation, PolicyError, Strategy, load_policy, parse_policy

SHIPPED = Path(__file__).resolve().parents[2] / "rules" / "remediation.yaml"


def test_the_shipped_policy_loads() -> None:
    policy = load_policy(SHIPPED)
    assert policy.alerts.names == ("NodeNotReady", "NodeLeaseStale", "KubeNodeNotReady", "KubeNodeUnreachable")
    assert policy.alerts.node_labels == ("node", "kubernetes_node")
    assert str(policy.max_unhealthy) == "40%"
    assert (policy.rate_limit.max_remediations, policy.rate_limit.window_s) == (3, 900.0)
    assert policy.cooldown_s == 1800.0
    assert not policy.paused and not policy.dry_run
    assert policy.group_for({"nodewarden.io/group": "storage"}).approval_required
    assert policy.group_for({}).name == "default"


def test_empty_policy_is_all_defaults() -> None:
    policy = parse_policy({})
    assert policy.defaults.strategy is Strategy.OUT_OF_SERVICE_TAINT
    assert policy.defaults.escalation is Escalation.OPERATOR_APPROVAL
    assert not policy.nodes.include_control_plane


def test_durations_and_counts() -> None:
    policy = parse_policy(
        {"cooldown": "1h30m", "rateLimit": {"window": 90}, "stormProtection": {"maxUnhealthy": "3"}}
    )
    assert policy.cooldown_s == 5400.0
    assert policy.rate_limit.window_s == 90.0
    assert policy.max_unhealthy.limit(100) == 3


BAD: list[tuple[Any, str]] = [
    ([], "(root)"),
    ({"colldown": "1m"}, "colldown"),
    ({"apiVersion": "v1"}, "apiVersion"),
    ({"kind": "Policy"}, "kind"),
    ({"alerts": []}, "alerts"),
    ({"alerts": {"names": []}}, "alerts.names"),
    ({"alerts": {"names": ["A", 3]}}, "alerts.names[1]"),
    ({"alerts": {"nodeLabels": "node"}}, "alerts.nodeLabels"),
    ({"alerts": {"matchLabels": {"severity": 1}}}, "alerts.matchLabels.severity"),
    ({"alerts": {"nmes": []}}, "alerts.nmes"),
    (
        {"nodes": {"selector": {"matchLabels": {"bad key!": "x"}}}},
        "nodes.selector.matchLabels.bad key!",
    ),
    ({"nodes": {"selector": {"matchLabels": {"a": "bad value!"}}}}, "nodes.selector.matchLabels.a"),
    (
        {"nodes": {"selector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}},
        "nodes.selector.matchExpressions[0].operator",
    ),
    (
        {"nodes": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
        "nodes.selector.matchExpressions[0].values",
    ),
    (
        {
            "nodes": {
                "selector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            }
        },
        "nodes.selector.matchExpressions[0].values",
    ),
    (
        {"nodes": {"selector": {"matchExpressions": [{"operator": "Exists"}]}}},
        "nodes.selector.matchExpressions[0].key",
    ),
    ({"nodes": {"includeControlPlane": "yes"}}, "nodes.includeControlPlane"),
    ({"stormProtection": {"maxUnhealthy": "150%"}}, "stormProtection.maxUnhealthy"),
    ({"stormProtection": {"maxUnhealthy": -1}}, "stormProtection.maxUnhealthy"),
    ({"stormProtection": {"maxUnhealthy": "many"}}, "stormProtection.maxUnhealthy"),
    ({"stormProtection": {"maxUnhealthy": True}}, "stormProtection.maxUnhealthy"),
    ({"rateLimit": {"maxRemediations": 0}}, "rateLimit.maxRemediations"),
    ({"rateLimit": {"window": "0s"}}, "rateLimit.window"),
    ({"rateLimit": {"window": "soon"}}, "rateLimit.window"),
    ({"cooldown": "-5m"}, "cooldown"),
    ({"paused": "false"}, "paused"),
    ({"dryRun": 1}, "dryRun"),
    ({"defaults": {"strategy": "Reboot"}}, "defaults.strategy"),
    ({"defaults": {"escalation": None}}, "defaults.escalation"),
    ({"defaults": {"name": "x"}}, "defaults.name"),
    ({"groups": {}}, "groups"),
    ({"groups": [{"selector": {}}]}, "groups[0].name"),
    ({"groups": [{"name": "Bad_Name", "selector": {}}]}, "groups[0].name"),
    ({"groups": [{"name": "a"}]}, "groups[0].selector"),
    ({"groups": [{"name": "a", "selector": {}}, {"name": "a", "selector": {}}]}, "groups[1].name"),
    ({"groups": [{"name": "default", "selector": {}}]}, "groups[0].name"),
    (
        {"groups": [{"name": "a", "selector": {}, "approvalRequired": "no"}]},
        "groups[0].approvalRequired",
    ),
]


@pytest.mark.parametrize(("doc", "field"), BAD)
def test_bad_policy_names_the_field(doc: Any, field: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(doc)
    assert err.value.field == field
    assert field in str(err.value)


def test_unreadable_or_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("alerts: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_policy(tmp_path / "empty.yaml") == parse_policy({})


def test_the_fence_inventory_is_validated_with_the_policy() -> None:
    device = {"name": "rack-a", "agent": "fence_ipmilan", "address": "{node}-bmc",
              "credentials": {"secretName": "bmc-rack-a"}}
    parse_policy({"fenceAgents": {"devices": [device]}})
    with pytest.raises(PolicyError) as err:
        parse_policy({"fenceAgents": {"devices": [{**device, "options": {"password": "in-the-policy"}}]}})
    assert err.value.field == "fenceAgents.devices[0].options.password"
    assert "in-the-policy" not in str(err.value)
