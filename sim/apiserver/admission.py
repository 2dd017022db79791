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

The denial reads as the real one: `ValidatingAdmissionPolicy '<policy>' with binding
'<binding>' denied request: <message>`. In-process writes of the simulated cluster's own
components (kubelets, controllers) are not admission-checked: they carry no user.
"""

from __future__ import annotations

import copy
import threading
import uuid
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


class _Programs:
    """Compiled CEL programs, one per expression text."""

    def __init__(self) -> None:
        self._env = celpy.Environment()
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def evaluate(self, expression: str, activation: dict[str, Any]) -> Any:
        with self._lock:
            program = self._cache.get(expression)
            if program is None:
                try:
                    program = self._env.program(self._env.compile(expression))
                except Exception as exc:  # celpy raises its own parse errors
                    raise CelError(f"compilation failed: {exc}") from None
                self._cache[expression] = program
        try:
            value = program.evaluate(activation)
        except Exception as exc:
            raise CelError(str(exc)) from None
        if isinstance(value, celpy.CELEvalError):
            raise CelError(str(value))
        return value


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

    def __call__(self, req: Request) -> None:
        bindings = [e.obj() for _k, e in self.store.items(BINDINGS)]
        if not bindings:
            return
        policies = {e.obj()["metadata"]["name"]: e.obj() for _k, e in self.store.items(POLICIES)}
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
        activation: dict[str, Any] = {k: celpy.json_to_cel(v) for k, v in data.items()}
        variables: dict[Any, Any] = {}
        activation["variables"] = celpy.celtypes.MapType(variables)
        try:
            for cond in spec.get("matchConditions") or []:
                if not bool(self.programs.evaluate(cond["expression"], activation)):
                    return  # the policy does not apply to this request
            for var in spec.get("variables") or []:
                variables[celpy.celtypes.StringType(var["name"])] = self.programs.evaluate(
                    var["expression"], activation)
                activation["variables"] = celpy.celtypes.MapType(variables)
        except CelError as exc:
            if not ignore:
                self._deny(policy, binding, req, f"expression could not be evaluated: {exc}", "Invalid")
            return
        for validation in spec.get("validations") or []:
            expression = validation["expression"]
            try:
                ok = bool(self.programs.evaluate(expression, activation))
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
                    message = str(self.programs.evaluate(validation["messageExpression"], activation))
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
