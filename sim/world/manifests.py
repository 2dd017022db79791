"""`kubectl apply` for the simulator: create or replace every object of a YAML stream
through the registry, so each one passes admission, validation and the watches like any
client's write. A create that meets an existing object (409) becomes an update at the
stored resourceVersion; any other API error is raised unchanged.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..apiserver.errors import ApiError
from ..apiserver.registry import Registry


def apply_manifest(registry: Registry, text: str, namespace: str = "default") -> list[dict[str, Any]]:
    """Create or replace every object in a YAML stream; returns the stored objects."""
    applied = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        rt = registry.types.by_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
        if rt is None:
            raise ValueError(f"no resource serves {doc.get('apiVersion')}/{doc.get('kind')}")
        ns = (doc.get("metadata") or {}).get("namespace") or (namespace if rt.namespaced else "")
        name = (doc.get("metadata") or {}).get("name", "")
        try:
            result = registry.create(rt, ns, doc)
        except ApiError as err:
            if err.code != 409:
                raise
            current = registry.get(rt, ns, name)
            doc.setdefault("metadata", {})["resourceVersion"] = str(current.rv)
            result = registry.update(rt, ns, name, doc)
        applied.append(result.obj)
    return applied
