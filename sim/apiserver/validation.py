"""Validation on write, as the real API server does it.

Built-in kinds are checked against the real Kubernetes OpenAPI schemas shipped by
`kubernetes-validate` (strict variants, so unknown fields are found). Like the real
server: a value of the wrong JSON type is a 400 (the object cannot be decoded), a missing
or unsupported value is a 422 Invalid with one cause per field, and unknown fields are
dropped with a warning — or refused (400) when the client asked `fieldValidation=Strict`.

Custom resources are checked, defaulted and pruned against the CRD's structural
openAPIV3Schema by `check_custom`: fields the schema does not declare are removed unless
a parent sets `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.32"
_SCHEMA_DIR = f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict"


@dataclass
class Cause:
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    field: str
    message: str


@dataclass
class Outcome:
    """What validation found. `decode_error` means 400; `causes` mean 422."""

    decode_error: str | None = None
    causes: list[Cause] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)
    unknown_paths: list[list[Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.decode_error is None and not self.causes


def field_path(parts: Any) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


class BuiltinValidator:
    """Caches one compiled schema per kind; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._validators: dict[tuple[str, str], Any] = {}
        self._registry: Registry | None = None

    def _validator(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        with self._lock:
            if key in self._validators:
                return self._validators[key]
            if self._registry is None:
                defs = kv.schema_contents(f"{_SCHEMA_DIR}/_definitions.json", KUBERNETES_VERSION)
                self._registry = Resource.from_contents(defs) @ Registry()
            group_prefix = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = kv.schema_contents(
                    f"{_SCHEMA_DIR}/{kind.lower()}-{group_prefix}.json", KUBERNETES_VERSION
                )
            except FileNotFoundError:
                self._validators[key] = None
                return None
            registry = Resource.from_contents(schema) @ self._registry
            validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
            self._validators[key] = validator
            return validator

    def check(self, obj: dict[str, Any]) -> Outcome:
        outcome = Outcome()
        validator = self._validator(str(obj.get("apiVersion")), str(obj.get("kind")))
        if validator is None:
            return outcome
        for error in validator.iter_errors(obj):
            _classify(error, outcome, obj.get("kind", "Object"))
        return outcome


def _classify(error: jsonschema.ValidationError, outcome: Outcome, kind: str) -> None:
    path = list(error.absolute_path)
    where = field_path(path)
    if error.validator == "additionalProperties":
        declared = set(error.schema.get("properties", {}))
        instance = error.instance if isinstance(error.instance, dict) else {}
        for name in sorted(set(instance) - declared):
            outcome.unknown_fields.append(field_path([*path, name]))
            outcome.unknown_paths.append([*path, name])
        return
    if error.validator == "type":
        if outcome.decode_error is None:
            expected = error.validator_value
            got = type(error.instance).__name__.replace("dict", "object").replace(
                "str", "string").replace("NoneType", "null").replace("list", "array")
            outcome.decode_error = (
                f"{kind} in version \"v1\" cannot be handled as a {kind}: json: cannot "
                f"unmarshal {got} into Go struct field {where} of type {expected}"
            )
        return
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        for name in missing or ["?"]:
            outcome.causes.append(Cause("FieldValueRequired", field_path([*path, name]),
                                        "Required value"))
        return
    if error.validator == "enum":
        supported = ", ".join(f'"{v}"' for v in error.validator_value)
        outcome.causes.append(Cause("FieldValueNotSupported", where,
                                    f'Unsupported value: "{error.instance}": supported values: {supported}'))
        return
    if error.validator in ("anyOf", "oneOf"):
        # int-or-string style: a null where a value is needed is a decode error in Go
        outcome.causes.append(Cause("FieldValueInvalid", where,
                                    f"Invalid value: {error.instance!r}: {error.message}"))
        return
    outcome.causes.append(Cause("FieldValueInvalid", where,
                                f"Invalid value: {error.instance!r}: {error.message}"))


# --- semantic checks the schemas cannot express -----------------------------------------

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_NAME_KINDS = {"Namespace", "Service"}
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _valid_qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def semantic_causes(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    kind = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if name:
        pattern = _DNS1123_LABEL if kind in _LABEL_NAME_KINDS else _DNS1123_SUBDOMAIN
        limit = 63 if kind in _LABEL_NAME_KINDS else 253
        if len(name) > limit or not pattern.match(name):
            causes.append(Cause("FieldValueInvalid", "metadata.name",
                                f'Invalid value: "{name}": a lowercase RFC 1123 '
                                f"{'label' if limit == 63 else 'subdomain'} must consist of lower "
                                "case alphanumeric characters, '-' or '.', and must start and end "
                                "with an alphanumeric character"))
    for key, value in (meta.get("labels") or {}).items():
        if not _valid_qualified_name(str(key)):
            causes.append(Cause("FieldValueInvalid", "metadata.labels",
                                f'Invalid value: "{key}": name part must consist of alphanumeric '
                                "characters, '-', '_' or '.'"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(Cause("FieldValueInvalid", "metadata.labels",
                                f'Invalid value: "{value}": a valid label must be an empty string '
                                "or consist of alphanumeric characters, '-', '_' or '.'"))
    for key in (meta.get("annotations") or {}):
        if not _valid_qualified_name(str(key)):
            causes.append(Cause("FieldValueInvalid", "metadata.annotations",
                                f'Invalid value: "{key}": name part must consist of alphanumeric '
                                "characters, '-', '_' or '.'"))
    if kind == "Node":
        taints = ((obj.get("spec") or {}).get("taints")) or []
        seen = set()
        for i, taint in enumerate(taints):
            if not isinstance(taint, dict):
                continue
            effect = taint.get("effect")
            if effect not in _TAINT_EFFECTS:
                causes.append(Cause("FieldValueNotSupported", f"spec.taints[{i}].effect",
                                    f'Unsupported value: "{effect}": supported values: '
                                    '"NoSchedule", "PreferNoSchedule", "NoExecute"'))
            key = str(taint.get("key", ""))
            if not _valid_qualified_name(key):
                causes.append(Cause("FieldValueInvalid", f"spec.taints[{i}].key",
                                    f'Invalid value: "{key}": name part must consist of '
                                    "alphanumeric characters, '-', '_' or '.'"))
            if (key, effect) in seen:
                causes.append(Cause("FieldValueDuplicate", f"spec.taints[{i}]",
                                    f'Duplicate value: "{key}:{effect}"'))
            seen.add((key, effect))
    return causes


def prune_paths(obj: Any, paths: list[list[Any]]) -> None:
    """Remove each path (a list of keys and indices) from obj, in place."""
    for path in sorted(paths, key=len, reverse=True):
        cur = obj
        for part in path[:-1]:
            try:
                cur = cur[part]
            except (KeyError, IndexError, TypeError):
                cur = None
                break
        if isinstance(cur, dict):
            cur.pop(path[-1], None)
