"""The component schemas of the OpenAPI v3 documents (`kubectl explain` reads them):

- built-in kinds: Kubernetes' own definitions with their descriptions, list and patch
  extensions and `x-kubernetes-group-version-kind`, read from the JSON Schema copy that
  `kubernetes-validate` ships for the served version (the one validation uses), turned
  back into OpenAPI v3: `#/components/schemas/` references (wrapped in `allOf` when the
  reference carries its own description, as kube-openapi writes them), one type instead
  of `[type, "null"]`, `int-or-string` and Quantity as the strings they are on the wire,
  no `enum` on apiVersion and kind;
- custom kinds: the CRD's `openAPIV3Schema` as kube-apiserver publishes it
  (`<reversed group>.<version>.<Kind>`, with apiVersion, kind and metadata filled in);

each document holding exactly the schemas its kinds reach.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import kubernetes_validate.utils as kv

from .resources import ResourceType
from .validation import KUBERNETES_VERSION

_DEFINITIONS = f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local/_definitions.json"
_REF = "#/components/schemas/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_AS_STRING = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}
_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers "
                    "should convert recognized schemas to the latest internal value, and may reject "
                    "unrecognized values. More info: https://git.k8s.io/community/contributors/devel/"
                    "sig-architecture/api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers "
             "may infer this from the endpoint the client submits requests to. Cannot be updated. In "
             "CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
             "api-conventions.md#types-kinds")
_META_DOC = ("Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/"
             "sig-architecture/api-conventions.md#metadata")

_lock = threading.Lock()
_builtin: dict[str, Any] | None = None
_by_gvk: dict[tuple[str, str, str], str] = {}


def builtin() -> dict[str, Any]:
    """Every built-in definition, converted once (name -> OpenAPI v3 schema)."""
    global _builtin
    with _lock:
        if _builtin is None:
            defs = kv.schema_contents(_DEFINITIONS, KUBERNETES_VERSION)["$defs"]
            converted = {}
            for name, schema in defs.items():
                converted[name] = copy.deepcopy(_AS_STRING[name]) if name in _AS_STRING else _convert(schema)
                for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                    _by_gvk[(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))] = name
            _builtin = converted
        return _builtin


def schemas_for(types: list[ResourceType]) -> dict[str, Any]:
    """The component schemas a group-version document serving `types` holds."""
    defs = builtin()
    roots: dict[str, Any] = {}
    for rt in types:
        if rt.custom:
            roots[custom_name(rt)] = custom_schema(rt)
        elif (name := _by_gvk.get((rt.group, rt.version, rt.kind))) is not None:
            roots[name] = defs[name]
    out: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in out:
            continue
        schema = roots.get(name) or defs.get(name)
        if schema is None:
            continue
        out[name] = schema
        pending.extend(_refs(schema))
    return dict(sorted(out.items()))


def custom_name(rt: ResourceType) -> str:
    return ".".join([*reversed(rt.group.split(".")), rt.version, rt.kind])


def custom_schema(rt: ResourceType) -> dict[str, Any]:
    schema = copy.deepcopy(rt.schema or {})
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"description": _API_VERSION_DOC, "type": "string"}
    props["kind"] = {"description": _KIND_DOC, "type": "string"}
    props["metadata"] = {"allOf": [{"$ref": _REF + OBJECT_META}], "description": _META_DOC}
    schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
    return schema


def _convert(node: Any, key: str = "") -> Any:
    if isinstance(node, list):
        return [_convert(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "$ref":
            out[k] = _REF + str(v).rsplit("/", 1)[-1]
        elif k == "type" and isinstance(v, list):
            out[k] = next((t for t in v if t != "null"), "string")
        elif k == "enum" and key in ("apiVersion", "kind"):
            continue
        elif k == "oneOf" and all(isinstance(o, dict) and "type" in o for o in v):
            out.setdefault("type", _convert(v[0])["type"])
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: _convert(sub, name) for name, sub in v.items()}
        else:
            out[k] = _convert(v)
    if "$ref" in out and len(out) > 1:
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF):
                found.append(ref[len(_REF):])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
