"""ValidatingAdmissionPolicy, evaluated for real: the policies and bindings in the store
(admissionregistration.k8s.io/v1) decide on every write a client makes through the API,
their CEL expressions run by cel-python (celpy). Follows k8s.io/apiserver/pkg/admission/
plugin/policy/validating and the API's documented semantics:

- a policy applies to a request when one of its `matchConstraints.resourceRules` matches
  (apiGroups, apiVersions, operations, resources as `plural`, `plural/sub`, `*`, `*/sub`
  or `plural/*`, scope), none of its `excludeResourceRules` does, a binding names it, the
  binding's `matchResources` (resource rules and objectSelector.matchLabels) match, and
  every `matchConditions` expression is true;
- the expressions see `object` (null on DELETE), `oldObject` (null on CREATE), `request`
  (kind, resource, subResource, name, namespace, operation, userInfo with the token's
  extra, dryRun; empty fields omitted as in AdmissionRequest's JSON), `variables` (the
  policy's, in order), `params` and `namespaceObject` (null: no paramKind support);
- a validation that is false denies with its `message` (or `messageExpression`, or
  `failed expression: <expr>`) and its `reason` (default Invalid, 422; Forbidden is 403);
  an expression that fails to compile or evaluate denies unless `failurePolicy: Ignore`;
- only the `Deny` validation action acts (`Warn`/`Audit` are not emitted).

cel-python is the CEL implementation. It has no optional syntax (`a.?b`), no heterogeneous
equality with null (`obj != null` is an error: test `request.operation` instead), and
none of Kubernetes' CEL libraries (lists, regex, quantity, authz, `lowerAscii`). Its
interpreter evaluates both sides of `||`/`&&`; `_ShortCircuit` skips the right side when
the left decides, and results are memoized on the inputs an expression can read, so an
agent's frequent Lease renewal costs about as much as a real server's evaluation.

The denial reads as the real one: `ValidatingAdmissionPolicy '<policy>' with binding
'<binding>' denied request: <message>`. In-process writes of the simulated cluster's own
components (kubelets, controllers) are not admission-checked: they carry no user.
"""

from __future__ import annotations

import collections
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import celpy

from . import errors
from .auth import Identity
from .resources import ResourceType
from .store import Store

