"""Server-side apply (`PATCH` with `application/apply-patch+yaml`), a documented subset of
kube-apiserver's (k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager and
sigs.k8s.io/structured-merge-diff):

- `fieldManager` is required (422 `PatchOptions.meta.k8s.io "" is invalid: fieldManager:
  Required value: is required for apply patch`), and the body must name its apiVersion and
  kind;
- applying to a missing object creates it;
- the applied configuration is merged into the live object as structured-merge-diff does for
  built-in kinds: maps recursively, lists with a merge key (containers by `name`, a Service's
  ports by `port`, ...) item by item, other lists and scalars replaced; custom resources' lists
  are replaced whole (a merge patch);
- the fields a manager applied are recorded as its `Apply` entry in `metadata.managedFields`
  (FieldsV1); a field it applied before and leaves out now is removed from the object.

Different from the real server: only `Apply` entries are recorded (create, update and the
other patches do not add `Update` entries), so a field is never shared between managers,
nothing conflicts and `force` changes nothing; a field another writer changed after this
manager applied it is still removed when this manager stops applying it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import errors
from .patch import merge_key, merge_patch, strategic_merge_patch

APPLY_PATCH = "application/apply-patch+yaml"

Path = tuple[str, ...]
# Fields no manager owns (the field manager's stripMeta: fieldmanager/internal/stripmeta.go).
_STRIPPED_META = {"name", "namespace", "managedFields", "resourceVersion", "uid", "selfLink",
                  "creationTimestamp", "generation", "clusterName"}


def require_manager(manager: str | None) -> str:
    """The field manager an apply must name (apimachinery's ValidatePatchOptions)."""
    if not manager:
        raise errors.ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                              "Required value: is required for apply patch",
                              {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                                  "reason": "FieldValueRequired", "field": "fieldManager",
                                  "message": "Required value: is required for apply patch"}]})
    return manager


def check_applied(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise errors.bad_request("the body of an apply patch must be an object")
    for key in ("apiVersion", "kind"):
        if not config.get(key):
            raise errors.bad_request(f"{key} must be set in an apply patch")
    return config


def field_paths(obj: Any, path: Path = (), custom: bool = False) -> set[Path]:
    """The fields `obj` sets, as FieldsV1 paths (`f:<field>`, `k:<merge key>` for an item
    of a keyed list, `.` for the item itself)."""
    found: set[Path] = set()
    fields = tuple(p[2:] for p in path if p.startswith("f:"))
    for key, value in obj.items():
        if path == () and key in ("apiVersion", "kind", "status"):
            continue
        if fields == ("metadata",) and key in _STRIPPED_META:
            continue
        here = (*path, f"f:{key}")
        key_name = None if custom else merge_key((*fields, key))
        if isinstance(value, dict) and value:
            found |= field_paths(value, here, custom)
        elif (isinstance(value, list) and key_name and value
              and all(isinstance(v, dict) and key_name in v for v in value)):
            for item in value:
                item_path = (*here, "k:" + json.dumps({key_name: item[key_name]}, separators=(",", ":")))
                found.add((*item_path, "."))
                found |= field_paths(item, item_path, custom)
        else:
            found.add(here)
    return found


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def from_fields_v1(tree: dict[str, Any], path: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for part, sub in tree.items():
        here = (*path, part)
        paths |= from_fields_v1(sub, here) if sub else {here}
    return paths


def _remove(obj: Any, path: Path) -> None:
    """Remove the field (or keyed list item) at `path`; a path already gone is skipped."""
    node = obj
    for i, part in enumerate(path):
        last = i == len(path) - 1 or (i == len(path) - 2 and path[-1] == ".")
        if part.startswith("f:") and isinstance(node, dict):
            if last:
                node.pop(part[2:], None)
                return
            node = node.get(part[2:])
        elif part.startswith("k:") and isinstance(node, list):
            wanted = json.loads(part[2:])
            idx = next((j for j, item in enumerate(node) if isinstance(item, dict)
                        and all(item.get(k) == v for k, v in wanted.items())), None)
            if idx is None:
                return
            if last:
                del node[idx]
                return
            node = node[idx]
        else:
            return


def apply(live: dict[str, Any], config: dict[str, Any], manager: str, api_version: str,
          now: str, custom: bool) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live`."""
    meta = live.get("metadata") or {}
    entries = [e for e in meta.get("managedFields") or [] if isinstance(e, dict)]
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"),
                None)
    before = from_fields_v1(mine.get("fieldsV1") or {}) if mine else set()
    now_applied = field_paths(config, custom=custom)
    result = copy.deepcopy(live)
    # Whole list items first (their merge key still finds them), then fields, deepest first.
    for path in sorted(before - now_applied, key=lambda p: (p[-1] != ".", -len(p), p)):
        _remove(result, path)
    body = {k: v for k, v in config.items() if k != "status"}
    body["metadata"] = {k: v for k, v in (config.get("metadata") or {}).items() if k != "managedFields"}
    result = merge_patch(result, body) if custom else strategic_merge_patch(result, body)
    others = [e for e in entries if e is not mine]
    result["metadata"]["managedFields"] = [*others, managed_entry(manager, api_version, now, now_applied)]
    return result


def managed_entry(manager: str, api_version: str, now: str, paths: set[Path]) -> dict[str, Any]:
    return {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now,
            "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
