"""Every Kubernetes API request nodewarden's code can make, read from the code itself.

The simulator's audit log records writes only, so reads (get, list, watch) are derived
here, statically, from the modules that own the API (`webhook/kube.py`,
`controller/kube.py`, `node_agent/kube.py`, and `core/kube.py` for the functions
the sides import). Two call styles exist:

- the official client's generated API classes, passed to a helper with their arguments
  (`call(self.kube.core.read_node, name, ...)`, `self._raw(fn, *args)`) or listed as
  `(fn, (args...), {kwargs})` for a list-and-watch; the request's method and path come from
  the client's own `_<method>_serialize` source;
- the agent's `self._request("PATCH", _LEASE, {"namespace": namespace, ...})` over the
  client's REST layer (`RESTClientObject`), whose path constants are read from the module.

A list function that the module also streams through `watch.Watch()` or `raw_watch` (its `_list_call`)
is a watch too. Namespaces and names that are not constants are classified by the tables
below; an expression that is in no table fails the test that uses this module, so a new
call is never silently left out.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from core import names
from core.kube import Kube

ROOT = Path(__file__).resolve().parents[2]
API_MODULES = {  # file -> the identities that run it (core/kube.py: see importers())
    "webhook/kube.py": ("webhook",),
    "controller/kube.py": ("controller",),
    "node_agent/kube.py": ("agent",),
    "webhook/reviews.py": ("webhook",),  # operators' TokenReviews and SubjectAccessReviews
}
SHARED = "core/kube.py"
# core.kube.Kube's attributes -> the client's API classes (`kube.core.read_node`, ...).
API_CLASSES = {attr: type(api) for attr, api in vars(Kube(client.ApiClient())).items()
               if type(api).__module__.startswith("kubernetes.client.api.")}
CLUSTER_SCOPED = {"nodes", "volumeattachments", "namespaces", names.PLURAL, "noderemediationrecords",
                  "validatingadmissionpolicies", "validatingadmissionpolicybindings",
                  "tokenreviews", "subjectaccessreviews"}
NAMESPACED = {"pods", "events", "configmaps", "leases", "secrets"}

# Symbolic namespaces, resolved by the test from the chart's values.
RELEASE = "<release namespace>"
EVENTS = "<event namespace>"
ANY = "*"
# (file, function, namespace expression) -> namespace.
NAMESPACES = {
    ("webhook/kube.py", "_list_call", "self.pause_namespace"): RELEASE,  # NODEWARDEN_NAMESPACE
    ("webhook/kube.py", "create_event", "namespace"): EVENTS,  # NODEWARDEN_EVENT_NAMESPACE
    ("webhook/kube.py", "get_ledger", "self.pause_namespace"): RELEASE,  # the rate-limit ledger
    ("webhook/kube.py", "create_ledger", "self.pause_namespace"): RELEASE,
    ("webhook/kube.py", "replace_ledger", "self.pause_namespace"): RELEASE,
    ("controller/kube.py", "_list_call", "self.namespace"): RELEASE,  # agents' Leases, pause switch
    ("controller/kube.py", "create_event", "namespace"): EVENTS,
    ("controller/kube.py", "delete_node_pods", "pod.metadata.namespace"): ANY,  # wherever the pods are
    ("controller/kube.py", "get", "self.namespace"): RELEASE,  # the leader Lease
    ("controller/kube.py", "create", "self.namespace"): RELEASE,
    ("controller/kube.py", "update", "self.namespace"): RELEASE,
    ("node_agent/kube.py", "renew_lease", "namespace"): RELEASE,  # the agent's `namespace` setting
}
# (file, name expression) -> the object's name, where RBAC names it (resourceNames).
NAMES = {
    ("webhook/kube.py", "self.pause_name"): "nodewarden-control",
    ("webhook/kube.py", "self.ledger_name"): "nodewarden-control-ledger",
    ("controller/kube.py", "self.pause_configmap"): "nodewarden-control",
    # LeaderLease is built only for names.LEADER_LEASE_NAME (controller/__main__.py).
    ("controller/kube.py", "self.name"): names.LEADER_LEASE_NAME,
}


@dataclass(frozen=True, order=True)
class ApiCall:
    identity: str  # "webhook", "controller" or "agent": each runs as its own service account
    verb: str
    group: str  # "" for the core group
    resource: str
    subresource: str
    namespace: str | None  # None: cluster-scoped
    name: str | None  # known name, or None (any)
    where: str  # file:function, for messages

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return self.identity, self.verb, self.group, self.resource, self.subresource


class UnclassifiedExpression(AssertionError):
    pass


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, ast.expr]  # path parameter -> expression
    field_selector: ast.expr | None


def _client_request(cls: type, method_name: str) -> tuple[str, str, inspect.Signature]:
    """The HTTP method and path of a generated client method, from the client's source."""
    src = inspect.getsource(getattr(cls, f"_{method_name}_serialize"))
    (http,) = set(re.findall(r"method='(\w+)'", src))
    (path,) = set(re.findall(r"resource_path='([^']+)'", src))
    return http, path, inspect.signature(getattr(cls, method_name))


