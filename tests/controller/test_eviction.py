"""Which pods the controller deletes after the out-of-service taint: exactly those
Kubernetes' taint eviction would (k8s.io/api/core/v1 Toleration.ToleratesTaint)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.eviction import evicted_by_out_of_service, tolerates

KEY, VALUE, EFFECT = "node.kubernetes.io/out-of-service", "nodeshutdown", "NoExecute"


def pod(*tolerations: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"tolerations": list(tolerations)}}


@pytest.mark.parametrize(("toleration", "expected"), [
    ({"operator": "Exists"}, True),  # tolerates everything
    ({"operator": "Exists", "effect": "NoSchedule"}, False),  # another effect
    ({"key": KEY, "operator": "Exists"}, True),
    ({"key": KEY, "operator": "Exists", "effect": EFFECT}, True),
    ({"key": KEY, "value": VALUE}, True),  # Equal is the default operator
    ({"key": KEY, "operator": "Equal", "value": "other"}, False),
    ({"key": KEY, "operator": "Equal"}, False),  # value "" against "nodeshutdown"
    ({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": EFFECT}, False),
    ({"key": "", "operator": "Equal"}, False),  # an empty key only goes with Exists
    ({"key": KEY, "operator": "Gt", "value": VALUE}, False),
])
def test_toleration_matching_follows_kubernetes(toleration: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, KEY, VALUE, EFFECT) is expected


def test_a_pod_without_a_matching_toleration_is_evicted() -> None:
    # The defaults every pod gets (DefaultTolerationSeconds) do not cover out-of-service.
    defaults = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": EFFECT,
                 "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": EFFECT,
                 "tolerationSeconds": 300}]
    assert evicted_by_out_of_service(pod(*defaults))
    assert evicted_by_out_of_service({"metadata": {"name": "bare"}, "spec": {}})


def test_a_pod_that_tolerates_the_taint_stays_even_for_a_while() -> None:
    assert not evicted_by_out_of_service(pod({"key": KEY, "operator": "Exists"}))
    # tolerationSeconds: Kubernetes evicts it once they pass; the controller leaves it to it.
    assert not evicted_by_out_of_service(pod({"key": KEY, "operator": "Exists", "tolerationSeconds": 30}))
