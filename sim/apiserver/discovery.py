"""Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`) and
`/version`, in the legacy (unaggregated) form that kubectl and the Python client accept."""

from __future__ import annotations

from typing import Any

from .resources import GROUP_ORDER, ResourceRegistry, ResourceType

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "sim",
    "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4",
    "compiler": "gc", "platform": "linux/amd64",
}


# The kind a subresource reads and writes, as discovery names it: kubectl drain finds
# `pods/eviction` (policy/v1 Eviction) there, the scale client `<r>/scale` (autoscaling/v1).
SUBRESOURCE_KINDS = {
    "eviction": ("policy", "v1", "Eviction", ["create"]),
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
}


def api_versions(address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def _ordered_groups(types: ResourceRegistry) -> list[tuple[str, list[str]]]:
    groups = types.group_versions()
    names = [g for g in GROUP_ORDER if g in groups] + sorted(g for g in groups if g not in GROUP_ORDER)
    return [(g, groups[g]) for g in names if g]


def api_group_list(types: ResourceRegistry) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_entry(g, vs) for g, vs in _ordered_groups(types)]}


def api_group(types: ResourceRegistry, group: str) -> dict[str, Any] | None:
    versions = types.group_versions().get(group)
    if not versions or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def _resource_entry(rt: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular or rt.kind.lower(),
                            "namespaced": rt.namespaced, "kind": rt.kind,
                            "verbs": ["create"] if rt.virtual else VERBS}
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    out = [main]
    if rt.status_subresource:
        out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                    "kind": rt.kind, "verbs": ["get", "patch", "update"]})
    for sub in rt.subresources:
        group, version, kind, verbs = SUBRESOURCE_KINDS[sub]
        out.append({"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                    "group": group, "version": version, "kind": kind, "verbs": verbs})
    return out


def resource_list(types: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    served = sorted(types.in_group_version(group, version), key=lambda r: r.plural)
    if not served:
        return None
    resources = [e for rt in served for e in _resource_entry(rt)]
    body: dict[str, Any] = {"kind": "APIResourceList",
                            "groupVersion": f"{group}/{version}" if group else version,
                            "resources": resources}
    if group:
        body["apiVersion"] = "v1"
    return body
