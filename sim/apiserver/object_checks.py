"""What every client write goes through before it is stored: the body names the kind the
URL serves (`check_kind`), and the object passes validation (`validate`): the built-in
OpenAPI schemas and semantic checks, or the CRD's structural schema with pruning and
defaulting; unknown fields are a warning, or a 400 under `fieldValidation=Strict`.

Also the options a write carries (`WriteOptions`) and what it returns (`Result`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import crd as crds
from . import crd_rules, errors, events
from .resources import ResourceType
from .store import Entry
from .validation import BuiltinValidator, Cause, prune_paths, semantic_causes


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    validate: bool = True  # in-process cluster components skip schema validation
    user: Any = None  # the caller's Identity: a client's write goes through validating admission


@dataclass
class Result:
    entry: Entry
    obj: dict[str, Any]
    deleted: bool = False
    warnings: list[str] = field(default_factory=list)


INTERNAL = WriteOptions(validate=False)


def check_kind(rt: ResourceType, obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise errors.bad_request(f"the body of the request could not be decoded as a {rt.kind}")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if (api_version and api_version != rt.api_version) or (kind and kind != rt.kind):
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})" if api_version != rt.api_version else
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = {}
    elif not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    return obj


def validate(validator: BuiltinValidator, rt: ResourceType, obj: dict[str, Any],
             opts: WriteOptions, old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """`old`: the stored object an UPDATE replaces (a CRD's transition rules see it)."""
    if not opts.validate:
        return obj, []
    name = (obj.get("metadata") or {}).get("name", "")
    if rt.custom:
        obj, outcome = crds.check_custom(obj, rt.schema or {})
        if rt.schema:
            outcome.causes.extend(crd_rules.check(rt.schema, obj, *(() if old is None else (old,))))
    else:
        outcome = validator.check(obj)
        if outcome.decode_error:
            raise errors.bad_request(outcome.decode_error)
        outcome.causes.extend(semantic_causes(obj))
    if rt.group == "events.k8s.io":
        outcome.causes.extend(Cause(c["reason"], c["field"], c["message"])
                              for c in events.required_causes(obj))
    seen, causes = set(), []
    for c in outcome.causes:
        if (c.field, c.reason) not in seen:
            seen.add((c.field, c.reason))
            causes.append({"reason": c.reason, "message": c.message, "field": c.field})
    if causes:
        raise errors.invalid(rt.kind, rt.group, name, causes)
    warnings = []
    if outcome.unknown_fields:
        if opts.field_validation == "Strict":
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(
                    f'unknown field "{f}"' for f in outcome.unknown_fields))
        if not rt.custom:
            prune_paths(obj, outcome.unknown_paths)
        if opts.field_validation != "Ignore":
            warnings = [f'unknown field "{f}"' for f in outcome.unknown_fields]
    return obj, warnings
