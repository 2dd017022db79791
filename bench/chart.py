"""The time-to-recovery chart (SVG): nodewarden against the baselines, from
bench/results/recovery.json."""

from __future__ import annotations

from html import escape
from typing import Any


def recovery_chart(data: dict[str, Any]) -> str:
    rows: list[tuple[str, float | None, str]] = [
        ("nodewarden (median of trials)", data.get("nodewarden_median_s"), "#43a047"),
        ("medik8s defaults (emulated)", (data.get("medik8s_emulated") or {}).get("recovered_s"), "#fb8c00"),
        ("Kubernetes alone", (data.get("kubernetes_alone") or {}).get("recovered_s"), "#e53935"),
    ]
    bound = float((data.get("kubernetes_alone") or {}).get("bound_s") or 900)
    top = max([bound] + [v for _, v, _ in rows if v is not None])
    width, left, bar_h, gap = 900, 230, 34, 22
    height = 70 + len(rows) * (bar_h + gap) + 40
    scale = (width - left - 240) / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="13">', f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="20" y="30" font-size="16" font-weight="bold">Power-off to the StatefulSet pod Running '
           'elsewhere (real-cluster seconds)</text>']
    for i, (label, value, colour) in enumerate(rows):
        y = 60 + i * (bar_h + gap)
        out.append(f'<text x="20" y="{y + bar_h * 0.65:.0f}">{escape(label)}</text>')
        shown = value if value is not None else bound
        fill = colour if value is not None else "url(#never)"
        out.append(f'<rect x="{left}" y="{y}" width="{shown * scale:.1f}" height="{bar_h}" fill="{fill}" '
                   f'stroke="{colour}"/>')
        text = f"{value:.0f} s" if value is not None else f"never (not within {bound:.0f} s)"
        out.append(f'<text x="{left + shown * scale + 8:.1f}" y="{y + bar_h * 0.65:.0f}">{escape(text)}</text>')
    speedup = data.get("speedup_vs_medik8s")
    if speedup:
        out.append(f'<text x="20" y="{height - 18}" fill="#37474f">nodewarden is {speedup:.1f}x faster than '
                   f'medik8s\' defaults, with {data.get("nodewarden_violations", 0)} invariant violations '
                   f'(time scale {data.get("time_scale")})</text>')
    out.insert(2, '<defs><pattern id="never" width="8" height="8" patternUnits="userSpaceOnUse" '
                  'patternTransform="rotate(45)"><rect width="4" height="8" fill="#ef9a9a"/></pattern></defs>')
    out.append("</svg>")
    return "\n".join(out)
