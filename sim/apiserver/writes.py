"""Writes over HTTP: create, update, patch (on an object or its status; server-side apply
in apply.py), delete with DeleteOptions (grace period, preconditions, dry run; JSON or
protobuf; the deleted object or a `Success` Status as the real storage answers) and
deletecollection, the eviction and scale subresources, each recorded in the audit log
with the answer's code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from . import errors, eviction, protobuf, scale
from .apply import APPLY_PATCH
from .auth import AuditLog, AuditRecord
from .http import Request, Response, json_response
from .reads import Reads
from .registry import Registry, Result, WriteOptions
from .resources import ResourceType

MUTATING = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Kinds whose storage sets `ReturnDeletedObject: true` (pkg/registry/core/{pod,service,
# persistentvolume,persistentvolumeclaim,serviceaccount,namespace}/storage): a finished
# DELETE answers with the deleted object; every other built-in kind with a `Success` Status.
RETURNS_DELETED_OBJECT = {("", "pods"), ("", "services"), ("", "persistentvolumes"),
                          ("", "persistentvolumeclaims"), ("", "serviceaccounts"), ("", "namespaces")}


class Writes:
    def __init__(self, registry: Registry, reads: Reads, audit: AuditLog,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.reads = reads
        self.audit = audit
        self.clock = clock

    def handle(self, req: Request, rt: ResourceType, namespace: str, name: str,
               sub: str | None, verb: str) -> Response:
        """The write `verb` names, audited whether it succeeds or fails."""
        try:
            if sub in rt.subresources:
                resp = self._subresource(req, rt, namespace, name, sub or "", verb)
            else:
                resp = self._mutate(req, rt, namespace, name, sub, verb)
        except errors.ApiError as err:
            self._audit(req, rt, namespace, name, sub, verb, err.code, err.message)
            raise
        self._audit(req, rt, namespace, name or _created_name(resp), sub, verb, resp.code, "")
        return resp

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
            return self.reads.object_response(req, rt, result.entry, 201, result.warnings)
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
            if ctype == APPLY_PATCH and not sub:
                result, created = self.registry.apply(rt, namespace, name, body,
                                                      req.query.get("fieldManager"), opts)
                if created:
                    return self.reads.object_response(req, rt, result.entry, 201, result.warnings)
                return self._write_result(req, rt, result)
            result = self.registry.patch(rt, namespace, name, ctype, body, sub, opts)
            return self._write_result(req, rt, result)
        if verb == "delete":
            return self._delete(req, rt, namespace, name)
        return self._delete_collection(req, rt, namespace)

    def _subresource(self, req: Request, rt: ResourceType, namespace: str, name: str,
                     sub: str, verb: str) -> Response:
        """A write to `pods/eviction` (create) or `<workload>/scale` (update, patch)."""
        opts = self._options(req)
        if sub == "eviction" and verb == "create":
            dry_run = [req.query["dryRun"]] if req.query.get("dryRun") else []
            code, status = eviction.evict(self.registry, namespace, name, self._body(req, "Eviction"),
                                          dry_run, self.clock)
            return json_response(code, status)
        if sub == "scale" and verb == "update":
            return json_response(200, scale.update(self.registry, rt, namespace, name,
                                                   self._body(req, "Scale"), opts))
        if sub == "scale" and verb == "patch":
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
            return json_response(200, scale.patch(self.registry, rt, namespace, name, ctype,
                                                  self._body(req, "Scale"), opts))
        raise errors.method_not_allowed()

    @staticmethod
    def _body(req: Request, kind: str) -> Any:
        """The request's object, in JSON, YAML or (for the kinds kubectl sends so) protobuf."""
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        body = protobuf.decode(req.body, kind) if ctype == protobuf.PROTOBUF and req.body else req.json()
        if body is None:
            raise errors.bad_request("the body of the request was empty")
        return body

    def _write_result(self, req: Request, rt: ResourceType, result: Result) -> Response:
        return self.reads.object_response(req, rt, result.entry, 200, result.warnings)

    def _delete_options(self, req: Request) -> dict[str, Any]:
        body = self._body(req, "DeleteOptions") if req.body else None
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
        if result.deleted and not ((rt.group, rt.plural) in RETURNS_DELETED_OBJECT or rt.custom):
            meta = result.obj.get("metadata", {})
            details = {"name": name, "kind": rt.plural, "uid": meta.get("uid", "")}
            if rt.group:
                details["group"] = rt.group
            return json_response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                       "status": "Success", "details": errors.ordered_details(details)})
        return self.reads.object_response(req, rt, result.entry, 200)

    def _delete_collection(self, req: Request, rt: ResourceType, namespace: str) -> Response:
        labels, fields = self.reads.selectors(req, rt)
        opts = self._delete_options(req)
        deleted = []
        for (ns, name), _ in self.reads.matching(rt, namespace, labels, fields):
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
