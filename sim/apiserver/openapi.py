"""A minimal OpenAPI v3 surface: `/openapi/v3` (the index of group-version documents)
and `/openapi/v3/<api|apis/g>/<v>` with one PATCH operation per served kind, tagged with
`x-kubernetes-group-version-kind` and the `fieldValidation` parameter.

That is what kubectl reads to decide that the server validates fields itself
(`kubectl apply`/`create` then send `fieldValidation=Strict` instead of downloading the
full schema). Component schemas are not served; kubectl falls back to its compiled-in
types for strategic merge patches, as documented in docs/sim.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

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
            "paths": paths, "components": {"schemas": {}}}


def index(types: ResourceRegistry) -> dict[str, Any]:
    paths = {}
    for group, versions in types.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            doc_hash = hashlib.sha256(repr(sorted(
                (r.plural, r.kind) for r in types.in_group_version(group, version))).encode()).hexdigest()[:16].upper()
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
    return _gv_doc(served) if served else None
