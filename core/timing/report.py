"""The `what-if` report: the bounds and the expected recovery timeline as plain text, one
line per figure, so an operator can compare settings sets side by side (and a test can
compare the docs' tables with it)."""

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
