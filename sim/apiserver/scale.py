"""The scale subresource (`.../<deployments|replicasets|statefulsets>/<name>/scale`, an
autoscaling/v1 Scale), as kube-apiserver's ScaleREST in pkg/registry/apps/*/storage:

- get: the Scale of the object: its name, namespace, uid, resourceVersion and
  creationTimestamp, `spec.replicas`, `status.replicas` and `status.selector` (the
  object's label selector written as a string, requirements sorted by key);
- update (PUT) and patch (merge, JSON or strategic merge, applied to the Scale): the new
  Scale must be valid (`spec.replicas` >= 0, else 422 `Scale.autoscaling "x" is
  invalid`), its resourceVersion, when set, is a precondition on the object (409 when
  stale), and only the object's `spec.replicas` changes; the answer is the new Scale.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .object_checks import WriteOptions
from .registry import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Registry, apply_patch
from .resources import ResourceType
from .selectors import label_selector_requirements

API_VERSION = "autoscaling/v1"


def get(registry: Registry, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
    return to_scale(registry.get_obj(rt, namespace, name))


def update(registry: Registry, rt: ResourceType, namespace: str, name: str, body: Any,
           opts: WriteOptions) -> dict[str, Any]:
    with registry.store.lock:
        registry.get(rt, namespace, name)  # a missing object is a 404 before the body is read
        return _write(registry, rt, namespace, name, body, opts)


def patch(registry: Registry, rt: ResourceType, namespace: str, name: str, content_type: str,
          body: Any, opts: WriteOptions) -> dict[str, Any]:
    if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
        raise errors.unsupported_media_type(content_type)
    with registry.store.lock:
        current = get(registry, rt, namespace, name)
        patched = apply_patch(content_type, current, body)
        return _write(registry, rt, namespace, name, patched, opts)


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale", "apiVersion": API_VERSION,
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if key in meta},
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {"replicas": status.get("replicas", 0),
                   "selector": selector_string(spec.get("selector"))},
    }


def selector_string(selector: Any) -> str:
    """labels.Selector.String() of a metav1.LabelSelector: requirements sorted by key."""
    reqs = label_selector_requirements(selector) or ()
    parts = []
    for req in sorted(reqs, key=lambda r: r.key):
        values = ",".join(sorted(req.values))
        parts.append({"=": f"{req.key}={values}", "in": f"{req.key} in ({values})",
                      "notin": f"{req.key} notin ({values})", "exists": req.key,
                      "!": f"!{req.key}"}[req.op])
    return ",".join(parts)


def _write(registry: Registry, rt: ResourceType, namespace: str, name: str, scale: Any,
           opts: WriteOptions) -> dict[str, Any]:
    if not isinstance(scale, dict):
        raise errors.bad_request("the body of the request could not be decoded as a Scale")
    if (scale.get("apiVersion") not in (None, "", API_VERSION)) or scale.get("kind") not in (None, "", "Scale"):
        raise errors.bad_request(f"the API version in the data ({scale.get('apiVersion')}) does not match "
                                 f"the expected API version ({API_VERSION})")
    meta = scale.get("metadata") or {}
    if meta.get("name") not in (None, "", name):
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.bad_request(f"Scale in version \"v1\" cannot be handled as a Scale: json: cannot "
                                 f"unmarshal {type(replicas).__name__} into Go struct field "
                                 "ScaleSpec.spec.replicas of type int32")
    if replicas < 0:
        raise errors.invalid("Scale", "autoscaling", name, [{
            "reason": "FieldValueInvalid", "field": "spec.replicas",
            "message": f"Invalid value: {replicas}: must be greater than or equal to 0"}])
    obj = registry.get_obj(rt, namespace, name)
    if meta.get("resourceVersion"):
        obj["metadata"]["resourceVersion"] = meta["resourceVersion"]
    obj.setdefault("spec", {})["replicas"] = replicas
    result = registry.update(rt, namespace, name, obj, None, opts)
    return to_scale(result.obj)
