"""The `what-if` report: the bounds and the expected recovery timeline as plain text, one
line per figure; and the docs' tables (`markdown`), which docs/fencing-protocol.md embeds
between markers and a test keeps identical to what the model computes."""

from __future__ import annotations

import dataclasses

from core.timing.inputs import GROUPS, TimingInputs
from core.timing.model import (
    ACKNOWLEDGED_WATCHDOG,
    AGENT_HEARTBEAT_STALE,
    MILESTONES,
    fence_deadline_s,
    isolation_detect_s,
    isolation_to_reset_s,
    predict,
)


def bounds(inputs: TimingInputs) -> dict[str, float]:
    a, c = inputs.agent, inputs.controller
    return {
        "isolation_detect_s (D, published by the agent)": isolation_detect_s(a),
        "isolation_to_reset_s (D + W)": isolation_to_reset_s(a),
        f"fence deadline, {ACKNOWLEDGED_WATCHDOG} (after the last feed)": fence_deadline_s(ACKNOWLEDGED_WATCHDOG, a, c),
        f"fence deadline, {AGENT_HEARTBEAT_STALE} (after the heartbeat)": fence_deadline_s(AGENT_HEARTBEAT_STALE, a, c),
    }


def render(inputs: TimingInputs, changed: dict[str, str] | None = None) -> str:
    lines = ["settings" + (" (changed: " + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"
                          if changed else " (shipped defaults)")]
    for group in GROUPS:
        values = dataclasses.asdict(getattr(inputs, group))
        lines.append(f"  {group}: " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in values.items()))
    lines.append(f"  strategy: {inputs.strategy}")
    lines.append("")
    lines.append("bounds (seconds)")
    for name, value in bounds(inputs).items():
        lines.append(f"  {name:<62} {value:7.1f}")
    p = predict(inputs)
    lines.append("")
    lines.append("recovery timeline (seconds after the power-off)   earliest  expected    latest")
    for name in MILESTONES:
        lines.append(f"  {name:<46} {p.earliest.at_s[name]:9.1f} {p.expected.at_s[name]:9.1f} "
                     f"{p.latest.at_s[name]:9.1f}")
    lines.append(f"  (expected: the fence waited for the {p.expected.fence_waited_for}; the "
                 f"{AGENT_HEARTBEAT_STALE} deadline falls at {p.expected.fence_deadline_s:.1f} s)")
    return "\n".join(lines)


# The settings sets the docs compare: the chart's defaults, then one lever at a time.
DOC_SETS: dict[str, dict[str, str]] = {
    "chart defaults": {},
    "NodeLeaseStale off": {"node_lease_stale_enabled": "false"},
    "pod GC deletes the pods": {"delete_pods_after_taint": "false"},
    "Prometheus at 5 s / 5 s": {"kube_state_metrics_scrape_interval_s": "5s", "rule_evaluation_interval_s": "5s"},
    "Prometheus at 30 s / 30 s": {"kube_state_metrics_scrape_interval_s": "30s", "rule_evaluation_interval_s": "30s"},
    "NodeLeaseStale off, Prometheus at 30 s / 30 s": {"node_lease_stale_enabled": "false",
                                                      "kube_state_metrics_scrape_interval_s": "30s",
                                                      "rule_evaluation_interval_s": "30s"},
}
BEGIN, END = "<!-- timing model: begin (python -m core.timing docs) -->", "<!-- timing model: end -->"


def markdown() -> str:
    """The bounds with the shipped defaults, and the expected recovery timeline of each of
    DOC_SETS (earliest-latest in brackets), as Markdown tables."""
    from core.timing.inputs import with_overrides

    base = TimingInputs()
    rows = ["| bound | seconds |", "|---|---|"]
    rows += [f"| {name} | {value:g} |" for name, value in bounds(base).items()]
    sets = {name: predict(with_overrides(base, changes)) for name, changes in DOC_SETS.items()}
    rows += ["", "| milestone (s after the power-off) | " + " | ".join(sets) + " |",
             "|---|" + "---|" * len(sets)]
    for m in MILESTONES:
        rows.append(f"| {m} | " + " | ".join(
            f"{p.expected.at_s[m]:g} ({p.earliest.at_s[m]:g}-{p.latest.at_s[m]:g})" for p in sets.values()) + " |")
    return "\n".join([BEGIN, *rows, END])