def _api_methods() -> set[str]:
    out = set()
    for cls in API_CLASSES.values():
        for name, _ in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_") and hasattr(cls, f"_{name}_serialize"):
                out.add(name)
    return out


def _bind(signature: inspect.Signature, args: list[ast.expr], keywords: list[ast.keyword]) -> dict[str, ast.expr]:
    params = [p for p in signature.parameters.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    bound = {p.name: a for p, a in zip(params, args, strict=False)}
    bound.update({k.arg: k.value for k in keywords if k.arg})
    return bound


class _Walker(ast.NodeVisitor):
    def __init__(self, file: str, module: Any, methods: set[str]) -> None:
        self.file, self.module, self.methods = file, module, methods
        self.function = ""
        self.function_node: ast.FunctionDef | None = None
        self.parents: dict[ast.AST, ast.AST] = {}
        self.top = ""  # the module-level function or method the call is in
        self.found: list[tuple[str, str, _Request, bool]] = []  # (top, function, request, from _list_call)

    def run(self, tree: ast.Module) -> None:
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        self.visit(tree)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = self.function, self.function_node, self.top
        self.function, self.function_node, self.top = node.name, node, self.top or node.name
        self.generic_visit(node)
        self.function, self.function_node, self.top = outer

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.methods and isinstance(node.value, ast.Attribute) and node.value.attr in API_CLASSES:
            self._client_call(API_CLASSES[node.value.attr], node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (isinstance(node.func, ast.Attribute) and node.func.attr == "_request" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._raw_request(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "call_api" and self.function != "send":
            raise UnclassifiedExpression(f"{self.file}:{self.function}: call_api outside _request")
        self.generic_visit(node)

    def _client_call(self, cls: type, node: ast.Attribute) -> None:
        http, path, signature = _client_request(cls, node.attr)
        parent = self.parents[node]
        if isinstance(parent, ast.Call) and parent.func is node:
            bound = _bind(signature, parent.args, parent.keywords)
        elif isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
            bound = _bind(signature, parent.args[1:], parent.keywords)
        elif isinstance(parent, ast.Tuple) and parent.elts[0] is node:
            args = parent.elts[1].elts if isinstance(parent.elts[1], ast.Tuple) else []
            kwargs = parent.elts[2] if len(parent.elts) > 2 and isinstance(parent.elts[2], ast.Dict) else None
            keywords = [ast.keyword(arg=k.value, value=v) for k, v in zip(kwargs.keys, kwargs.values, strict=True)
                        if isinstance(k, ast.Constant)] if kwargs else []
            bound = _bind(signature, list(args), keywords)
        else:
            raise UnclassifiedExpression(f"{self.file}:{self.function}: cannot read the arguments of {node.attr}")
        params = {p: bound[p] for p in re.findall(r"\{(\w+)\}", path) if p in bound}
        request = _Request(http, path, params, bound.get("field_selector"))
        self.found.append((self.top, self.function, request, self.function == "_list_call"))

    def _raw_request(self, node: ast.Call) -> None:
        method = node.args[0].value  # type: ignore[attr-defined]
        path = eval(compile(ast.Expression(node.args[1]), self.file, "eval"), vars(self.module))
        params_node = node.args[2]
        if isinstance(params_node, ast.Name):  # a dict assigned earlier in the function
            params_node = self._assigned(params_node.id)
        params: dict[str, ast.expr] = {}
        if isinstance(params_node, ast.Dict):
            params = {k.value: v for k, v in zip(params_node.keys, params_node.values, strict=True)
                      if isinstance(k, ast.Constant)}
        self.found.append((self.top, self.function, _Request(method, path, params, None), False))

    def _assigned(self, name: str) -> ast.expr:
        for stmt in ast.walk(self.function_node or ast.Module(body=[], type_ignores=[])):
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                return stmt.value
        raise UnclassifiedExpression(f"{self.file}:{self.function}: {name} is not assigned a dict")


def _resolve(file: str, module: Any, expr: ast.expr) -> str | None:
    """A constant's value (module constants and core.names included), or None."""
    try:
        value = eval(compile(ast.Expression(expr), file, "eval"), {**vars(module), "names": names})
    except (NameError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _request_calls(file: str, identity: str, module: Any, function: str, request: _Request,
                   watched: bool, where: str) -> list[ApiCall]:
    parts = [p for p in request.path.split("/") if p]
    if parts[0] == "version":
        return []  # a non-resource URL every authenticated caller may read (system:public-info-viewer)
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]

    def param(p: str) -> str:
        expr = request.params[p]
        value = _resolve(file, module, expr)
        if value is None:
            raise UnclassifiedExpression(f"{where}: cannot resolve {{{p}}} = {ast.unparse(expr)}")
        return value

    if group == "{group}":
        group = param("group")
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) > 2:
        expr = request.params["namespace"]
        namespace = _resolve(file, module, expr) or NAMESPACES.get((file, function, ast.unparse(expr)))
        if namespace is None:
            raise UnclassifiedExpression(f"{where}: classify the namespace {ast.unparse(expr)} in NAMESPACES")
        rest = rest[2:]
    resource = param("plural") if rest[0] == "{plural}" else rest[0]
    if resource not in CLUSTER_SCOPED | NAMESPACED:
        raise UnclassifiedExpression(f"{where}: add {resource} to CLUSTER_SCOPED or NAMESPACED")
    if namespace is None and resource in NAMESPACED:
        namespace = ANY  # a namespaced kind across all namespaces (e.g. GET /api/v1/pods)
    named = len(rest) > 1
    subresource = rest[2] if len(rest) > 2 else ""
    name: str | None = None
    if named and "name" in request.params:
        expr = request.params["name"]
        name = _resolve(file, module, expr) or NAMES.get((file, ast.unparse(expr)))
    if request.field_selector is not None:
        selector = request.field_selector
        if isinstance(selector, ast.JoinedStr):
            values = [v.value for v in selector.values if isinstance(v, ast.FormattedValue)]
            prefix = "".join(str(v.value) for v in selector.values if isinstance(v, ast.Constant))
            if prefix == "metadata.name=" and len(values) == 1:
                name = NAMES.get((file, ast.unparse(values[0])))
    if request.method == "GET":
        verbs = ["get"] if named else (["list", "watch"] if watched else ["list"])
    else:
        verbs = [{"POST": "create", "PUT": "update", "PATCH": "patch",
                  "DELETE": "delete" if named else "deletecollection"}[request.method]]
    return [ApiCall(identity, verb, group, resource, subresource, namespace, name, where) for verb in verbs]


@functools.cache
def importers(function: str) -> tuple[str, ...]:
    """The identities whose code imports `function` from core.kube."""
    out = set()
    for side, identity in (("webhook", "webhook"), ("controller", "controller"), ("node_agent", "agent")):
        for path in (ROOT / side).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if (isinstance(node, ast.ImportFrom) and node.module == "core.kube"
                        and any(a.name == function for a in node.names)):
                    out.add(identity)
    return tuple(sorted(out))


def _watched(tree: ast.Module) -> bool:
    """The module streams its `_list_call` functions through watch.Watch(), directly or
    through core.kube.raw_watch."""
    source = ast.unparse(tree)
    return "_list_call" in source and ("watch.Watch()" in source or "raw_watch(" in source)


@functools.cache
def static_calls() -> tuple[ApiCall, ...]:
    methods = _api_methods()
    calls: list[ApiCall] = []
    for file in [*API_MODULES, SHARED]:
        module = importlib.import_module(file[:-3].replace("/", "."))
        tree = ast.parse((ROOT / file).read_text())
        walker = _Walker(file, module, methods)
        walker.run(tree)
        watched = _watched(tree)
        for top, function, request, from_list_call in walker.found:
            identities = API_MODULES.get(file) or importers(top)
            for identity in identities:
                calls += _request_calls(file, identity, module, function, request, watched and from_list_call,
                                        where=f"{file}:{top}")
    return tuple(sorted(set(calls)))


def modules_calling_the_api() -> set[str]:
    """Product files that reach the API: a client API method through one of Kube's
    attributes, `call_api`, or an import of the client's API classes, ApiClient or its
    REST layer."""
    methods = _api_methods()
    classes = {cls.__name__ for cls in API_CLASSES.values()} | {"ApiClient", "RESTClientObject"}

    def reaches(node: ast.AST) -> bool:
        if isinstance(node, ast.ImportFrom):
            return (node.module or "").startswith("kubernetes") and any(a.name in classes for a in node.names)
        if not isinstance(node, ast.Attribute):
            return False
        if node.attr == "call_api":
            return True
        if node.attr in methods and isinstance(node.value, ast.Attribute):
            return node.value.attr in API_CLASSES
        return node.attr in classes and ast.unparse(node.value) in ("client", "kubernetes.client")

    found = set()
    for side in ("core", "webhook", "controller", "node_agent"):
        for path in (ROOT / side).rglob("*.py"):
            if any(reaches(node) for node in ast.walk(ast.parse(path.read_text()))):
                found.add(str(path.relative_to(ROOT)))
    return found