GROUP = "admissionregistration.k8s.io"
POLICIES = f"{GROUP}/validatingadmissionpolicies"
BINDINGS = f"{GROUP}/validatingadmissionpolicybindings"
REASON_CODES = {"Invalid": 422, "Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413}


@dataclass(frozen=True)
class Request:
    """One write as admission sees it."""

    operation: str  # CREATE | UPDATE | DELETE
    rt: ResourceType
    subresource: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    user: Identity
    dry_run: bool = False

    def as_cel_input(self) -> dict[str, Any]:
        gvk = {"group": self.rt.group, "version": self.rt.version, "kind": self.rt.kind}
        gvr = {"group": self.rt.group, "version": self.rt.version, "resource": self.rt.plural}
        req: dict[str, Any] = {"uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr,
                               "requestKind": gvk, "requestResource": gvr,
                               "operation": self.operation, "userInfo": self.user.user_info(),
                               "dryRun": self.dry_run}
        if self.subresource:
            req["subResource"] = req["requestSubResource"] = self.subresource
        if self.name:
            req["name"] = self.name
        if self.namespace:
            req["namespace"] = self.namespace
        return req


class CelError(Exception):
    pass


class _ShortCircuit(celpy.evaluation.Evaluator):
    """celpy's interpreter evaluates both sides of `||` and `&&`, then combines them by
    CEL's error-absorbing rules. Same results, without evaluating the right side when the
    left decides (`true || x`, `false && x`), as cel-go does."""

    def _logic(self, tree: Any, decided: bool, name: str, fallback: Any) -> Any:
        if len(tree.children) != 2:
            return fallback(tree)
        left = self.visit(tree.children[0])
        if isinstance(left, (bool, celpy.celtypes.BoolType)) and bool(left) is decided:
            return celpy.celtypes.BoolType(decided)
        right = self.visit(tree.children[1])
        try:
            return self.activation.resolve_function(name)(left, right)
        except TypeError as exc:
            return celpy.CELEvalError(f"found no matching overload for {name} applied to "
                                      f"'({type(left)}, {type(right)})'", exc.__class__, exc.args, tree=tree)

    def conditionalor(self, tree: Any) -> Any:
        return self._logic(tree, True, "_||_", super().conditionalor)

    def conditionaland(self, tree: Any) -> Any:
        return self._logic(tree, False, "_&&_", super().conditionaland)


class _Runner(celpy.InterpretedRunner):
    def evaluate(self, context: Any) -> Any:
        return _ShortCircuit(ast=self.ast, activation=self.new_activation()).evaluate(context)


_PATH = re.compile(r"(?<![\w.'\"])(object|oldObject|request|params|namespaceObject|variables)((?:\.[A-Za-z_]\w*)*)")
_MISSING = object()


class _Programs:
    """CEL programs, one per expression text, run by celpy's interpreter (it follows the
    spec's error-absorbing && and ||; its transpiler does not). The interpreter is slow,
    so results are memoized on what an expression can read: the values at the longest
    static paths it names (`object.spec`, `request.userInfo.extra`, ...) and the inputs of
    the variables it uses. Sound because CEL is pure and every access to the request's
    data goes through such a path (a macro's iteration variable ranges over a value
    reached by one)."""

    def __init__(self, limit: int = 4096) -> None:
        self._env = celpy.Environment(runner_class=_Runner)
        self._cache: dict[str, Any] = {}
        self._paths: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self._memo: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def _program(self, expression: str) -> Any:
        with self._lock:
            program = self._cache.get(expression)
            if program is None:
                try:
                    program = self._env.program(self._env.compile(expression))
                except Exception as exc:  # celpy raises its own parse errors
                    raise CelError(f"compilation failed: {exc}") from None
                self._cache[expression] = program
                self._paths[expression] = [(root, tuple(p for p in rest.split(".") if p))
                                           for root, rest in _PATH.findall(expression)]
            return program

    def key(self, expression: str, data: dict[str, Any], variables: dict[str, str],
            seen: frozenset[str] = frozenset(), known: dict[str, tuple[Any, ...]] | None = None) -> tuple[Any, ...]:
        """What the expression's value depends on, as a hashable tuple (`known`: the
        variables' keys already computed for this request)."""
        self._program(expression)
        known = {} if known is None else known
        parts: list[Any] = [expression]
        for root, path in self._paths[expression]:
            if root == "variables":
                name = path[0] if path else ""
                if name in variables and name not in seen:
                    if name not in known:
                        known[name] = self.key(variables[name], data, variables, seen | {name}, known)
                    parts.append(("var", name, known[name]))
                continue
            value: Any = data.get(root)
            for part in path:
                value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
                if value is _MISSING:
                    break
            parts.append((root, path, "<missing>" if value is _MISSING
                          else json.dumps(value, sort_keys=True, separators=(",", ":"))))
        return tuple(parts)

    def evaluate(self, expression: str, activation: Callable[[], dict[str, Any]],
                 key: tuple[Any, ...] | None = None) -> Any:
        if key is not None:
            with self._lock:
                if key in self._memo:
                    self._memo.move_to_end(key)
                    outcome = self._memo[key]
                    if isinstance(outcome, CelError):
                        raise outcome
                    return outcome
        program = self._program(expression)
        try:
            value = program.evaluate(activation())
            if isinstance(value, celpy.CELEvalError):
                raise CelError(str(value))
        except CelError as exc:
            self._remember(key, exc)
            raise
        except Exception as exc:
            error = CelError(str(exc))
            self._remember(key, error)
            raise error from None
        self._remember(key, value)
        return value

    def _remember(self, key: tuple[Any, ...] | None, outcome: Any) -> None:
        if key is None:
            return
        with self._lock:
            self._memo[key] = outcome
            if len(self._memo) > self._limit:
                self._memo.popitem(last=False)


class _Evaluation:
    """One request's evaluation context: the CEL activation and the memo keys."""

    def __init__(self, programs: _Programs, data: dict[str, Any], variables: dict[str, str]) -> None:
        self.programs = programs
        self.data = data
        self.variables = variables
        self._activation: dict[str, Any] | None = None
        self._keys: dict[str, tuple[Any, ...]] = {}

    @property
    def activation(self) -> dict[str, Any]:
        """The CEL values, converted only when an expression is not in the memo."""
        if self._activation is None:
            self._activation = {k: celpy.json_to_cel(v) for k, v in self.data.items()}
            self._activation["variables"] = _LazyVariables(self)
        return self._activation

    def __call__(self, expression: str) -> Any:
        key = self.programs.key(expression, self.data, self.variables, known=self._keys)
        return self.programs.evaluate(expression, lambda: self.activation, key)


class _LazyVariables(celpy.celtypes.MapType):
    """`variables`: each evaluated on first use, as the real plugin's lazy composition
    does (a variable that cannot be evaluated fails only the expressions that use it)."""

    def __init__(self, evaluation: _Evaluation) -> None:
        super().__init__()
        self._evaluation = evaluation

    def __contains__(self, key: object) -> bool:
        return str(key) in self._evaluation.variables

    def __getitem__(self, key: Any) -> Any:
        name = str(key)
        if name not in self._evaluation.variables:
            raise KeyError(key)
        if not super().__contains__(name):
            value = self._evaluation(self._evaluation.variables[name])
            super().__setitem__(celpy.celtypes.StringType(name), value)
        return super().__getitem__(name)


def _rule_matches(rule: dict[str, Any], req: Request) -> bool:
    rt = req.rt
    if not _listed(rule.get("apiGroups"), rt.group) or not _listed(rule.get("apiVersions"), rt.version):
        return False
    if not _listed(rule.get("operations"), req.operation):
        return False
    scope = rule.get("scope") or "*"
    if scope != "*" and scope != ("Namespaced" if rt.namespaced else "Cluster"):
        return False
    resources = rule.get("resources") or []
    sub = req.subresource
    combined = f"{rt.plural}/{sub}" if sub else rt.plural
    return any(r == combined or (r == "*" and not sub) or (r == "*/*")
               or (sub and r in (f"*/{sub}", f"{rt.plural}/*")) for r in resources)


def _listed(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _resources_match(match: dict[str, Any] | None, req: Request, require_rules: bool) -> bool:
    match = match or {}
    rules = match.get("resourceRules") or []
    if (rules or require_rules) and not any(_rule_matches(r, req) for r in rules):
        return False
    if any(_rule_matches(r, req) for r in match.get("excludeResourceRules") or []):
        return False
    labels = ((req.obj or req.old or {}).get("metadata") or {}).get("labels") or {}
    return _selector_matches(match.get("objectSelector"), labels)


class PolicyAdmission:
    """The ValidatingAdmissionPolicy plugin over the store's policies and bindings."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.programs = _Programs()
        self._snapshot: tuple[tuple[int, int], list[dict[str, Any]], dict[str, dict[str, Any]]] | None = None

    def _objects(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        stamp = (self.store.last_change(BINDINGS), self.store.last_change(POLICIES))
        if self._snapshot is None or self._snapshot[0] != stamp:
            bindings = [e.obj() for _k, e in self.store.items(BINDINGS)]
            policies = {e.obj()["metadata"]["name"]: e.obj() for _k, e in self.store.items(POLICIES)}
            self._snapshot = (stamp, bindings, policies)
        return self._snapshot[1], self._snapshot[2]

    def __call__(self, req: Request) -> None:
        bindings, policies = self._objects()
        if not bindings:
            return
        for binding in sorted(bindings, key=lambda b: b["metadata"]["name"]):
            spec = binding.get("spec") or {}
            policy = policies.get(spec.get("policyName", ""))
            if policy is None or "Deny" not in (spec.get("validationActions") or []):
                continue
            pspec = policy.get("spec") or {}
            if not _resources_match(pspec.get("matchConstraints"), req, require_rules=True):
                continue
            if not _resources_match(spec.get("matchResources"), req, require_rules=False):
                continue
            self._validate(policy["metadata"]["name"], binding["metadata"]["name"], pspec, req)

    def _validate(self, policy: str, binding: str, spec: dict[str, Any], req: Request) -> None:
        ignore = spec.get("failurePolicy") == "Ignore"
        data = {"object": copy.deepcopy(req.obj), "oldObject": copy.deepcopy(req.old),
                "request": req.as_cel_input(), "params": None, "namespaceObject": None}
        evaluate = _Evaluation(self.programs, data, {v["name"]: v["expression"] for v in spec.get("variables") or []})
        try:
            for cond in spec.get("matchConditions") or []:
                if not bool(evaluate(cond["expression"])):
                    return  # the policy does not apply to this request
        except CelError as exc:
            if not ignore:
                self._deny(policy, binding, req, f"expression could not be evaluated: {exc}", "Invalid")
            return
        for validation in spec.get("validations") or []:
            expression = validation["expression"]
            try:
                ok = bool(evaluate(expression))
            except CelError as exc:
                if ignore:
                    continue
                self._deny(policy, binding, req, f"expression '{expression}' resulted in error: {exc}",
                           validation.get("reason") or "Invalid")
            if ok:
                continue
            message = validation.get("message") or f"failed expression: {expression}"
            if validation.get("messageExpression"):
                try:
                    message = str(evaluate(validation["messageExpression"]))
                except CelError:
                    pass
            self._deny(policy, binding, req, message, validation.get("reason") or "Invalid")

    @staticmethod
    def _deny(policy: str, binding: str, req: Request, message: str, reason: str) -> None:
        text = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"
        code = REASON_CODES.get(reason, 422)
        qualified = errors.qualified(req.rt.plural, req.rt.group)
        details: dict[str, Any] = {"name": req.name, "kind": req.rt.plural}
        if req.rt.group:
            details["group"] = req.rt.group
        if reason == "Forbidden":
            raise errors.ApiError(403, "Forbidden", f'{qualified} "{req.name}" is forbidden: {text}', details)
        details["causes"] = [{"message": text}]
        raise errors.ApiError(code, reason, text, details)
