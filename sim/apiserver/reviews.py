"""The reviews: SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectRulesReview (authorization.k8s.io/v1), TokenReview and SelfSubjectReview
(authentication.k8s.io/v1). Created, answered with their status, never stored; what
`kubectl auth can-i` and `kubectl auth whoami` send. Follows pkg/registry/authorization
and pkg/registry/authentication:

- an access review asks the same authorizer that guards requests; with RBAC off
  (AlwaysAllow) every review is allowed;
- a LocalSubjectAccessReview's namespace must be the URL's (400 otherwise);
- a TokenReview of an unknown token answers `authenticated: false`, never an error; an
  empty token is a 400 ("token is required for TokenReview in authentication");
- audiences (pkg/registry/authentication/tokenreview/storage.go, and
  `authenticator.WrapAudienceAgnosticToken`): the review asks for `spec.audiences`, or
  the API server's own (`--api-audiences`) when empty; the simulator's tokens are
  audience-agnostic, as static and legacy tokens are, so they authenticate only when the
  requested audiences include one of the API server's, and `status.audiences` is that
  intersection;
- the answer echoes the spec, with `metadata.creationTimestamp: null`, code 201;
- every review is a create in the audit log, as kube-apiserver's audit records it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import errors
from .auth import AuditLog, AuditRecord, Identities, Identity
from .rbac import MASTERS, Attributes, Authorizer
from .resources import ResourceType

Answer = tuple[int, dict[str, Any]]
API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)  # kube-apiserver's default


class Reviews:
    def __init__(self, identities: Identities, authorizer: Callable[[], Authorizer | None],
                 audit: AuditLog | None = None, clock: Callable[[], float] = time.time,
                 api_audiences: tuple[str, ...] = API_AUDIENCES) -> None:
        self.identities = identities
        self.authorizer = authorizer
        self.audit = audit
        self.clock = clock
        self.api_audiences = api_audiences

    def create(self, rt: ResourceType, namespace: str, body: Any, caller: Identity) -> Answer:
        try:
            code, out = self._answer(rt, namespace, body, caller)
        except errors.ApiError as err:
            self._audit(rt, namespace, caller, err.code, err.message)
            raise
        self._audit(rt, namespace, caller, code, "")
        return code, out

    def _audit(self, rt: ResourceType, namespace: str, caller: Identity, code: int, detail: str) -> None:
        if self.audit is not None:
            self.audit.record(AuditRecord(self.clock(), caller.name, "create", f"{rt.plural}.{rt.group}",
                                          namespace, "", "", code, detail[:300], credential=caller.handle))

    def _token(self, spec: dict[str, Any]) -> dict[str, Any]:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise errors.bad_request("token is required for TokenReview in authentication")
        requested = spec.get("audiences") or list(self.api_audiences)
        audiences = [a for a in self.api_audiences if a in requested]
        found = self.identities.lookup(token)
        if found is None or not audiences:
            return {"user": {}}
        return {"authenticated": True, "user": found.user_info(), "audiences": audiences}

    def _answer(self, rt: ResourceType, namespace: str, body: Any, caller: Identity) -> Answer:
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of the request could not be decoded as a {rt.kind}")
        raw_spec = body.get("spec")
        spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
        out: dict[str, Any] = {"kind": rt.kind, "apiVersion": rt.api_version,
                               "metadata": {"creationTimestamp": None}, "spec": spec}
        if rt.kind == "SelfSubjectAccessReview":
            out["status"] = self._access(caller, spec, "")
        elif rt.kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
            if not spec.get("user") and not spec.get("groups"):
                raise errors.invalid(rt.kind, rt.group, "", [{
                    "reason": "FieldValueRequired", "field": "spec.user",
                    "message": "Required value: at least one of user or group must be specified"}])
            ns = (spec.get("resourceAttributes") or {}).get("namespace", "")
            if rt.kind == "LocalSubjectAccessReview" and ns != namespace:
                raise errors.bad_request(
                    f"spec.resourceAttributes.namespace must match namespace: {namespace}")
            subject = Identity(str(spec.get("user") or ""), tuple(spec.get("groups") or ()),
                               uid=str(spec.get("uid") or ""))
            out["status"] = self._access(subject, spec, "")
            if namespace:
                out["metadata"]["namespace"] = namespace
        elif rt.kind == "SelfSubjectRulesReview":
            out["status"] = self._rules(caller, str(spec.get("namespace") or ""))
        elif rt.kind == "TokenReview":
            out["status"] = self._token(spec)
        elif rt.kind == "SelfSubjectReview":
            out["status"] = {"userInfo": caller.user_info()}
            out.pop("spec")
        return 201, out

    def _access(self, subject: Identity, spec: dict[str, Any], _ns: str) -> dict[str, Any]:
        res = spec.get("resourceAttributes")
        nonres = spec.get("nonResourceAttributes")
        if isinstance(res, dict):
            attrs = Attributes.of(subject, verb=str(res.get("verb") or ""), api_group=str(res.get("group") or ""),
                                  resource=str(res.get("resource") or ""),
                                  subresource=str(res.get("subresource") or ""),
                                  namespace=str(res.get("namespace") or ""), name=str(res.get("name") or ""))
        elif isinstance(nonres, dict):
            attrs = Attributes.of(subject, verb=str(nonres.get("verb") or ""), resource_request=False,
                                  path=str(nonres.get("path") or ""))
        else:
            raise errors.invalid("SelfSubjectAccessReview", "authorization.k8s.io", "", [{
                "reason": "FieldValueRequired", "field": "spec.resourceAttributes",
                "message": "Required value: exactly one of nonResourceAttributes or resourceAttributes "
                           "must be specified"}])
        authorizer = self.authorizer()
        if authorizer is None:
            return {"allowed": True, "reason": ""}
        allowed, reason = authorizer.authorize(attrs)
        return {"allowed": allowed, "reason": reason} if allowed else {"allowed": False}

    def _rules(self, caller: Identity, namespace: str) -> dict[str, Any]:
        authorizer = self.authorizer()
        if authorizer is None or MASTERS in caller.groups:
            rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                     {"verbs": ["*"], "nonResourceURLs": ["*"]}]
        else:
            rules = authorizer.rules(caller, namespace)
        resource = [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
                    for r in rules if r.get("resources")]
        nonresource = [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                       for r in rules if r.get("nonResourceURLs")]
        return {"resourceRules": resource, "nonResourceRules": nonresource, "incomplete": False}
