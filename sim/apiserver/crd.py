"""CustomResourceDefinitions: turning a CRD into served resource types, and checking,
defaulting and pruning custom objects against its structural openAPIV3Schema.

Pruning is what a real API server does and what catches a controller storing a field
its CRD does not declare: such fields silently disappear, in the simulator as in a real
cluster. Subtrees under `x-kubernetes-preserve-unknown-fields: true` are kept.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .resources import ResourceType
from .validation import Cause, Outcome, field_path


def resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
        out.append(ResourceType(
            group=spec.get("group", ""),
            version=version.get("name", ""),
            plural=names.get("plural", ""),
            kind=names.get("kind", ""),
            namespaced=spec.get("scope") == "Namespaced",
            singular=names.get("singular", "") or names.get("kind", "").lower(),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status_subresource="status" in (version.get("subresources") or {}),
            field_labels=tuple(f.get("jsonPath", "").lstrip(".")
                               for f in version.get("selectableFields") or []),
            custom=True,
            schema=schema,
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
        ))
    return out


def established_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now},
    ]
    stored = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    return {"conditions": conditions, "acceptedNames": names, "storedVersions": stored}


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float),
}


def check_custom(obj: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
    """Return (pruned and defaulted copy of obj, outcome)."""
    outcome = Outcome()
    result = copy.deepcopy(obj)
    if not schema:
        return result, outcome
    props = schema.get("properties") or {}
    for key in list(result):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key not in props and not schema.get("x-kubernetes-preserve-unknown-fields"):
            outcome.unknown_fields.append(key)
            del result[key]
            continue
        if key in props:
            result[key] = _walk(result[key], props[key], [key], outcome)
    for key, sub in props.items():
        if key not in result and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
    for req in schema.get("required") or []:
        if req not in result:
            outcome.causes.append(Cause("FieldValueRequired", req, "Required value"))
    return result, outcome


def _type_ok(value: Any, schema: dict[str, Any]) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    tp = schema.get("type")
    if not tp:
        return True
    expected = _JSON_TYPES.get(tp)
    if expected is None:
        return True
    if isinstance(value, bool) and tp in ("integer", "number"):
        return False
    if tp == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, expected)


def _walk(value: Any, schema: dict[str, Any], path: list[Any], outcome: Outcome) -> Any:
    where = field_path(path)
    if not _type_ok(value, schema):
        outcome.causes.append(Cause(
            "FieldValueTypeInvalid", where,
            f'Invalid value: "{_json_type(value)}": {where} in body must be of type '
            f'{schema.get("type")}: "{_json_type(value)}"'))
        return value
    if value is None:
        return value
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(f'"{v}"' for v in schema["enum"])
        outcome.causes.append(Cause("FieldValueNotSupported", where,
                                    f'Unsupported value: "{value}": supported values: {supported}'))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            outcome.causes.append(Cause("FieldValueInvalid", where,
                                        f'Invalid value: "{value}": {where} in body should match '
                                        f"'{schema['pattern']}'"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            outcome.causes.append(Cause("FieldValueTooLong", where,
                                        f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            outcome.causes.append(Cause("FieldValueInvalid", where,
                                        f"Invalid value: \"{value}\": {where} in body should be at "
                                        f"least {schema['minLength']} chars long"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            outcome.causes.append(Cause("FieldValueInvalid", where,
                                        f"Invalid value: {value}: {where} in body should be greater "
                                        f"than or equal to {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            outcome.causes.append(Cause("FieldValueInvalid", where,
                                        f"Invalid value: {value}: {where} in body should be less "
                                        f"than or equal to {schema['maximum']}"))
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            outcome.causes.append(Cause("FieldValueTooMany", where,
                                        f"Too many: {len(value)}: must have at most "
                                        f"{schema['maxItems']} items"))
        items = schema.get("items")
        if isinstance(items, dict):
            return [_walk(v, items, [*path, i], outcome) for i, v in enumerate(value)]
        return value
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource") or (
            schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties")
            and not schema.get("additionalProperties")
        ):
            return value
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        out = {}
        for key, sub in value.items():
            if props and key in props:
                out[key] = _walk(sub, props[key], [*path, key], outcome)
            elif isinstance(additional, dict):
                out[key] = _walk(sub, additional, [*path, key], outcome)
            elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = sub
            else:
                outcome.unknown_fields.append(field_path([*path, key]))
        for key, sub in (props or {}).items():
            if key not in out and isinstance(sub, dict) and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        for req in schema.get("required") or []:
            if req not in out:
                outcome.causes.append(Cause("FieldValueRequired", field_path([*path, req]),
                                            "Required value"))
        return out
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
