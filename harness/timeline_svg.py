"""A timeline picture (SVG, no dependencies) of one recovery: the remediation's phases as
bands, and the milestones as ticks with labels, on an axis in real-cluster seconds."""

from __future__ import annotations

from html import escape

PHASE_COLOURS = {
    "Detection": "#eceff1",
    "Pending": "#cfd8dc", "AwaitingApproval": "#ffe082", "Confirming": "#90caf9", "Fencing": "#ef9a9a",
    "Fenced": "#ce93d8", "Recovering": "#a5d6a7", "AwaitingNodeReady": "#c5e1a5", "Succeeded": "#81c784",
    "Failed": "#e57373", "Cancelled": "#b0bec5",
}


def render(title: str, milestones: list[tuple[str, float]], phases: list[tuple[str, float, float]],
           scale: float, end_s: float) -> str:
    """milestones: (label, seconds since the fault); phases: (phase, start, end) in the
    same seconds. Drawn in real-cluster seconds (measured / scale)."""
    milestones = sorted(milestones, key=lambda m: m[1])
    width, left, right, top = 1000, 60, 30, 60
    bar_y, bar_h = top + 20, 26
    row_h = 22
    height = bar_y + bar_h + 40 + row_h * len(milestones) + 40
    span = max(end_s / scale, 1.0)

    def x(seconds: float) -> float:
        return left + (width - left - right) * (seconds / scale) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="28" font-size="16" font-weight="bold">{escape(title)}</text>']
    for phase, start, end in phases:
        colour = PHASE_COLOURS.get(phase, "#e0e0e0")
        out.append(f'<rect x="{x(start):.1f}" y="{bar_y}" width="{max(1.0, x(end) - x(start)):.1f}" '
                   f'height="{bar_h}" fill="{colour}" stroke="#607d8b" stroke-width="0.5"/>')
        if x(end) - x(start) > 55:
            out.append(f'<text x="{x(start) + 4:.1f}" y="{bar_y + 17}">{escape(phase)}</text>')
    axis_y = bar_y + bar_h + 18
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="black"/>')
    step = next(s for s in (10, 20, 30, 60, 120, 300, 600, 1200, 3600) if span / s <= 12)
    tick = 0.0
    while tick <= span:
        px = left + (width - left - right) * tick / span
        out.append(f'<line x1="{px:.1f}" y1="{axis_y - 4}" x2="{px:.1f}" y2="{axis_y + 4}" stroke="black"/>')
        out.append(f'<text x="{px:.1f}" y="{axis_y + 16}" text-anchor="middle">{tick:.0f}s</text>')
        tick += step
    for i, (label, at) in enumerate(milestones):
        y = axis_y + 34 + i * row_h
        px = x(at)
        out.append(f'<line x1="{px:.1f}" y1="{bar_y}" x2="{px:.1f}" y2="{y - 4}" stroke="#455a64" '
                   'stroke-dasharray="2,2" stroke-width="0.7"/>')
        out.append(f'<circle cx="{px:.1f}" cy="{y - 4}" r="3" fill="#263238"/>')
        anchor = "start" if px < width * 0.7 else "end"
        offset = 6 if anchor == "start" else -6
        out.append(f'<text x="{px + offset:.1f}" y="{y}" text-anchor="{anchor}">'
                   f'{escape(label)} ({at / scale:.0f}s)</text>')
    out.append(f'<text x="{left}" y="{height - 12}" fill="#546e7a">seconds of real-cluster time since the '
               f'fault (the run was scaled by {scale:g})</text>')
    out.append("</svg>")
    return "\n".join(out)
