"""The Kubernetes REST paths: discovery, health, and get/list/watch/create/update/
patch/delete on every served resource and its status subresource."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from . import discovery, errors, events, openapi, protobuf, rbac, tables
from .auth import SA_PREFIX, AuditLog, AuditRecord, Identity, service_account
from .http import Request, Response, json_response
from .registry import Registry, Result, WriteOptions
from .resources import ResourceType
from .reviews import Reviews
from .selectors import (
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import DELETED, Change, Entry, Expired, dumps

TABLE_MARK = "as=Table"
BOOKMARK_INTERVAL_S = 10.0
MUTATING = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


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
        if sub not in (None, "status") or (sub == "status" and not rt.status_subresource):
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
                self._watch(req, rt, namespace, name)
                return None
            if name:
                entry = self.registry.get(rt, namespace, name)
                return self._object_response(req, rt, entry)
            return self._list(req, rt, namespace)
        if verb == "delete" and not name:
            verb = "deletecollection"
        try:
            resp = self._mutate(req, rt, namespace, name, sub, verb)
        except errors.ApiError as err:
            self._audit(req, rt, namespace, name, sub, verb, err.code, err.message)
            raise
        self._audit(req, rt, namespace, name or _created_name(resp), sub, verb, resp.code, "")
        return resp

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

    # -- reads ------------------------------------------------------------------------

    def _wants_table(self, req: Request) -> bool:
        return TABLE_MARK in (req.headers.get("Accept") or "")

    def _object_response(self, req: Request, rt: ResourceType, entry: Entry, code: int = 200,
                         warnings: list[str] | None = None) -> Response:
        headers = [("Warning", f'299 - "{w}"') for w in warnings or []]
        if self._wants_table(req):
            obj = self.registry.decode(rt, entry)
            return json_response(code, tables.table(rt, [obj], self.clock(), str(entry.rv),
                                                    req.query.get("includeObject", "Metadata")), headers)
        return Response(code, self.registry.render(rt, entry), headers=headers)

    def _selectors(self, req: Request, rt: ResourceType) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(req.query.get("labelSelector"))
            text = req.query.get("fieldSelector")
            if rt.group == "events.k8s.io" and text:
                for new, old in events.FIELD_LABELS.items():
                    text = text.replace(new, old)
                supported = self.registry.types.lookup("", "v1", "events").field_labels  # type: ignore[union-attr]
            else:
                supported = rt.field_labels
            fields = parse_field_selector(text, supported)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        return labels, fields

    def _matching(self, rt: ResourceType, namespace: str, labels: Any, fields: Any) -> list[tuple[tuple[str, str], Entry]]:
        table = self.registry.table(rt)
        out = []
        for key, entry in self.registry.store.items(table, namespace or None):
            if labels and not labels_match(labels, entry.labels):
                continue
            if fields and not all(f.matches(entry.fields.get) for f in fields):
                continue
            out.append((key, entry))
        out.sort(key=lambda kv: kv[0])
        return out

    def _list(self, req: Request, rt: ResourceType, namespace: str) -> Response:
        labels, fields = self._selectors(req, rt)
        store = self.registry.store
        with store.lock:
            rv = store.resource_version
            matching = self._matching(rt, namespace, labels, fields)
        token = req.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = tuple(state["start"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid") from None
            matching = [kv for kv in matching if kv[0] > start]
        next_token = ""
        limit = req.query.get("limit")
        if limit and limit.isdigit() and int(limit) > 0 and len(matching) > int(limit):
            matching = matching[: int(limit)]
            last = matching[-1][0]
            next_token = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "start": list(last)}).encode()).decode()
        if self._wants_table(req):
            objs = [self.registry.decode(rt, e) for _, e in matching]
            return json_response(200, tables.table(rt, objs, self.clock(), str(rv),
                                                   req.query.get("includeObject", "Metadata"),
                                                   next_token))
        meta = {"resourceVersion": str(rv)}
        if next_token:
            meta["continue"] = next_token
        head = dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        items = b",".join(self.registry.render(rt, e) for _, e in matching)
        return Response(200, head[:-1] + b',"items":[' + items + b"]}")

    # -- watch ------------------------------------------------------------------------

    def _watch(self, req: Request, rt: ResourceType, namespace: str, name: str) -> None:
        labels, fields = self._selectors(req, rt)
        if name:
            fields = (*fields, *parse_field_selector(f"metadata.name={name}", ()))
        handler = req.handler
        store = self.registry.store
        table = self.registry.table(rt)
        as_table = self._wants_table(req)
        timeout = req.query.get("timeoutSeconds")
        deadline = time.monotonic() + (float(timeout) if timeout and timeout.isdigit() else 1800.0)
        bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
        rv_param = req.query.get("resourceVersion", "")

        def matches(entry: Entry | None, ns: str) -> bool:
            if entry is None or (namespace and ns != namespace):
                return False
            if labels and not labels_match(labels, entry.labels):
                return False
            return all(f.matches(entry.fields.get) for f in fields)

        def encode(kind: str, entry: Entry) -> bytes:
            if as_table:
                obj = self.registry.decode(rt, entry)
                body = dumps(tables.table(rt, [obj], self.clock(), str(entry.rv), "Object"))
            else:
                body = self.registry.render(rt, entry)
            return b'{"type":"' + kind.encode() + b'","object":' + body + b"}\n"

        initial: list[bytes] = []
        if rv_param in ("", "0"):
            with store.lock:
                last = store.resource_version
                for _key, entry in self._matching(rt, namespace, labels, fields):
                    initial.append(encode("ADDED", entry))
        else:
            try:
                last = int(rv_param)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv_param}") from None
        try:
            pending: list[Change] = store.changes_since(table, last)
        except Expired as exc:
            handler.start_stream()
            status = errors.gone(str(exc)).status()
            handler.send_chunk(dumps({"type": "ERROR", "object": status}) + b"\n")
            handler.end_stream()
            return
        handler.start_stream()
        try:
            for chunk in initial:
                handler.send_chunk(chunk)
            next_bookmark = time.monotonic() + BOOKMARK_INTERVAL_S
            while not store.closed and time.monotonic() < deadline:
                for change in pending:
                    kind = _event_type(change, matches)
                    if kind:
                        handler.send_chunk(encode(kind, change.entry))
                    last = change.rv
                pending = []
                if bookmarks and time.monotonic() >= next_bookmark:
                    mark = {"type": "BOOKMARK", "object": {
                        "kind": rt.kind, "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(max(last, store.resource_version))}}}
                    handler.send_chunk(dumps(mark) + b"\n")
                    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL_S
                wait = min(1.0, max(0.0, deadline - time.monotonic()))
                if not store.wait_for_change(table, last, wait):
                    if handler.client_gone(0):
                        return
                    continue
                try:
                    pending = store.changes_since(table, last)
                except Expired as exc:
                    status = errors.gone(str(exc)).status()
                    handler.send_chunk(dumps({"type": "ERROR", "object": status}) + b"\n")
                    break
            handler.end_stream()
        except OSError:
            handler.close_connection = True

    # -- writes -----------------------------------------------------------------------

    def _options(self, req: Request) -> WriteOptions:
        validation = req.query.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"fieldValidation parameter unsupported: {validation}")
        return WriteOptions(dry_run=req.query.get("dryRun") == "All", field_validation=validation,
                            user=req.identity)

    def _mutate(self, req: Request, rt: ResourceType, namespace: str, name: str,
                sub: str | None, verb: str) -> Response:
        opts = self._options(req)
        if verb == "create":
            if name:
                raise errors.method_not_allowed()
            body = req.json()
            if body is None:
                raise errors.bad_request("the body of the request was empty")
            result = self.registry.create(rt, namespace, body, opts)
            return self._object_response(req, rt, result.entry, 201, result.warnings)
        if verb == "update":
            body = req.json()
            if body is None:
                raise errors.bad_request("the body of the request was empty")
            result = self.registry.update(rt, namespace, name, body, sub, opts)
            return self._write_result(req, rt, result)
        if verb == "patch":
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
            body = req.json()
            if body is None:
                raise errors.bad_request("the body of the request was empty")
            result = self.registry.patch(rt, namespace, name, ctype, body, sub, opts)
            return self._write_result(req, rt, result)
        if verb == "delete":
            return self._delete(req, rt, namespace, name)
        return self._delete_collection(req, rt, namespace)

    def _write_result(self, req: Request, rt: ResourceType, result: Result) -> Response:
        return self._object_response(req, rt, result.entry, 200, result.warnings)

    def _delete_options(self, req: Request) -> dict[str, Any]:
        body = req.json() if req.body else None
        opts: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        if "gracePeriodSeconds" in req.query:
            opts["gracePeriodSeconds"] = req.query["gracePeriodSeconds"]
        if req.query.get("dryRun") == "All":
            opts["dryRun"] = ["All"]
        grace = opts.get("gracePeriodSeconds")
        if grace is not None:
            try:
                opts["gracePeriodSeconds"] = int(grace)
            except (TypeError, ValueError):
                raise errors.bad_request(f"invalid gracePeriodSeconds: {grace}") from None
        return opts

    def _delete(self, req: Request, rt: ResourceType, namespace: str, name: str) -> Response:
        opts = self._delete_options(req)
        result = self.registry.delete(rt, namespace, name, opts.get("gracePeriodSeconds"),
                                      opts.get("preconditions"), bool(opts.get("dryRun")), req.identity)
        if result.deleted and not (rt.kind == "Pod" or rt.custom):
            meta = result.obj.get("metadata", {})
            details = {"name": name, "kind": rt.plural, "uid": meta.get("uid", "")}
            if rt.group:
                details["group"] = rt.group
            return json_response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                       "status": "Success", "details": details})
        return self._object_response(req, rt, result.entry, 200)

    def _delete_collection(self, req: Request, rt: ResourceType, namespace: str) -> Response:
        labels, fields = self._selectors(req, rt)
        opts = self._delete_options(req)
        deleted = []
        for (ns, name), _ in self._matching(rt, namespace, labels, fields):
            try:
                result = self.registry.delete(rt, ns, name, opts.get("gracePeriodSeconds"),
                                              None, bool(opts.get("dryRun")), req.identity)
                deleted.append(result.obj)
            except errors.ApiError as err:
                if err.code != 404:
                    raise
        return json_response(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                   "metadata": {"resourceVersion": str(self.registry.store.resource_version)},
                                   "items": deleted})

    def _audit(self, req: Request, rt: ResourceType, namespace: str, name: str,
               sub: str | None, verb: str, code: int, detail: str) -> None:
        user = req.identity.name if req.identity else "system:anonymous"
        resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        self.audit.record(AuditRecord(self.clock(), user, verb, resource, namespace, name,
                                      sub or "", code, detail[:300],
                                      credential=req.identity.handle if req.identity else ""))


def _created_name(resp: Response) -> str:
    try:
        return str(json.loads(resp.body).get("metadata", {}).get("name", ""))
    except (ValueError, AttributeError):
        return ""


def _event_type(change: Change, matches: Callable[[Entry | None, str], bool]) -> str | None:
    now = matches(change.entry, change.namespace)
    before = matches(change.prev, change.namespace)
    if change.type == DELETED:
        return "DELETED" if (now or before) else None
    if change.type == "ADDED":
        return "ADDED" if now else None
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None
