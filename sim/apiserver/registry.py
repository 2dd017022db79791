"""The API verbs with Kubernetes semantics, shared by the HTTP server and the in-process
cluster components (kubelets, controllers).

- create: namespace must exist, generateName, uid, creationTimestamp, status reset,
  admission (defaulting such as default tolerations), validation, 409 AlreadyExists.
- update: optimistic concurrency on metadata.resourceVersion (409 with the real message),
  status subresource rules, generation bumps, objects whose last finalizer goes away are
  removed.
- patch: the three patch types (see `patch`); a resourceVersion inside the patch is a
  precondition; strategic merge patch on a custom resource is a 415, as on a real server.
- delete: graceful pod deletion (deletionTimestamp + deletionGracePeriodSeconds, the
  object stays until the kubelet or grace 0), finalizers hold any deletion, preconditions.

Reads, commits and removal cascades are in `typed_store` (the base class); the checks a
client's write passes (kind, schema validation, pruning) are in `object_checks`.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..timefmt import rfc3339
from . import apply as apply_mod
from . import crd as crds
from . import errors, strategies
from .admission import Request as AdmissionRequest
from .object_checks import INTERNAL, Result, WriteOptions, check_kind, validate
from .patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceRegistry, ResourceType
from .store import Entry, Store, dumps
from .typed_store import TypedStore
from .validation import BuiltinValidator

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"

__all__ = ["INTERNAL", "Registry", "Result", "WriteOptions"]

Admission = Callable[[str, ResourceType, dict[str, Any], dict[str, Any] | None], None]



def apply_patch(content_type: str, current: Any, body: Any) -> Any:
    """`body` applied to `current` as `content_type` says (merge, JSON or strategic merge
    patch); a malformed patch is 400 BadRequest, one that cannot apply 422 Invalid."""
    try:
        if content_type == JSON_PATCH:
            return json_patch(current, body)
        if not isinstance(body, dict):
            raise PatchError("merge patch must be a JSON object", bad_request=True)
        if content_type == MERGE_PATCH:
            return merge_patch(current, body)
        return strategic_merge_patch(current, body)
    except PatchError as exc:
        if exc.bad_request:
            raise errors.bad_request(str(exc)) from None
        raise errors.ApiError(422, "Invalid", str(exc)) from None


class Registry(TypedStore):
    """The API verbs over a `TypedStore`, with admission hooks and validation."""

    def __init__(self, store: Store, types: ResourceRegistry,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(store, types, clock)
        self.validator = BuiltinValidator()
        self.admission: list[Admission] = []
        # Validating admission (ValidatingAdmissionPolicy) for writes that carry a user.
        self.validating: list[Callable[[AdmissionRequest], None]] = []
        self._rand = random.Random()
        self._lock = threading.RLock()

    def _validate(self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions,
                  old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        return validate(self.validator, rt, obj, opts, old)

    def _check_kind(self, rt: ResourceType, obj: Any) -> dict[str, Any]:
        return check_kind(rt, obj)

    def _admit(self, operation: str, rt: ResourceType, subresource: str, ns: str, name: str,
               obj: dict[str, Any] | None, old: dict[str, Any] | None, opts: WriteOptions) -> None:
        if opts.user is None or not self.validating:
            return
        request = AdmissionRequest(operation, rt, subresource, ns, name, obj, old, opts.user, opts.dry_run)
        for hook in self.validating:
            hook(request)

    # -- create -----------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, obj: Any,
               opts: WriteOptions = INTERNAL, created_at: float | None = None,
               managed_fields: list[dict[str, Any]] | None = None) -> Result:
        obj = self._check_kind(rt, copy.deepcopy(obj))
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        with self.store.lock:
            if rt.namespaced:
                ns_entry = self.store.get("/namespaces", "", namespace)
                if ns_entry is None:
                    raise errors.not_found("namespaces", "", namespace)
                if (ns_entry.obj().get("status") or {}).get("phase") == "Terminating":
                    raise errors.ApiError(403, "Forbidden",
                                          f'{rt.plural} "{meta.get("name", "")}" is forbidden: '
                                          f"unable to create new content in namespace {namespace} "
                                          "because it is being terminated")
            if not meta.get("name"):
                if meta.get("generateName"):
                    for _ in range(20):
                        candidate = meta["generateName"] + "".join(
                            self._rand.choice(_NAME_CHARS) for _ in range(5))
                        if self.store.get(self.table(rt), namespace if rt.namespaced else "",
                                          candidate) is None:
                            meta["name"] = candidate
                            break
                else:
                    raise errors.invalid(rt.kind, rt.group, "", [{
                        "reason": "FieldValueRequired", "field": "metadata.name",
                        "message": "Required value: name or generateName is required"}])
            name = meta["name"]
            ns = namespace if rt.namespaced else ""
            for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                        "managedFields", "selfLink"):
                meta.pop(key, None)
            if managed_fields is not None:
                meta["managedFields"] = managed_fields
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = rfc3339(created_at) if created_at is not None else self._now()
            strategies.prepare_create(rt, obj)
            for hook in self.admission:
                hook("CREATE", rt, obj, None)
            obj, warnings = self._validate(rt, obj, opts)
            if self.store.get(self.table(rt), ns, name) is not None:
                raise errors.already_exists(rt.plural, rt.group, name)
            self._admit("CREATE", rt, "", ns, name, obj, None, opts)
            if opts.dry_run:
                return Result(Entry(dumps(obj), self.store.resource_version, {}, {}), obj,
                              warnings=warnings)
            entry = self._commit(rt, obj, ns, name)
            if rt.kind == "CustomResourceDefinition":
                entry = self._establish_crd(rt, obj, ns, name)
            return Result(entry, json.loads(self.render(rt, entry)), warnings=warnings)

    def _establish_crd(self, rt: ResourceType, obj: dict[str, Any], ns: str, name: str) -> Entry:
        self.types.add_custom(crds.resource_types(obj))
        obj = copy.deepcopy(obj)
        obj["status"] = crds.established_status(obj, self._now())
        return self._commit(rt, obj, ns, name)

    # -- update / patch ---------------------------------------------------------------

    def update(self, rt: ResourceType, namespace: str, name: str, obj: Any,
               subresource: str | None = None, opts: WriteOptions = INTERNAL) -> Result:
        obj = self._check_kind(rt, copy.deepcopy(obj))
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f'the name of the object ({meta["name"]}) does not match the name on the URL ({name})')
        with self.store.lock:
            current = self.get(rt, namespace, name)
            rv = meta.get("resourceVersion")
            if rv in (None, "") and rt.custom:
                raise errors.invalid(rt.kind, rt.group, name, [{
                    "reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                    "message": "Invalid value: 0x0: must be specified for an update"}])
            if rv not in (None, "") and str(rv) != str(current.rv):
                raise errors.conflict(rt.plural, rt.group, name)
            return self._store_update(rt, namespace, name, self.decode(rt, current), obj,
                                      subresource, opts)

    def patch(self, rt: ResourceType, namespace: str, name: str, content_type: str, body: Any,
              subresource: str | None = None, opts: WriteOptions = INTERNAL) -> Result:
        if content_type == STRATEGIC_PATCH and rt.custom:
            raise errors.unsupported_media_type(content_type)
        if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
            raise errors.unsupported_media_type(content_type)
        with self.store.lock:
            current_entry = self.get(rt, namespace, name)
            current = self.decode(rt, current_entry)
            patched = apply_patch(content_type, current, body)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            patched_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if patched_rv not in (None, "") and str(patched_rv) != str(current_entry.rv):
                raise errors.conflict(rt.plural, rt.group, name)
            patched = self._check_kind(rt, patched)
            return self._store_update(rt, namespace, name, current, patched, subresource, opts)

    def apply(self, rt: ResourceType, namespace: str, name: str, config: Any, manager: str | None,
              opts: WriteOptions = INTERNAL) -> tuple[Result, bool]:
        """Server-side apply (sim/apiserver/apply.py); True when it created the object."""
        manager = apply_mod.require_manager(manager)
        config = self._check_kind(rt, copy.deepcopy(apply_mod.check_applied(config)))
        if config["metadata"].get("name", name) != name:
            raise errors.bad_request(
                f'the name of the object ({config["metadata"]["name"]}) does not match the name '
                f"on the URL ({name})")
        with self.store.lock:
            entry = self.store.get(self.table(rt), namespace if rt.namespaced else "", name)
            if entry is None:
                paths = apply_mod.field_paths(config, custom=rt.custom)
                config["metadata"]["name"] = name
                return self.create(rt, namespace, config, opts, managed_fields=[
                    apply_mod.managed_entry(manager, rt.api_version, self._now(), paths)]), True
            current = self.decode(rt, entry)
            try:
                applied = apply_mod.apply(current, config, manager, rt.api_version, self._now(),
                                          rt.custom)
            except PatchError as exc:
                raise errors.ApiError(422, "Invalid", str(exc)) from None
            applied_rv = config["metadata"].get("resourceVersion")
            if applied_rv not in (None, "") and str(applied_rv) != str(entry.rv):
                raise errors.conflict(rt.plural, rt.group, name)
            return self._store_update(rt, namespace, name, current, applied, None, opts), False

    def _store_update(self, rt: ResourceType, namespace: str, name: str, old: dict[str, Any],
                      new: dict[str, Any], subresource: str | None, opts: WriteOptions) -> Result:
        ns = namespace if rt.namespaced else ""
        new = strategies.prepare_update(rt, old, new, subresource)
        for hook in self.admission:
            hook("UPDATE", rt, new, old)
        new, warnings = self._validate(rt, new, opts, old)
        self._admit("UPDATE", rt, subresource or "", ns, name, new, old, opts)
        if opts.dry_run:
            return Result(Entry(dumps(new), self.store.resource_version, {}, {}), new,
                          warnings=warnings)
        if strategies.ready_to_remove(new):
            entry = self._remove(rt, ns, name, new)
            return Result(entry, json.loads(self.render(rt, entry)), deleted=True,
                          warnings=warnings)
        if rt.kind == "CustomResourceDefinition" and subresource is None:
            self.types.add_custom(crds.resource_types(new))
            new["status"] = crds.established_status(new, self._now())
        entry = self._commit(rt, new, ns, name)
        return Result(entry, json.loads(self.render(rt, entry)), warnings=warnings)

    def mutate(self, rt: ResourceType, namespace: str, name: str,
               fn: Callable[[dict[str, Any]], bool | None], subresource: str | None = None) -> Result | None:
        """Read-modify-write for in-process components: `fn` edits the object in place and
        returns False to skip the write. Returns None when the object does not exist."""
        with self.store.lock:
            entry = self.store.get(self.table(rt), namespace if rt.namespaced else "", name)
            if entry is None:
                return None
            old = self.decode(rt, entry)
            new = copy.deepcopy(old)
            if fn(new) is False:
                return Result(entry, old)
            return self._store_update(rt, namespace, name, old, new, subresource, INTERNAL)

    # -- delete -----------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str, name: str,
               grace_period: int | None = None, preconditions: dict[str, Any] | None = None,
               dry_run: bool = False, user: Any = None) -> Result:
        ns = namespace if rt.namespaced else ""
        with self.store.lock:
            entry = self.get(rt, namespace, name)
            obj = self.decode(rt, entry)
            meta = obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.precondition_failed(
                    rt.plural, rt.group, name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(entry.rv):
                raise errors.precondition_failed(
                    rt.plural, rt.group, name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {entry.rv}")
            # A client's DELETE goes through validating admission, `oldObject` the object.
            self._admit("DELETE", rt, "", ns, name, None, obj, WriteOptions(dry_run=dry_run, user=user))
            grace = strategies.graceful_period(rt, obj, grace_period)
            if meta.get("deletionTimestamp"):
                # Already being deleted: a shorter grace period may be requested.
                current = int(meta.get("deletionGracePeriodSeconds") or 0)
                if grace >= current or dry_run:
                    return Result(entry, obj)
            if dry_run:
                return Result(entry, obj)
            if grace == 0 and not meta.get("finalizers"):
                final = self._remove(rt, ns, name, obj)
                return Result(final, json.loads(self.render(rt, final)), deleted=True)
            meta["deletionTimestamp"] = rfc3339(self.clock() + grace)
            meta["deletionGracePeriodSeconds"] = grace
            if rt.kind == "Namespace":
                obj.setdefault("status", {})["phase"] = "Terminating"
            new_entry = self._commit(rt, obj, ns, name)
            if rt.kind == "Namespace":
                return self._finish_namespace(rt, name) or Result(new_entry, obj)
            return Result(new_entry, json.loads(self.render(rt, new_entry)))

    def _finish_namespace(self, rt: ResourceType, name: str) -> Result | None:
        """Namespaces finalize at once: contents are deleted, then the namespace."""
        entry = self.get(rt, "", name)
        obj = entry.obj()
        obj["metadata"].pop("finalizers", None)
        obj.setdefault("spec", {})["finalizers"] = []
        obj["metadata"]["deletionGracePeriodSeconds"] = 0
        final = self._remove(rt, "", name, obj)
        return Result(final, json.loads(final.raw), deleted=True)
