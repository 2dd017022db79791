"""Authorization as kube-apiserver does it with `--authorization-mode=RBAC`: the request's
attributes (user, verb, API group, resource, subresource, namespace, name, or a
non-resource path), then the rules that the user's bindings grant, read from the Roles,
ClusterRoles, RoleBindings and ClusterRoleBindings in the store. Follows
plugin/pkg/auth/authorizer/rbac (rbac.go, RuleAllows) and pkg/registry/rbac/validation
(rule.go, the subjects a binding applies to), and the request info of
k8s.io/apiserver/pkg/endpoints/request/requestinfo.go:

- members of `system:masters` are allowed everything (the privileged-group authorizer that
  runs before RBAC);
- a ClusterRoleBinding grants its ClusterRole's rules everywhere; a RoleBinding grants its
  Role's or ClusterRole's rules in its own namespace only;
- a rule matches verb, API group, `resource` or `resource/subresource` (`*`, `*/sub`), and,
  when it lists `resourceNames`, only a request that names one of them: a create never
  does; a list or watch does when its fieldSelector requires `metadata.name=<name>`;
- a non-resource rule matches a path exactly or by a trailing `*` prefix;
- ServiceAccount subjects without a namespace take the binding's; aggregated ClusterRoles
  are not aggregated (the chart ships none).

Denials become the real 403: `<resource>.<group> "<name>" is forbidden: User "<user>"
cannot <verb> resource "<resource[/sub]>" in API group "<group>" in the namespace
"<ns>"` (or `at the cluster scope`), as responsewriters' forbiddenMessage writes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import errors
from .auth import SA_PREFIX, Identity
from .store import Store

GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
TABLES = {kind: f"{GROUP}/{plural}" for kind, plural in (
    ("Role", "roles"), ("ClusterRole", "clusterroles"),
    ("RoleBinding", "rolebindings"), ("ClusterRoleBinding", "clusterrolebindings"))}
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
         "GET": "get", "HEAD": "get"}


@dataclass(frozen=True)
class Attributes:
    """authorizer.Attributes: what a request asks to do."""

    user: str
    groups: tuple[str, ...]
    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @classmethod
    def of(cls, identity: Identity, **kw: Any) -> Attributes:
        return cls(identity.name, identity.groups, **kw)


def request_verb(method: str, name: str, watch: bool) -> str:
    """RequestInfo's verb: GET on a collection is list, with watch=true watch; DELETE on a
    collection is deletecollection."""
    verb = VERBS.get(method, method.lower())
    if watch and verb == "get":
        return "watch"
    if not name and verb == "get":
        return "list"
    if not name and verb == "delete":
        return "deletecollection"
    return verb


def selected_name(field_selector: str | None) -> str:
    """The name a list or watch selects: `metadata.name=<x>` (or `==`) among the
    selector's requirements, as fields.Selector.RequiresExactMatch finds it."""
    for term in (field_selector or "").split(","):
        key, op, value = _split_term(term.strip())
        if key == "metadata.name" and op in ("=", "=="):
            return value
    return ""


def _split_term(term: str) -> tuple[str, str, str]:
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            return key.strip(), op, value.strip()
    return term, "", ""


# -- rules ---------------------------------------------------------------------------------


