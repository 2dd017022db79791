"""What the plugin prints: kubectl-style tables, timelines and the explanation of a phase.

Pure functions from API objects (plain JSON dicts, as the API server sends them) and a
`now` (epoch seconds) to text, so every output is tested without a cluster:
- `table(headers, rows)`: upper-case headers, columns padded to their widest cell and
  separated by three spaces, no trailing blanks; an empty table prints the headers alone.
- `age(ts, now)`: kubectl's short ages (`45s`, `12m`, `5h`, `3d`); `<unknown>` for a
  missing or unreadable time.
- `history_entries(current, records)`: one entry per remediation of a node, newest
  first (the live NodeRemediation, then the archived NodeRemediationRecords), the shape
  `history -o json|yaml` prints.
- `explain(obj, now)`: why a remediation is in its phase: the phase, its reason and
  message, what happens next, the decision trail (`status.history`) and the facts behind
  it (approval, cancellation, fence evidence, recovery, escalation, alerts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core import history
from core.clock import parse_time
from core.remediation import Phase, needs_acknowledgement

JSON = dict[str, Any]
MESSAGE_WIDTH = 70
ANN_REQUESTED_BY = "nodewarden.io/requested-by"
ANN_APPROVED_BY = "nodewarden.io/approved-by"
ANN_CANCELLED_BY = "nodewarden.io/cancelled-by"
ANN_CANCEL_REASON = "nodewarden.io/cancel-reason"

# What happens next, by phase: the operator's question after "why".
NEXT: dict[str, str] = {
    Phase.PENDING: "the controller is about to check the node and order the fence",
    Phase.AWAITING_APPROVAL: "waits for a person: `kubectl nodewarden approve NODE` (or cancel)",
    Phase.CONFIRMING: "the controller is confirming the node is down before it orders a fence",
    Phase.FENCING: "a fence order is out; the node is assumed alive until the evidence proves it fenced",
    Phase.FENCED: "the node is proven fenced; workloads are recovered next",
    Phase.RECOVERING: "workloads are being recovered (out-of-service taint or deletions)",
    Phase.AWAITING_NODE_READY: "workloads are recovered; the taint is removed once the node is Ready again",
    Phase.SUCCEEDED: "finished: the node came back and the taint was removed",
    Phase.CANCELLED: "finished: cancelled before any fence order; nothing was done to the node",
    Phase.FAILED: "finished without recovery; read the reason and message",
    Phase.REJECTED: "finished: policy refused this kubectl request; nothing was done to the node",
}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def age(ts: Any, now: float) -> str:
    when = parse_time(ts)
    if when is None:
        return "<unknown>"
    seconds = max(0, int(now - when))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def short(text: Any, width: int = MESSAGE_WIDTH) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= width else s[: width - 3] + "..."


def _trigger(spec: JSON, annotations: JSON) -> str:
    trig = spec.get("trigger") or {}
    who = trig.get("requestedBy") or annotations.get(ANN_REQUESTED_BY) or trig.get("alertName") or ""
    source = str(trig.get("source") or "?")
    return f"{source}/{who}" if who else source


# -- status ---------------------------------------------------------------------------------

STATUS_HEADERS = ("node", "phase", "reason", "strategy", "trigger", "since", "message")


def status_rows(remediations: Sequence[JSON], now: float) -> list[list[str]]:
    rows = []
    for obj in sorted(remediations, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        phase = str(status.get("phase") or "<new>")
        if needs_acknowledgement(obj):
            phase += " (unacknowledged)"
        if spec.get("dryRun"):
            phase += " (dry run)"
        rows.append([str(meta.get("name")), phase, str(status.get("reason") or ""), str(spec.get("strategy") or ""),
                     _trigger(spec, meta.get("annotations") or {}),
                     age(status.get("phaseSince") or meta.get("creationTimestamp"), now),
                     short(status.get("message"), 60)])
    return rows


def status_text(remediations: Sequence[JSON], pause: tuple[bool, str] | None, now: float) -> str:
    if pause is None:
        head = "Pause switch: unknown (its ConfigMap could not be read)"
    elif pause[0]:
        head = f"Pause switch: ON - no new remediation starts ({pause[1] or 'no reason given'})"
    else:
        head = "Pause switch: off"
    if not remediations:
        return head + "\nNo NodeRemediations."
    return head + "\n\n" + table(STATUS_HEADERS, status_rows(remediations, now))


# -- history --------------------------------------------------------------------------------


def _entry(source: str, name: str, uid: str, created: str, spec: JSON, status: JSON,
           annotations: JSON, archived_at: str = "") -> JSON:
    return {"source": source, "name": name, "uid": uid, "createdAt": created, "archivedAt": archived_at,
            "phase": str(status.get("phase") or ""), "annotations": annotations, "spec": spec, "status": status}


def history_entries(current: JSON | None, records: Sequence[JSON]) -> list[JSON]:
    """Every remediation of a node, newest first: the live one, then the archive."""
    out = []
    if current is not None:
        meta = current.get("metadata") or {}
        out.append(_entry("current", str(meta.get("name")), str(meta.get("uid") or ""),
                          str(meta.get("creationTimestamp") or ""), current.get("spec") or {},
                          current.get("status") or {}, dict(meta.get("annotations") or {})))
    for rec in history.newest_first(list(records)):
        r = rec.get("remediation") or {}
        if current is not None and r.get("uid") == out[0]["uid"]:
            continue
        out.append(_entry("archive", str((rec.get("metadata") or {}).get("name")), str(r.get("uid") or ""),
                          str(r.get("createdAt") or ""), r.get("spec") or {}, r.get("status") or {},
                          dict(r.get("annotations") or {}), str(r.get("archivedAt") or "")))
    return out


def timeline(status: JSON) -> str:
    rows = [[str(h.get("at") or ""), str(h.get("phase") or ""), str(h.get("reason") or ""), short(h.get("message"))]
            for h in status.get("history") or []]
    return table(("at", "phase", "reason", "message"), rows)


def _people(spec: JSON, status: JSON, annotations: JSON) -> list[str]:
    out = []
    trig = spec.get("trigger") or {}
    requested = trig.get("requestedBy") or annotations.get(ANN_REQUESTED_BY)
    if requested:
        out.append(f"requested by {requested}" + (f': "{short(trig.get("reason"), 80)}"' if trig.get("reason") else ""))
    elif trig.get("alertName"):
        out.append(f"alert {trig.get('alertName')} (fingerprint {trig.get('fingerprint') or '?'})")
    approval = status.get("approval") or {}
    if approval.get("approvedBy") or annotations.get(ANN_APPROVED_BY):
        out.append(f"approved by {approval.get('approvedBy') or annotations.get(ANN_APPROVED_BY)}"
                   + (f" at {approval['approvedAt']}" if approval.get("approvedAt") else ""))
    cancel = status.get("cancellation") or {}
    if cancel.get("requestedBy") or annotations.get(ANN_CANCELLED_BY):
        who = cancel.get("requestedBy") or annotations.get(ANN_CANCELLED_BY)
        why = cancel.get("reason") or annotations.get(ANN_CANCEL_REASON) or ""
        out.append(f"cancelled by {who}" + (f": {short(why, 80)}" if why else ""))
    return out


def history_text(node: str, entries: Sequence[JSON]) -> str:
    if not entries:
        return f"No remediation of {node} on record."
    parts = [f"{node}: {len(entries)} remediation(s), newest first"]
    for e in entries:
        where = "current" if e["source"] == "current" else f"archived {e['archivedAt']} as {e['name']}"
        status, spec = e["status"], e["spec"]
        parts.append("")
        parts.append(f"* {e['uid'][:8] or '?'}  {e['phase'] or '<new>'}  created {e['createdAt'] or '?'}"
                     f"  strategy {spec.get('strategy') or '?'}  ({where})")
        for line in _people(spec, status, e["annotations"]):
            parts.append(f"  {line}")
        if status.get("history"):
            parts.append("  " + timeline(status).replace("\n", "\n  "))
    return "\n".join(parts)


# -- explain --------------------------------------------------------------------------------


def explain(obj: JSON, now: float) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    phase = str(status.get("phase") or "")
    lines = [
        f"Node:         {meta.get('name')}",
        f"Remediation:  uid {meta.get('uid')}, created {meta.get('creationTimestamp')}"
        f" ({age(meta.get('creationTimestamp'), now)} ago), trigger {_trigger(spec, meta.get('annotations') or {})}",
        f"Plan:         strategy {spec.get('strategy') or '?'}, escalation {spec.get('escalation') or '?'}, "
        f"policy group {spec.get('policyGroup') or '?'}"
        + (", approval required" if spec.get("approvalRequired") else "")
        + (", DRY RUN (nothing is done)" if spec.get("dryRun") else "")
        + (", FORCED (the node may still be Ready)" if spec.get("force") else ""),
    ]
    if not phase:
        lines.append("Phase:        <none yet> - the webhook has not written the status (it completes it on its next write)")
    else:
        lines.append(f"Phase:        {phase} since {status.get('phaseSince')} ({age(status.get('phaseSince'), now)})")
        lines.append(f"Why:          {status.get('reason') or '?'}: {status.get('message') or ''}")
        lines.append(f"Next:         {NEXT.get(phase, 'unknown phase')}")
    if needs_acknowledgement(obj):
        lines.append("ATTENTION:    the fence was not observed; the node may have run its workloads twice. "
                     "Check, then acknowledge: kubectl annotate nrem "
                     f"{meta.get('name')} nodewarden.io/acknowledged='<who: what was checked>'")
    for line in _people(spec, status, meta.get("annotations") or {}):
        lines.append(f"Who:          {line}")
    fence = status.get("fence") or {}
    if fence:
        lines.append(f"Fence:        order issued {fence.get('issuedAt') or '-'}, action {fence.get('action') or '-'}")
        evidence = fence.get("evidence") or {}
        if evidence:
            inputs = ", ".join(f"{k}={v}" for k, v in sorted((evidence.get("inputs") or {}).items()))
            lines.append(f"Evidence:     rule {evidence.get('rule')}, satisfied {evidence.get('satisfiedAt') or 'not yet'}"
                         f", deadline {evidence.get('deadline') or '-'}" + (f" ({inputs})" if inputs else ""))
        refusal = fence.get("refusal") or {}
        if refusal:
            lines.append(f"Refused:      {refusal.get('reason')} at {refusal.get('at')} via {refusal.get('via')}")
    escalation = status.get("escalation") or {}
    if escalation:
        lines.append(f"Escalation:   {escalation.get('kind')} ({escalation.get('cause') or ''}"
                     f"{': ' + short(escalation.get('causeMessage'), 80) if escalation.get('causeMessage') else ''})")
    recovery = status.get("recovery") or {}
    if recovery:
        lines.append(f"Recovery:     {recovery.get('strategy')}, taint applied {recovery.get('taintAppliedAt') or '-'}, "
                     f"removed {recovery.get('taintRemovedAt') or '-'}")
    alerts = status.get("alerts") or []
    if alerts:
        lines.append("Alerts:       " + "; ".join(
            f"{a.get('alertName')} {a.get('status')} x{a.get('count', 1)}" for a in alerts[-5:]))
    lines.append("")
    lines.append("Decision trail (status.history, oldest first):")
    lines.append("  " + timeline(status).replace("\n", "\n  ") if status.get("history") else "  (empty)")
    return "\n".join(lines)
