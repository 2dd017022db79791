"""CustomResourceDefinition validation rules (`x-kubernetes-validations`), evaluated with CEL
as kube-apiserver does (apiextensions-apiserver, pkg/apiserver/schema/cel).

Each rule sits on a schema node and sees that node's value as `self`. A rule that names
`oldSelf` is a transition rule: it runs only on an UPDATE where the old object has the
node too (never on CREATE), with `oldSelf` the old value. A rule that evaluates to false
is a `FieldValueInvalid` cause at the node's path with the rule's `message` (or
`failed rule: <rule>`), and the write is refused 422 Invalid.

Walked: `properties` of objects present in the new object (and the old one, for
`oldSelf`). Not walked (the simulator's schemas do not use them yet): rules under `items`
and `additionalProperties`, `messageExpression`, `fieldPath`, `optionalOldSelf`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import celpy

from .validation import Cause

_MISSING = object()


@lru_cache(maxsize=256)
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def check(schema: dict[str, Any], new: Any, old: Any = _MISSING) -> list[Cause]:
    """The causes of every rule of `schema` that `new` (updating `old`, if given) fails."""
    causes: list[Cause] = []
    _walk(schema, new, old, [], causes)
    return causes


def _walk(schema: dict[str, Any], new: Any, old: Any, path: list[str], causes: list[Cause]) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        text = str(rule.get("rule") or "")
        transition = "oldSelf" in text
        if transition and old is _MISSING:
            continue
        activation = {"self": celpy.json_to_cel(new)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            result = _program(text).evaluate(activation)
        except Exception as exc:  # a rule that cannot run refuses the write
            result = exc
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            message = rule.get("message") or f"failed rule: {text}"
            if not isinstance(result, celpy.celtypes.BoolType):
                message = f"{message} (the rule could not be evaluated: {result})"
            kind = schema.get("type") or "object"
            causes.append(Cause("FieldValueInvalid", ".".join(path), f'Invalid value: "{kind}": {message}'))
    if not isinstance(new, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if key in new:
            old_value = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            _walk(sub, new[key], old_value, [*path, key], causes)