def rule_allows(attrs: Attributes, rule: dict[str, Any]) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return any(u == "*" or u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1]))
                   for u in rule.get("nonResourceURLs") or [])
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not any(r == "*" or r == combined or (attrs.subresource and r == f"*/{attrs.subresource}")
               for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _applies(subject: dict[str, Any], user: str, groups: tuple[str, ...], binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user)
    if kind == "Group":
        return subject.get("name") in groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_ns
        return bool(namespace) and user == f"{SA_PREFIX}{namespace}:{subject.get('name')}"
    return False


def describe(subject: dict[str, Any], binding_ns: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("namespace") or binding_ns}/{subject.get("name")}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


class Authorizer:
    """RBAC over the store's objects; an in-memory view rebuilt when one of them changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._snapshot: tuple[tuple[int, ...], dict[str, list[dict[str, Any]]]] | None = None

    def _objects(self) -> dict[str, list[dict[str, Any]]]:
        stamp = tuple(self.store.last_change(t) for t in TABLES.values())
        with self._lock:
            if self._snapshot is None or self._snapshot[0] != stamp:
                objs = {kind: [e.obj() for _k, e in self.store.items(t)] for kind, t in TABLES.items()}
                self._snapshot = (stamp, objs)
            return self._snapshot[1]

    def visit(self, user: str, groups: tuple[str, ...], namespace: str
              ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every rule that applies to the user in `namespace` ("" = cluster-wide only),
        with where it comes from, as the default rule resolver's VisitRulesFor."""
        objs = self._objects()
        cluster_roles = {r["metadata"]["name"]: r for r in objs["ClusterRole"]}
        roles = {(r["metadata"].get("namespace", ""), r["metadata"]["name"]): r for r in objs["Role"]}
        for binding in objs["ClusterRoleBinding"]:
            ref = binding.get("roleRef") or {}
            for subject in binding.get("subjects") or []:
                if not _applies(subject, user, groups, ""):
                    continue
                role = cluster_roles.get(ref.get("name", "")) if ref.get("kind") == "ClusterRole" else None
                source = (f'ClusterRoleBinding "{binding["metadata"]["name"]}" of ClusterRole '
                          f'"{ref.get("name")}" to {describe(subject, "")}')
                for rule in (role or {}).get("rules") or []:
                    yield source, rule
                break
        if not namespace:
            return
        for binding in objs["RoleBinding"]:
            ns = binding["metadata"].get("namespace", "")
            if ns != namespace:
                continue
            ref = binding.get("roleRef") or {}
            for subject in binding.get("subjects") or []:
                if not _applies(subject, user, groups, ns):
                    continue
                if ref.get("kind") == "ClusterRole":
                    role = cluster_roles.get(ref.get("name", ""))
                else:
                    role = roles.get((ns, ref.get("name", "")))
                source = (f'RoleBinding "{ns}/{binding["metadata"]["name"]}" of {ref.get("kind")} '
                          f'"{ref.get("name")}" to {describe(subject, ns)}')
                for rule in (role or {}).get("rules") or []:
                    yield source, rule
                break

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the reason names the binding that allowed it, as
        SubjectAccessReview's status.reason does; a denial has no reason."""
        if MASTERS in attrs.groups:
            return True, ""
        for source, rule in self.visit(attrs.user, attrs.groups, attrs.namespace):
            if rule_allows(attrs, rule):
                return True, f"RBAC: allowed by {source}"
        return False, ""

    def rules(self, identity: Identity, namespace: str) -> list[dict[str, Any]]:
        if MASTERS in identity.groups:
            return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                    {"verbs": ["*"], "nonResourceURLs": ["*"]}]
        return [rule for _s, rule in self.visit(identity.name, identity.groups, namespace)]


def forbidden(attrs: Attributes, reason: str = "") -> errors.ApiError:
    """The 403 kube-apiserver writes for a denied request."""
    who = f'User "{attrs.user}"'
    if not attrs.resource_request:
        msg = f'{who} cannot {attrs.verb} path "{attrs.path}"'
        return errors.ApiError(403, "Forbidden", f"forbidden: {msg}" + (f": {reason}" if reason else ""),
                               {})
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope")
    msg = f'{who} cannot {attrs.verb} resource "{combined}" in API group "{attrs.api_group}" {scope}'
    if reason:
        msg += f": {reason}"
    qualified = errors.qualified(attrs.resource, attrs.api_group)
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.name:
        details = {"name": attrs.name, **details}
        return errors.ApiError(403, "Forbidden", f'{qualified} "{attrs.name}" is forbidden: {msg}', details)
    return errors.ApiError(403, "Forbidden", f"{qualified} is forbidden: {msg}", details)


# -- the roles every cluster starts with (plugin/pkg/auth/authorizer/rbac/bootstrappolicy) --

BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTO_UPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS), "annotations": dict(AUTO_UPDATE)},
            "rules": rules}


def _cluster_binding(name: str, role: str, groups: list[str]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS), "annotations": dict(AUTO_UPDATE)},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups]}


def bootstrap() -> list[dict[str, Any]]:
    """cluster-admin for system:masters; what every authenticated user may do: discovery,
    public info, and asking about itself (SelfSubjectAccessReview, SelfSubjectRulesReview,
    SelfSubjectReview)."""
    info = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
    return [
        _cluster_role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                        {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _cluster_binding("cluster-admin", "cluster-admin", [MASTERS]),
        _cluster_role("system:discovery", [{"nonResourceURLs": [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        _cluster_binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _cluster_role("system:public-info-viewer", [{"nonResourceURLs": info, "verbs": ["get"]}]),
        _cluster_binding("system:public-info-viewer", "system:public-info-viewer",
                         ["system:authenticated", "system:unauthenticated"]),
        _cluster_role("system:basic-user", [
            {"apiGroups": ["authorization.k8s.io"],
             "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
        _cluster_binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
    ]
