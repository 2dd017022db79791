"""The Kubernetes REST paths: health, discovery, OpenAPI, authentication and RBAC of each
request (with impersonation), then dispatch of get/list/watch/create/update/patch/delete
on every served resource and its status subresource to `reads`, `watch` and `writes`."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import discovery, errors, openapi, protobuf, rbac, scale
from .apply import APPLY_PATCH
from .auth import SA_PREFIX, AuditLog, Identity, service_account
from .http import Request, Response, json_response
from .reads import Reads
from .registry import Registry
from .resources import ResourceType
from .reviews import Reviews
from .watch import serve as watch_stream
from .writes import MUTATING, Writes


class ApiRoutes:
    def __init__(self, registry: Registry, audit: AuditLog, address: Callable[[], str],
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.audit = audit
        self.address = address
        self.clock = clock
        self.extra: list[Callable[[Request], Response | None]] = []
        self.ready: Callable[[], bool] = lambda: True
        # RBAC (None: AlwaysAllow, as `--authorization-mode=AlwaysAllow`) and the reviews.
        self.authorizer: rbac.Authorizer | None = None
        self.reviews: Reviews | None = None
        self.reads = Reads(registry, clock)
        self.writes = Writes(registry, self.reads, audit, clock)

    # -- entry ------------------------------------------------------------------------

    def __call__(self, req: Request) -> Response | None:
        path = req.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            ok = self.ready() and not self.registry.store.closed
            return Response(200 if ok else 500, b"ok" if ok else b"not ready", "text/plain")
        if path == "/version":
            return json_response(200, discovery.SERVER_VERSION)
        for route in self.extra:
            resp = route(req)
            if resp is not None:
                return resp
        if req.identity is None:
            raise errors.unauthorized()
        if req.headers.get("Impersonate-User"):
            req.identity = self._impersonate(req)
        parts = [p for p in path.split("/") if p]
        resource_request = (parts[:1] == ["api"] and len(parts) > 2) or (parts[:1] == ["apis"] and len(parts) > 3)
        if not resource_request:
            self._authorize(req, rbac.Attributes.of(req.identity, verb=req.method.lower(),
                                                    resource_request=False, path=path))
        if not parts:
            return json_response(200, {"paths": ["/api", "/api/v1", "/apis", "/healthz",
                                                 "/livez", "/readyz", "/version"]})
        if parts[0] == "api":
            if len(parts) == 1:
                return json_response(200, discovery.api_versions(self.address()))
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                return json_response(200, discovery.api_group_list(self.registry.types))
            if len(parts) == 2:
                body = discovery.api_group(self.registry.types, parts[1])
                if body is None:
                    raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
                return json_response(200, body)
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "openapi" and parts[1:2] == ["v3"]:
            doc = (openapi.index(self.registry.types) if len(parts) == 2
                   else openapi.document(self.registry.types, parts[2:]))
            if doc is None:
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(200, doc)
        else:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            body = discovery.resource_list(self.registry.types, group, version)
            if body is None:
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(200, body)
        return self._resource(req, group, version, rest)

    def _resource(self, req: Request, group: str, version: str, rest: list[str]) -> Response | None:
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace = ""
        if rest and rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in ("status", "finalize")
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else None
        if req.query.get("watch") in ("true", "1"):
            watch = True
        self._authorize_resource(req, group, rest, namespace, name, sub or "", watch)  # before 404, as RBAC is
        rt = self.registry.types.lookup(group, version, rest[0])
        if rt is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace and not rt.namespaced:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub not in (None, "status", *rt.subresources) or (sub == "status" and not rt.status_subresource):
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.virtual:
            if req.method != "POST" or name or self.reviews is None or req.identity is None:
                raise errors.method_not_allowed()
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
            body = protobuf.decode(req.body, rt.kind) if ctype == protobuf.PROTOBUF else req.json()
            code, body = self.reviews.create(rt, namespace, body, req.identity)
            return json_response(code, body)
        verb = MUTATING.get(req.method)
        if verb is None:
            if req.method not in ("GET", "HEAD"):
                raise errors.method_not_allowed()
            if watch:
                watch_stream(self.reads, req, rt, namespace, name)
                return None
            if sub == "scale":
                return json_response(200, scale.get(self.registry, rt, namespace, name))
            if sub == "eviction":
                raise errors.method_not_allowed()
            if name:
                entry = self.registry.get(rt, namespace, name)
                return self.reads.object_response(req, rt, entry)
            return self.reads.list(req, rt, namespace)
        if verb == "delete" and not name:
            verb = "deletecollection"
        if verb == "patch" and req.identity is not None and self._apply_creates(req, rt, namespace, name, sub):
            # handlers/patch.go: an apply that creates the object is authorized for create too.
            self._authorize(req, rbac.Attributes.of(req.identity, verb="create", api_group=group,
                                                    resource=rest[0], namespace=namespace, name=name))
        return self.writes.handle(req, rt, namespace, name, sub, verb)

    def _apply_creates(self, req: Request, rt: ResourceType, namespace: str, name: str,
                       sub: str | None) -> bool:
        if self.authorizer is None or sub or not name:
            return False
        if (req.headers.get("Content-Type") or "").split(";")[0].strip() != APPLY_PATCH:
            return False
        return self.registry.store.get(self.registry.table(rt), namespace, name) is None

    # -- authorization ----------------------------------------------------------------

    def _authorize(self, req: Request, attrs: rbac.Attributes) -> None:
        if self.authorizer is None:
            return
        allowed, _reason = self.authorizer.authorize(attrs)
        if not allowed:
            raise rbac.forbidden(attrs)

    def _impersonate(self, req: Request) -> Identity:
        """`kubectl --as`: the caller must be allowed to impersonate the user (or service
        account) and each group; the request then runs as that user, as the
        impersonation filter (endpoints/filters/impersonation.go) does."""
        assert req.identity is not None
        user = req.headers["Impersonate-User"]
        groups = tuple(req.headers.get_all("Impersonate-Group") or ())
        if user.startswith(SA_PREFIX) and user.count(":") == 3:
            ns, name = user.split(":")[2:]
            self._authorize(req, rbac.Attributes.of(req.identity, verb="impersonate", resource="serviceaccounts",
                                                    namespace=ns, name=name))
            target = service_account(user, groups=groups)
        else:
            self._authorize(req, rbac.Attributes.of(req.identity, verb="impersonate", resource="users", name=user))
            target = Identity(user, tuple(dict.fromkeys((*groups, "system:authenticated"))), handle=user)
        for group in groups:
            self._authorize(req, rbac.Attributes.of(req.identity, verb="impersonate", resource="groups", name=group))
        return target

    def _authorize_resource(self, req: Request, group: str, rest: list[str], namespace: str,
                            name: str, sub: str, watch: bool) -> None:
        """The request's attributes as RequestInfo derives them from the URL: the verb
        from the method (list/watch/deletecollection for a collection); a list or watch
        names the object its fieldSelector requires; a namespace's name is its namespace."""
        if self.authorizer is None or req.identity is None:
            return
        verb = rbac.request_verb(req.method, name, watch)
        if verb in ("list", "watch") and not name:
            name = rbac.selected_name(req.query.get("fieldSelector"))
        if rest[0] == "namespaces" and name and not namespace:
            namespace = name
        self._authorize(req, rbac.Attributes.of(req.identity, verb=verb, api_group=group, resource=rest[0],
                                                subresource=sub, namespace=namespace, name=name))
