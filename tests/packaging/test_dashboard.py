"""The Grafana dashboard: a well-formed dashboard with the issue's panels, every query parsed
by a real Prometheus, every metric one the code serves, shipped by the chart as a ConfigMap
Grafana's sidecar picks up."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from harness.prometheus import PROMETHEUS, http_json, prometheus
from tests.packaging.chart import CHART, NAMESPACE, find, render
from tests.packaging.metrics_catalog import EXTERNAL, names_in, nodewarden_metric_names

DASHBOARD = CHART / "files" / "dashboard.json"
# Grafana's variables, as Grafana would substitute them for a 6 h range and the node "All".
SUBSTITUTIONS = {"$__rate_interval": "2m", "$__range": "6h", "$__interval": "30s", "$node": ".*"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr.replace("$1", ""), f"unknown Grafana variable in {expr}"
    return expr


def test_the_dashboard_is_well_formed() -> None:
    d = dashboard()
    assert d["uid"] == "nodewarden" and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in d["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_no_two_panels_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("wanted", [
    r"nodewarden_controller_remediations\b",  # active remediations by phase
    r"nodewarden_controller_time_to_recovery_seconds_bucket",  # time to recovery
    r"nodewarden_controller_fence_evidence_total",  # fence evidence by rule
    r"nodewarden_webhook_storm_protection_active",  # storm protection
    r"nodewarden_webhook_alerts_received_total",  # alerts received
    r'nodewarden_webhook_decisions_total\{verdict="rejected"\}',  # alerts rejected
    r"nodewarden_agent_watchdog_feeds_total",  # watchdog feeds
    r'nodewarden_agent_api_checks_total\{result="failed"',  # API check failures
    r"nodewarden_agent_peer_requests_total",  # peer results
])
def test_the_dashboard_shows_what_the_issue_asks_for(wanted: str) -> None:
    assert any(re.search(wanted, expr) for _, expr in queries()), wanted


def test_every_metric_a_panel_reads_exists() -> None:
    known = nodewarden_metric_names() | EXTERNAL
    for title, expr in queries():
        unknown = names_in(expr) - known
        assert not unknown, f"panel {title!r} reads metrics no component serves: {unknown}"


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("Debian's prometheus package is required: `make test` installs it")
    config = {"global": {"scrape_interval": "15s"}, "scrape_configs": []}
    with prometheus(tmp_path_factory.mktemp("prometheus"), config) as url:
        yield url


def test_every_panel_query_parses_in_prometheus(prometheus_url: str) -> None:
    # The $node variable uses Grafana's label_values(); its PromQL equivalent:
    (node,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "node"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", node["definition"]).groups()  # type: ignore[union-attr]
    expressions = [("variable node", f"group by ({label}) ({metric})"), *queries()]
    assert len(expressions) > 30
    for title, expr in expressions:
        query = urllib.parse.quote(substitute(expr))
        try:
            answer = http_json(f"{prometheus_url}/api/v1/query?query={query}")
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        assert answer["status"] == "success", f"panel {title!r}: {expr}\n{answer}"


def test_the_chart_ships_the_dashboard_for_grafanas_sidecar() -> None:
    cm = find(render({}), "ConfigMap", "nodewarden-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert json.loads(cm["data"]["nodewarden.json"]) == dashboard()
    elsewhere = find(render({"monitoring": {"dashboard": {"namespace": "grafana"}}}), "ConfigMap", "nodewarden-dashboard")
    assert elsewhere["metadata"]["namespace"] == "grafana"
    assert not [d for d in render({"monitoring": {"enabled": False}}) if d["metadata"]["name"] == "nodewarden-dashboard"]

