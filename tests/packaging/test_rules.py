"""The Prometheus rules in rules/: promtool checks them and runs their unit tests, every
metric they read exists in the code, the chart ships them unchanged, and every alert has a
troubleshooting section in docs/operations.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.packaging.chart import CHART, NAMESPACE, ROOT, VALUE_SETS, find, render
from tests.packaging.metrics_catalog import EXTERNAL, names_in, nodewarden_metric_names

RULES = ROOT / "rules" / "nodewarden-alerts.yaml"
RULE_TESTS = ROOT / "rules" / "tests" / "nodewarden-alerts.test.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) is required: `make test` installs it")


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass_and_cover_every_alert() -> None:
    result = subprocess.run([PROMTOOL, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    fired = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    names = {a["alert"] for a in alerts()}
    assert names == tested, f"alerts without a unit test: {names - tested}"
    assert names == fired, f"alerts never shown firing: {names - fired}"


def test_every_metric_the_rules_read_exists() -> None:
    known = nodewarden_metric_names() | EXTERNAL
    for rule in alerts():
        unknown = names_in(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} reads metrics no component serves: {unknown}"


def test_every_alert_has_a_severity_a_summary_and_a_section_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    headings = set(re.findall(r"^#+ .*?`?(\w+)`?\s*$", guide, flags=re.M))
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["alert"] in headings, f"docs/operations.md has no section for {rule['alert']}"


def test_the_remediation_triggers_are_alerts_the_default_policy_handles() -> None:
    policy = yaml.safe_load((ROOT / "rules" / "remediation.yaml").read_text())
    triggers = yaml.safe_load(RULES.read_text())["groups"][0]
    assert triggers["name"] == "nodewarden-triggers"
    for rule in triggers["rules"]:
        assert rule["alert"] in policy["alerts"]["names"]
        assert "node" in policy["alerts"]["nodeLabels"]
        assert re.search(r"by \(node\)", rule["expr"]), "the alert must carry the node label"


@pytest.mark.parametrize("copy,original", [
    ("files/nodewarden-alerts.yaml", "rules/nodewarden-alerts.yaml"),
    ("files/remediation.yaml", "rules/remediation.yaml"),
])
def test_the_chart_ships_the_files_of_rules_unchanged(copy: str, original: str) -> None:
    assert (CHART / copy).read_bytes() == (ROOT / original).read_bytes(), (
        f"helm/nodewarden/{copy} differs from {original}: copy it again (cp {original} helm/nodewarden/{copy})")


def _chart_rules(values: dict) -> list[dict]:
    rule = find(render(values), "PrometheusRule")
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def test_the_prometheus_rule_is_the_rules_file_with_the_namespace_label() -> None:
    values = VALUE_SETS["prometheus-operator-on"]
    by_name = {r["alert"]: r for r in _chart_rules(values)}
    expected = alerts()  # NodeLeaseStale included: on by default
    assert set(by_name) == {a["alert"] for a in expected}
    for original in expected:
        rendered = by_name[original["alert"]]
        assert rendered["expr"] == original["expr"]
        assert rendered["for"] == original["for"]
        assert rendered["labels"] == {**original["labels"], "namespace": NAMESPACE, "team": "platform"}
        assert rendered["annotations"] == {
            **original["annotations"],
            "runbook_url": "https://runbooks.example/nodewarden#" + original["alert"].lower()}


def test_rules_can_be_left_out_and_the_lease_rule_needs_the_policy_to_handle_it() -> None:
    on = {"monitoring": {"prometheusOperator": {"enabled": True}}}
    names = {r["alert"] for r in _chart_rules({**on, "monitoring": {
        **on["monitoring"], "rules": {"disabled": ["NodewardenPaused"]}}})}
    assert "NodewardenPaused" not in names and "NodeNotReady" in names
    assert "NodeLeaseStale" in {r["alert"] for r in _chart_rules(VALUE_SETS["everything-on"])}
    import helm_python

    lease_on = {**on, "monitoring": {**on["monitoring"], "rules": {"nodeLeaseStale": True}}}
    render(lease_on)  # the shipped policy lists NodeLeaseStale
    policy = (ROOT / "rules" / "remediation.yaml").read_text().replace("NodeLeaseStale, ", "")
    with pytest.raises(helm_python.HelmError, match="NodeLeaseStale"):
        render({**lease_on, "policy": policy})
    lease_off = {**on, "monitoring": {**on["monitoring"], "rules": {"nodeLeaseStale": False}}}
    assert "NodeLeaseStale" not in {r["alert"] for r in _chart_rules({**lease_off, "policy": policy})}
    with pytest.raises(helm_python.HelmError, match="no alert named Nope"):
        render({**on, "monitoring": {**on["monitoring"], "rules": {"disabled": ["Nope"]}}})


@needs_promtool
def test_promtool_accepts_the_rendered_prometheus_rule(tmp_path: Path) -> None:
    rule = find(render(VALUE_SETS["everything-on"]), "PrometheusRule")
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_trigger_groups_carry_the_evaluation_interval_the_figures_assume() -> None:
    """The rules file and the chart evaluate the trigger groups every 15 s whatever
    Prometheus' global interval; the chart's value changes it, and only for them."""
    groups = {g["name"]: g for g in yaml.safe_load(RULES.read_text())["groups"]}
    assert groups["nodewarden-triggers"]["interval"] == groups["nodewarden-fast-detection"]["interval"] == "15s"
    assert "interval" not in groups["nodewarden"]
    on = VALUE_SETS["prometheus-operator-on"]
    rendered = {g["name"]: g for g in find(render(on), "PrometheusRule")["spec"]["groups"]}
    assert rendered["nodewarden-triggers"]["interval"] == "15s" and "interval" not in rendered["nodewarden"]
    slower = {**on, "monitoring": {**on["monitoring"], "rules": {**on["monitoring"].get("rules", {}),
                                                                 "triggerEvaluationInterval": "30s"}}}
    rendered = {g["name"]: g for g in find(render(slower), "PrometheusRule")["spec"]["groups"]}
    assert rendered["nodewarden-triggers"]["interval"] == "30s" and "interval" not in rendered["nodewarden"]
