"""Taints and tolerations, matched as the scheduler and the taint-eviction controller
match them."""

from __future__ import annotations

from typing import Any


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if toleration.get("operator", "Equal") == "Exists":
        return key == "" or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(taints: list[dict[str, Any]], tolerations: list[dict[str, Any]],
                effects: tuple[str, ...]) -> list[dict[str, Any]]:
    return [t for t in taints if t.get("effect") in effects
            and not any(tolerates(tol, t) for tol in tolerations)]


def eviction_delay_s(taints: list[dict[str, Any]], tolerations: list[dict[str, Any]]) -> float | None:
    """Real seconds after which a pod must leave a node with these NoExecute taints, as the
    taint-eviction controller computes it: 0 when any taint is not tolerated; otherwise the
    smallest tolerationSeconds among the matching tolerations; None (never) when none of
    them sets tolerationSeconds."""
    matched: list[dict[str, Any]] = []
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [tol for tol in tolerations if tolerates(tol, taint)]
        if not matching:
            return 0.0
        matched.extend(matching)
    seconds = [float(tol["tolerationSeconds"]) for tol in matched
               if tol.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    return max(0.0, min(seconds))
