"""Objects of served types in the store: the storage table of a type, the fields and
labels indexed beside each object, the version a type renders in (events.k8s.io/v1 from
the stored core/v1 events), reads by name, and every commit (running the commit hooks)
and removal, with the cascades a removal has: a namespace takes its contents, a CRD its
objects. The API verbs built on it are in `registry`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..timefmt import rfc3339
from . import errors, events
from .resources import ResourceRegistry, ResourceType
from .selectors import field_value
from .store import Entry, Store, dumps


class TypedStore:
    def __init__(self, store: Store, types: ResourceRegistry,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.types = types
        self.clock = clock
        self.delete_hooks: list[Callable[[ResourceType, dict[str, Any]], None]] = []
        # Called after every write, under the store lock: (type, new object or None when
        # deleted, previous entry or None when created). Must be quick.
        self.commit_hooks: list[Callable[[ResourceType, dict[str, Any] | None, Entry | None], None]] = []
        # Facts computed once per write and kept beside the object (never selectable through
        # the API), so in-process controllers can filter without parsing every object.
        self.derived_fields: Callable[[ResourceType, dict[str, Any]], dict[str, str]] | None = None

    @staticmethod
    def table(rt: ResourceType) -> str:
        return rt.storage_key

    def index(self, rt: ResourceType, obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        meta = obj.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels_fields = {"metadata.name": meta.get("name", ""),
                         "metadata.namespace": meta.get("namespace", "")}
        names = rt.field_labels
        if rt.storage_key == "events":
            names = self.types.lookup("", "v1", "events").field_labels  # type: ignore[union-attr]
        for path in names:
            labels_fields[path] = field_value(obj, path)
        if self.derived_fields is not None:
            labels_fields.update(self.derived_fields(rt, obj))
        return labels, labels_fields

    def render(self, rt: ResourceType, entry: Entry) -> bytes:
        """Bytes of the stored object in the version `rt` serves."""
        if rt.group == "events.k8s.io":
            return dumps(events.from_core(entry.obj()))
        return entry.raw

    def decode(self, rt: ResourceType, entry: Entry) -> dict[str, Any]:
        obj = entry.obj()
        return events.from_core(obj) if rt.group == "events.k8s.io" else obj

    def _to_storage(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        return events.to_core(obj) if rt.group == "events.k8s.io" else obj

    def _now(self) -> str:
        return rfc3339(self.clock())

    def get(self, rt: ResourceType, namespace: str, name: str) -> Entry:
        entry = self.store.get(self.table(rt), namespace if rt.namespaced else "", name)
        if entry is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return entry

    def get_obj(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        return self.decode(rt, self.get(rt, namespace, name))

    def list_objs(self, rt: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of `rt` (in `namespace` when given), decoded, in key order."""
        items = sorted(self.store.items(self.table(rt), namespace), key=lambda kv: kv[0])
        return [self.decode(rt, entry) for _key, entry in items]

    def _commit(self, rt: ResourceType, obj: dict[str, Any] | None, namespace: str, name: str,
                deleted_obj: dict[str, Any] | None = None) -> Entry:
        stored = self._to_storage(rt, obj) if obj is not None else None
        final = self._to_storage(rt, deleted_obj) if deleted_obj is not None else None
        labels, fields = self.index(rt, stored if stored is not None else (final or {}))
        prev = self.store.get(self.table(rt), namespace, name) if self.commit_hooks else None
        entry = self.store.commit(self.table(rt), namespace, name, stored, labels, fields, final)
        for hook in self.commit_hooks:
            hook(rt, obj, prev)
        return entry

    def _remove(self, rt: ResourceType, ns: str, name: str, final: dict[str, Any]) -> Entry:
        if rt.kind == "Namespace":
            self._delete_namespace_contents(name)
        if rt.kind == "CustomResourceDefinition":
            self._delete_custom_objects(final)
        entry = self._commit(rt, None, ns, name, deleted_obj=final)
        for hook in self.delete_hooks:
            hook(rt, final)
        return entry

    def _delete_namespace_contents(self, namespace: str) -> None:
        for rt in self.types.all():
            if not rt.namespaced or rt.group == "events.k8s.io":
                continue
            for (ns, name), entry in self.store.items(self.table(rt), namespace):
                self._commit(rt, None, ns, name, deleted_obj=self.decode(rt, entry))

    def _delete_custom_objects(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        for rt in self.types.all():
            if rt.custom and rt.group == group and rt.plural == plural:
                for (ns, name), entry in self.store.items(self.table(rt)):
                    self._commit(rt, None, ns, name, deleted_obj=entry.obj())
                break
        self.types.remove_custom(group, plural)
