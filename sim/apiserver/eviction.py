"""The pod eviction subresource (`POST .../pods/<name>/eviction`, a policy/v1 Eviction),
following kube-apiserver's pkg/registry/core/pod/storage/eviction.go:

- the Eviction must name the pod of the URL (400); a `dryRun` on the request and in its
  deleteOptions must agree (400);
- a pod that is terminal (Succeeded, Failed), Pending or already terminating is deleted
  without looking at any PodDisruptionBudget;
- otherwise the budgets of the pod's namespace whose (non-empty) selector matches its
  labels are read: more than one is a 500 Status; none: the pod is deleted;
- an unready pod is deleted without spending the budget when the budget is already met
  (currentHealthy >= desiredHealthy > 0), with a resourceVersion precondition;
- otherwise the budget must have been observed by the disruption controller at its
  generation (else 429 "still being processed"), must not be negative (403) nor hold more
  than 2000 unconfirmed disruptions (403), and must allow a disruption (429 when
  `disruptionsAllowed` is 0: "Cannot evict pod as it would violate the pod's disruption
  budget."). It is then spent: `disruptionsAllowed` decremented, the pod recorded in
  `disruptedPods`, the `DisruptionAllowed` condition set False at 0, written to the
  budget's status before the pod is deleted (gracefully, with the Eviction's
  deleteOptions).

The whole check-and-spend runs under the store lock, so the real server's retries on
conflicting budget writes are never needed here. Answers `Success` with 201.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..timefmt import rfc3339
from . import errors
from .registry import INTERNAL, Registry
from .resources import ResourceType
from .selectors import label_selector_requirements

MAX_DISRUPTED_POD_SIZE = 2000
API_VERSIONS = ("policy/v1", "policy/v1beta1")
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def evict(registry: Registry, namespace: str, name: str, eviction: Any, dry_run_query: list[str],
          clock: Callable[[], float]) -> tuple[int, dict[str, Any]]:
    """Evict pod `namespace/name` as the Eviction asks; (HTTP code, Status body)."""
    if not isinstance(eviction, dict) or eviction.get("kind", "Eviction") != "Eviction" or (
            eviction.get("apiVersion") and eviction["apiVersion"] not in API_VERSIONS):
        raise errors.bad_request(f"not a Eviction object: {type(eviction).__name__}")
    if (eviction.get("metadata") or {}).get("name") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = dict(eviction.get("deleteOptions") or {})
    options["dryRun"] = _dry_run(options.get("dryRun") or [], dry_run_query)
    pods = _type(registry, "", "pods")
    budgets = _type(registry, "policy", "poddisruptionbudgets")
    with registry.store.lock:
        pod = registry.get_obj(pods, namespace, name)
        if can_ignore_budget(pod):
            _delete(registry, pods, namespace, name, options)
            return 201, SUCCESS
        matching = [b for b in registry.list_objs(budgets, namespace) if selects(b, pod)]
        if len(matching) > 1:
            return 500, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": "This pod has more than one PodDisruptionBudget, which the "
                                    "eviction subresource does not support.", "code": 500}
        if matching:
            budget = matching[0]
            status = budget.get("status") or {}
            if not pod_ready(pod) and status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0:
                # Not spending the budget: the pod must not have turned Ready meanwhile.
                pre = dict(options.get("preconditions") or {})
                pre.setdefault("resourceVersion", pod["metadata"].get("resourceVersion"))
                options["preconditions"] = pre
            else:
                spent = check_and_decrement(budget, name, bool(options["dryRun"]), clock())
                if not options["dryRun"]:
                    registry.update(budgets, namespace, budget["metadata"]["name"], spent, "status", INTERNAL)
        _delete(registry, pods, namespace, name, options)
    return 201, SUCCESS


def can_ignore_budget(pod: dict[str, Any]) -> bool:
    """canIgnorePDB: evicting such a pod disrupts nothing more than it already has."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def selects(budget: dict[str, Any], pod: dict[str, Any]) -> bool:
    """A budget in the pod's namespace whose selector matches its labels; a missing or
    empty selector matches nothing, an invalid one does not match."""
    if budget["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    reqs = label_selector_requirements((budget.get("spec") or {}).get("selector"))
    if not reqs:
        return False
    labels = pod["metadata"].get("labels") or {}
    return all(r.matches(labels) for r in reqs)


def check_and_decrement(budget: dict[str, Any], pod_name: str, dry_run: bool, now: float) -> dict[str, Any]:
    """checkAndDecrement: the budget with one disruption spent on `pod_name`, or the
    429/403 a real server answers when it cannot be spent."""
    meta, status = budget["metadata"], dict(budget.get("status") or {})
    name = meta["name"]
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        raise too_many_requests(f"The disruption budget {name} is still being processed by the server.", 10)
    allowed = int(status.get("disruptionsAllowed", 0))
    if allowed < 0:
        raise _forbidden(name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
        raise _forbidden(name, "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise too_many_requests(f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} "
                                f"healthy pods and has {status.get('currentHealthy', 0)} currently", 0)
    status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        status["conditions"] = _disruption_allowed_false(status, now)
    if not dry_run:
        status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: rfc3339(now)}
    return {**budget, "status": status}


def too_many_requests(cause: str, retry_after_s: int) -> errors.ApiError:
    details: dict[str, Any] = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    if retry_after_s:
        details["retryAfterSeconds"] = retry_after_s
    return errors.ApiError(429, "TooManyRequests", VIOLATION, details)


def _forbidden(name: str, why: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'poddisruptionbudget.policy "{name}" is forbidden: {why}',
                           {"name": name, "group": "policy", "kind": "poddisruptionbudget"})


def _disruption_allowed_false(status: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """UpdateDisruptionAllowedCondition (component-helpers) at zero allowed disruptions."""
    conditions = [dict(c) for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == "False" else rfc3339(now)
    conditions.append({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                       "message": "", "observedGeneration": status.get("observedGeneration", 0),
                       "lastTransitionTime": since})
    return conditions


def _dry_run(in_body: list[str], in_query: list[str]) -> list[str]:
    if in_body and in_query and list(in_body) != list(in_query):
        raise errors.bad_request(f"Non-matching dry-run options in request and content: "
                                 f"{list(in_query)} and {list(in_body)}")
    return list(in_body or in_query)


def _delete(registry: Registry, pods: ResourceType, namespace: str, name: str, options: dict[str, Any]) -> None:
    grace = options.get("gracePeriodSeconds")
    try:
        grace = None if grace is None else int(grace)
    except (TypeError, ValueError):
        raise errors.bad_request(f"invalid gracePeriodSeconds: {grace}") from None
    registry.delete(pods, namespace, name, grace, options.get("preconditions"), bool(options["dryRun"]))


def _type(registry: Registry, group: str, plural: str) -> ResourceType:
    rt = registry.types.lookup(group, "v1", plural)
    assert rt is not None, plural
    return rt
