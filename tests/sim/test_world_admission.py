"""The DefaultTolerationSeconds admission plugin
(plugin/pkg/admission/defaulttolerationseconds/admission.go): a pod gets not-ready and
unreachable NoExecute tolerations of 300 s unless a toleration with that key (or no key)
and effect NoExecute (or no effect) already covers it."""

from __future__ import annotations

from typing import Any

from sim.apiserver.resources import ResourceType
from sim.world.workloads import default_tolerations

POD = ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",))


def admitted(tolerations: list[dict[str, Any]]) -> set[str]:
    pod: dict[str, Any] = {"spec": {"tolerations": [dict(t) for t in tolerations]}}
    default_tolerations("CREATE", POD, pod, None)
    return {t["key"] for t in pod["spec"]["tolerations"] if t.get("tolerationSeconds") == 300}


def test_defaults_are_added() -> None:
    assert admitted([]) == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def test_a_keyless_no_schedule_toleration_does_not_cover_the_defaults() -> None:
    assert admitted([{"operator": "Exists", "effect": "NoSchedule"}]) == {
        "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def test_a_keyless_toleration_of_every_effect_covers_both() -> None:
    assert admitted([{"operator": "Exists"}]) == set()
    assert admitted([{"operator": "Exists", "effect": "NoExecute"}]) == set()


def test_a_keyed_toleration_covers_only_its_key() -> None:
    assert admitted([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]) == {
        "node.kubernetes.io/not-ready"}
