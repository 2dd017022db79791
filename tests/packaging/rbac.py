"""A small RBAC authorizer over rendered manifests: what Kubernetes' RBAC would allow a
service account, following its rules (rbac.authorization.k8s.io/v1):

- a ClusterRoleBinding grants its ClusterRole's rules in every namespace and for
  cluster-scoped resources; a RoleBinding grants its Role's (or ClusterRole's) rules in
  the RoleBinding's namespace only;
- a rule matches an apiGroup, a resource (`resource/subresource` for a subresource) and a
  verb, or "*"; `resourceNames` restricts it to those names - for list and watch the
  request must select the name (fieldSelector metadata.name), and create never has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Grant:
    """One verb on one resource that one rule of one binding gives a service account."""

    account: str  # namespace/name
    verb: str
    group: str
    resource: str  # with /subresource
    namespace: str | None  # None: cluster-wide (ClusterRoleBinding)
    resource_names: tuple[str, ...]
    source: str  # the role, for messages


class Rbac:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
                 if d["kind"] in ("Role", "ClusterRole")}
        self.grants: list[Grant] = []
        for binding in docs:
            if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            ref = binding["roleRef"]
            scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
            role_ns = scope if ref["kind"] == "Role" else None
            role = roles[(ref["kind"], role_ns, ref["name"])]
            for subject in binding["subjects"]:
                if subject["kind"] != "ServiceAccount":
                    continue
                account = f"{subject['namespace']}/{subject['name']}"
                for rule in role["rules"]:
                    for group in rule["apiGroups"]:
                        for resource in rule["resources"]:
                            for verb in rule["verbs"]:
                                self.grants.append(Grant(account, verb, group, resource, scope,
                                                         tuple(rule.get("resourceNames") or ()),
                                                         f"{ref['kind']} {ref['name']}"))

    def matching(self, account: str, verb: str, group: str, resource: str, subresource: str,
                 namespace: str | None, name: str | None) -> list[Grant]:
        """The grants that allow the request. `namespace`: None for a cluster-scoped resource,
        "*" for a namespaced resource in every namespace; `name`: None when not known."""
        full = f"{resource}/{subresource}" if subresource else resource
        out = []
        for g in self.grants:
            if g.account != account or g.verb not in (verb, "*") or g.group not in (group, "*"):
                continue
            if g.resource not in (full, "*"):
                continue
            if g.namespace is not None and g.namespace != namespace:
                continue  # a RoleBinding covers its own namespace only
            if g.resource_names and (name is None or name not in g.resource_names):
                continue
            out.append(g)
        return out

    def allows(self, *args: Any) -> bool:
        return bool(self.matching(*args))
