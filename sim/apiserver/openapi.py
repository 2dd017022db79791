"""The OpenAPI v3 surface: `/openapi/v3` (the index of group-version documents, each URL
carrying the hash of its document's content, so clients' caches follow CRD changes) and
`/openapi/v3/<api|apis/g>/<v>`: one PATCH operation per served kind, tagged with
`x-kubernetes-group-version-kind` and the `fieldValidation` parameter, and the component
schemas of the kinds (`openapi_schemas`).

kubectl reads the operations to decide that the server validates fields itself
(`kubectl apply`/`create` then send `fieldValidation=Strict`), and the schemas for
`kubectl explain` and for strategic merge patches of built-in kinds.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from .openapi_schemas import schemas_for
from .resources import ResourceRegistry, ResourceType

_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
    {"name": "force", "in": "query", "schema": {"type": "boolean"}},
]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gv_doc(types: list[ResourceType]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in types:
        base = "/" + _gv_path(rt.group, rt.version)
        item = (f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}" if rt.namespaced
                else f"{base}/{rt.plural}/{{name}}")
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        paths[item] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS,
                "responses": {"200": {"description": "OK"}},
            },
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": schemas_for(types)}}


_cache_lock = threading.Lock()
_cache: dict[str, tuple[dict[str, Any], str]] = {}


def _cached(types: list[ResourceType]) -> tuple[dict[str, Any], str]:
    """(document, hash) for the kinds served, built once per distinct set of kinds and
    custom schemas."""
    key = json.dumps(sorted([r.group, r.version, r.plural, r.kind, r.namespaced, r.schema or {}]
                            for r in types), sort_keys=True)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is None:
        doc = _gv_doc(types)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()
        hit = (doc, digest)
        with _cache_lock:
            if len(_cache) > 256:
                _cache.clear()
            _cache[key] = hit
    return hit


def index(types: ResourceRegistry) -> dict[str, Any]:
    paths = {}
    for group, versions in types.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            _doc, doc_hash = _cached(types.in_group_version(group, version))
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={doc_hash}"}
    return {"paths": paths}


def document(types: ResourceRegistry, parts: list[str]) -> dict[str, Any] | None:
    """parts: ["api", "v1"] or ["apis", group, version]."""
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    served = types.in_group_version(group, version)
    return _cached(served)[0] if served else None
