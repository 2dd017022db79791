"""CRD validation rules as kube-apiserver evaluates them (sim/apiserver/crd_rules.py)."""

from __future__ import annotations

from sim.apiserver import crd_rules

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec is immutable"}],
            "properties": {
                "replicas": {"type": "integer",
                             "x-kubernetes-validations": [{"rule": "self >= 0"}]},
            },
        },
    },
}


def test_a_transition_rule_does_not_run_on_create_and_refuses_a_change_on_update() -> None:
    assert crd_rules.check(SCHEMA, {"spec": {"replicas": 1}}) == []
    same = crd_rules.check(SCHEMA, {"spec": {"replicas": 1}}, {"spec": {"replicas": 1}})
    assert same == []
    changed = crd_rules.check(SCHEMA, {"spec": {"replicas": 2}}, {"spec": {"replicas": 1}})
    assert [(c.field, c.message) for c in changed] == [("spec", 'Invalid value: "object": spec is immutable')]


def test_a_rule_on_self_alone_runs_on_create_too_and_names_itself_without_a_message() -> None:
    causes = crd_rules.check(SCHEMA, {"spec": {"replicas": -1}})
    assert [(c.reason, c.field, c.message) for c in causes] == [
        ("FieldValueInvalid", "spec.replicas", 'Invalid value: "integer": failed rule: self >= 0')]


def test_a_field_new_in_the_update_is_not_held_to_a_transition_rule() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string",
              "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}
    assert crd_rules.check(schema, {"x": "a"}, {}) == []
    assert len(crd_rules.check(schema, {"x": "a"}, {"x": "b"})) == 1
