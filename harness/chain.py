"""The real alerting chain around a nodewarden world: Debian's Prometheus scrapes the
simulated cluster's kube-state-metrics series and nodewarden's metrics and evaluates the
shipped rules; Debian's Alertmanager sends to the webhook with a bearer token. Nothing in
it is mocked; its durations (scrape and evaluation intervals, `for:`, the rules' time
thresholds, Alertmanager's group timers) are scaled like everything else."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.settings import parse_duration
from harness.prometheus import ALERTMANAGER, free_port, prometheus, serve
from harness.world import ROOT, World

RULES = ROOT / "rules" / "nodewarden-alerts.yaml"
TRIGGER_GROUPS = {"nodewarden-triggers", "nodewarden-fast-detection"}
_THRESHOLD = re.compile(r"([<>]=?)\s*(\d+(?:\.\d+)?)\b")


def seconds(value: float) -> str:
    """A Prometheus/Alertmanager duration (they take whole units: 1500ms, not 1.5s). Zero
    stays zero: a `for: 0s` scaled to 1ms would hold the alert pending for one more
    evaluation interval, which the shipped rule does not."""
    return "0s" if value <= 0 else f"{max(1, round(value * 1000))}ms"


def scaled_rules(scale: float, source: Path = RULES) -> dict[str, Any]:
    """The shipped rules with their durations scaled: groups' `interval`, `for:` everywhere, and the seconds
    thresholds in the trigger rules' expressions (Lease age > 40, node age < 600)."""
    doc = yaml.safe_load(source.read_text())
    for group in doc["groups"]:
        if "interval" in group:
            group["interval"] = seconds(parse_duration(group["interval"]) * scale)
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = seconds(parse_duration(rule["for"]) * scale)
            if group["name"] in TRIGGER_GROUPS and "expr" in rule:
                rule["expr"] = _THRESHOLD.sub(
                    lambda m: f"{m.group(1)} {float(m.group(2)) * scale:g}" if float(m.group(2)) > 1 else m.group(0),
                    rule["expr"])
    return doc


ALERTMANAGER_CONFIG = """\
route:
  receiver: nodewarden
  group_by: [alertname, node]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
receivers:
  - name: nodewarden
    webhook_configs:
{targets}"""
WEBHOOK_TARGET = """      - url: {url}/api/v1/alerts
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""


@dataclass
class Chain:
    prometheus_url: str
    alertmanager_url: str


# Cluster seconds, scaled like everything else: the kube-state-metrics scrape interval and the
# trigger groups' evaluation interval the shipped rules assume (their `interval:`), and the
# group_wait of this chain's Alertmanager (the chart's route ships 0s).
SCRAPE_INTERVAL_S = 15.0
EVALUATION_INTERVAL_S = 15.0
GROUP_WAIT_S = 10.0


@contextmanager
def alertmanager(tmp: Path, webhook_urls: list[str], token_file: Path, scale: float,
                 group_wait_s: float = GROUP_WAIT_S) -> Iterator[str]:
    assert ALERTMANAGER, "prometheus-alertmanager is required (make debs installs it)"
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "alertmanager.yml"
    targets = "".join(WEBHOOK_TARGET.format(url=u, token_file=token_file) for u in webhook_urls)
    config.write_text(ALERTMANAGER_CONFIG.format(
        targets=targets, group_wait=seconds(group_wait_s * scale),
        group_interval=seconds(30 * scale), repeat_interval=seconds(300 * scale)))
    amtool = shutil.which("amtool")
    if amtool:
        check = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    with serve([ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=info"],
               tmp / "alertmanager.log", port) as url:
        yield url


@contextmanager
def alert_chain(world: World, tmp: Path, controller_metrics: list[str] | None = None, *,
                scrape_interval_s: float = SCRAPE_INTERVAL_S,
                evaluation_interval_s: float = EVALUATION_INTERVAL_S,
                group_wait_s: float = GROUP_WAIT_S) -> Iterator[Chain]:
    """The chain around `world`; the durations are cluster seconds (Prometheus' scrape of
    kube-state-metrics, the evaluation of every rule group, the trigger groups' own
    `interval:` included, and Alertmanager's group_wait)."""
    scale = world.scale
    tmp.mkdir(parents=True, exist_ok=True)
    rules = tmp / "rules.yaml"
    doc = scaled_rules(scale)
    for group in doc["groups"]:
        if "interval" in group:
            group["interval"] = seconds(evaluation_interval_s * scale)
    rules.write_text(yaml.safe_dump(doc))
    ca = tmp / "sim-ca.pem"
    ca.write_bytes(world.cluster.api.tls.ca_pem)  # type: ignore[union-attr]
    with alertmanager(tmp / "alertmanager", world.webhook_urls, world.tmp / "am-token", scale,
                      group_wait_s) as am_url:
        config = {
            "global": {"scrape_interval": seconds(scrape_interval_s * scale),
                       "evaluation_interval": seconds(evaluation_interval_s * scale),
                       "scrape_timeout": seconds(min(10.0, scrape_interval_s) * scale)},
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_url.removeprefix("http://")]}]}]},
            "scrape_configs": [
                {"job_name": "kube-state-metrics", "scheme": "https", "tls_config": {"ca_file": str(ca)},
                 "static_configs": [{"targets": [f"127.0.0.1:{world.cluster.api.port}"]}]},
                {"job_name": "nodewarden-webhook",
                 "static_configs": [{"targets": [u.removeprefix("http://") for u in world.webhook_urls]}]},
                {"job_name": "nodewarden-controller",
                 "static_configs": [{"targets": controller_metrics or []}]},
            ],
        }
        with prometheus(tmp / "prometheus", config, [rules]) as prom_url:
            yield Chain(prom_url, am_url)
