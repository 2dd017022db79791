"""The three PATCH content types, with the semantics the real API server gives them.

- application/merge-patch+json: RFC 7386 (maps merge, null deletes, lists replace).
- application/json-patch+json: RFC 6902 operations on JSON pointers.
- application/strategic-merge-patch+json: maps merge; lists merge by their merge key
  where Kubernetes declares one (status.conditions by `type`, containers by `name`,
  ownerReferences by `uid`), primitive lists with strategy merge are unioned
  (finalizers), and every other list — spec.taints and spec.tolerations included — is
  atomic and replaced whole. Directives `$patch` (replace/delete/merge), `$retainKeys`,
  `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (422 Invalid, or 400 for a malformed document)."""

    def __init__(self, message: str, bad_request: bool = False) -> None:
        super().__init__(message)
        self.bad_request = bad_request


# --- RFC 7386 ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 ---------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve_parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, dict):
            if part not in cur:
                raise PatchError(f"path {path!r} does not exist")
            cur = cur[part]
        elif isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                raise PatchError(f"path {path!r} does not exist") from None
        else:
            raise PatchError(f"path {path!r} does not exist")
    return cur, parts[-1]


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for part in _pointer(path):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise PatchError(f"invalid array index in {path!r}") from None
            if idx < 0 or idx > len(parent):
                raise PatchError(f"array index out of range in {path!r}")
            parent.insert(idx, value)
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, last = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise PatchError(f"unable to remove nonexistent key: {path}")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations", bad_request=True)
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("each json patch operation needs 'op' and 'path'", bad_request=True)
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _remove(doc, path) if _pointer(path) else doc
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"{kind} needs 'from'", bad_request=True)
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected json patch operation {kind!r}", bad_request=True)
    return doc


# --- Strategic merge patch --------------------------------------------------------------

# Merge keys by field name, valid wherever the field occurs in the built-in types we serve.
# Lists not named here are atomic (replaced whole) — spec.taints and tolerations among them.
_CONTAINER_KEYS = {"env": "name", "ports": "containerPort", "volumeMounts": "mountPath",
                   "volumeDevices": "devicePath"}
MERGE_KEYS: dict[str, str] = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "addresses": "type",
    "podIPs": "ip",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    **_CONTAINER_KEYS,
}
# Merge keys that differ by where the list is: a Service's `spec.ports` merge on `port`
# (core/v1 ServiceSpec: `patchMergeKey:"port"`), a container's `ports` on `containerPort`.
PATH_MERGE_KEYS: dict[tuple[str, ...], str] = {("spec", "ports"): "port"}


def merge_key(path: tuple[str, ...]) -> str | None:
    """The strategic-merge key of the list at `path` (None: the list is atomic)."""
    return PATH_MERGE_KEYS.get(tuple(path)) or MERGE_KEYS.get(path[-1])


def go_map(item: dict) -> str:
    """A map as Go's fmt prints it (`map[a:1 b:x]`), as the real server's messages quote it."""
    def text(value: Any) -> str:
        if isinstance(value, dict):
            return go_map(value)
        if isinstance(value, list):
            return "[" + " ".join(text(v) for v in value) + "]"
        if isinstance(value, bool):
            return "true" if value else "false"
        return "<nil>" if value is None else str(value)
    return "map[" + " ".join(f"{k}:{text(v)}" for k, v in sorted(item.items())) + "]"


# Primitive lists merged as sets.
PRIMITIVE_MERGE = {"finalizers"}
# Lists that are atomic even though a merge key of the same name exists elsewhere.
ATOMIC_PATHS = {("spec", "taints"), ("spec", "tolerations"), ("status", "images"),
                ("status", "volumesAttached"), ("status", "volumesInUse")}

_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", bad_request=True)
    return _smp_map(original if isinstance(original, dict) else {}, patch, ())


def _smp_map(original: dict, patch: dict, path: tuple[str, ...]) -> Any:
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type {directive!r}")
    result = dict(original)
    retain = patch.get(_RETAIN)
    orders = {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN):
            continue
        if key.startswith(_ORDER):
            orders[key[len(_ORDER):]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE):]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        sub_path = (*path, key)
        current = result.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value, sub_path)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current if isinstance(current, list) else [], value, sub_path)
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for field, order in orders.items():
        if isinstance(result.get(field), list) and isinstance(order, list):
            result[field] = _apply_order(result[field], order, merge_key((*path, field)))
    return result


def _smp_list(original: list, patch: list, path: tuple[str, ...]) -> list:
    field = path[-1]
    if path[-2:] in ATOMIC_PATHS or (len(path) >= 2 and tuple(path[-2:]) in ATOMIC_PATHS):
        return [copy.deepcopy(v) for v in patch if not _is_directive(v)]
    if field in PRIMITIVE_MERGE:
        merged = list(original)
        for v in patch:
            if v not in merged:
                merged.append(copy.deepcopy(v))
        return merged
    key = merge_key(path)
    if key is None or not all(isinstance(v, dict) for v in patch):
        return [copy.deepcopy(v) for v in patch]
    if any(v.get(_DIRECTIVE) == "replace" for v in patch):
        return [{k: copy.deepcopy(x) for k, x in v.items() if k != _DIRECTIVE}
                for v in patch if v.get(_DIRECTIVE) != "replace"]
    merged = [copy.deepcopy(v) for v in original]
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {go_map(item)} does not contain declared merge key: {key}")
        idx = next((i for i, v in enumerate(merged)
                    if isinstance(v, dict) and v.get(key) == item[key]), None)
        if item.get(_DIRECTIVE) == "delete":
            if idx is not None:
                del merged[idx]
            continue
        if idx is None:
            merged.append(_smp_map({}, item, path))
        else:
            merged[idx] = _smp_map(merged[idx], item, path)
    return merged


def _is_directive(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {_DIRECTIVE}


def _apply_order(items: list, order: list, key: str | None) -> list:
    def ident(v: Any) -> Any:
        if key and isinstance(v, dict):
            return v.get(key)
        return v if not isinstance(v, dict) else None

    wanted = [ident(o) if isinstance(o, dict) else o for o in order]
    ranked = sorted(range(len(items)),
                    key=lambda i: (wanted.index(ident(items[i])) if ident(items[i]) in wanted
                                   else len(wanted) + i))
    return [items[i] for i in ranked]
