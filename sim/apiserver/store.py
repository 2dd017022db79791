"""The object store: objects as compact JSON bytes, one global resourceVersion, and a
bounded log of changes per resource for watches.

Objects are kept serialized (a GET returns the stored bytes as they are) with their labels
and the values of their field-selector labels beside them, so lists and watches filter
without parsing. Memory is what bounds a 5,000-node, 20,000-pod store; see bench/.

The store knows nothing of Kubernetes semantics (that is `registry`). All writes go
through `commit`, under one lock, and wake every watcher of that resource.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(slots=True)
class Entry:
    raw: bytes
    rv: int
    labels: dict[str, str]
    fields: dict[str, str]

    def obj(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.raw)
        return result


@dataclass(slots=True)
class Change:
    rv: int
    type: str
    namespace: str
    name: str
    entry: Entry
    prev: Entry | None


class Expired(Exception):
    """The requested resourceVersion is older than the oldest change kept."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Store:
    def __init__(self, history: int = 5000, start_rv: int = 1000) -> None:
        self.lock = threading.RLock()
        self._tables: dict[str, dict[tuple[str, str], Entry]] = collections.defaultdict(dict)
        self._logs: dict[str, collections.deque[Change]] = {}
        self._compacted: dict[str, int] = collections.defaultdict(int)
        self._history = history
        self._rv = start_rv
        self._conditions: dict[str, threading.Condition] = {}
        self._closed = False
        # Secondary indexes: (table, field label) -> value -> keys.
        self._indexes: dict[tuple[str, str], dict[str, set[tuple[str, str]]]] = {}

    # -- reads ------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, table: str, namespace: str, name: str) -> Entry | None:
        return self._tables[table].get((namespace, name))

    def items(self, table: str, namespace: str | None = None) -> list[tuple[tuple[str, str], Entry]]:
        with self.lock:
            entries = list(self._tables[table].items())
        if namespace:
            entries = [(k, e) for k, e in entries if k[0] == namespace]
        return entries

    def last_change(self, table: str) -> int:
        """The resourceVersion of the newest change to `table` (0: none yet)."""
        log = self._logs.get(table)
        return log[-1].rv if log else 0

    def count(self, table: str) -> int:
        return len(self._tables[table])

    def add_index(self, table: str, field: str) -> None:
        """Keep keys of `table` grouped by the value of field label `field`."""
        with self.lock:
            index: dict[str, set[tuple[str, str]]] = {}
            for key, entry in self._tables[table].items():
                index.setdefault(entry.fields.get(field, ""), set()).add(key)
            self._indexes[(table, field)] = index

    def keys_by(self, table: str, field: str, value: str) -> list[tuple[str, str]]:
        with self.lock:
            return list(self._indexes[(table, field)].get(value, ()))

    def _reindex(self, table: str, key: tuple[str, str], old: Entry | None, new: Entry | None) -> None:
        for (t, field), index in self._indexes.items():
            if t != table:
                continue
            if old is not None:
                bucket = index.get(old.fields.get(field, ""))
                if bucket is not None:
                    bucket.discard(key)
            if new is not None:
                index.setdefault(new.fields.get(field, ""), set()).add(key)

    # -- writes -----------------------------------------------------------------------

    def next_rv(self) -> int:
        """Reserve the resourceVersion the next commit will carry. Hold `lock` between."""
        return self._rv + 1

    def commit(
        self,
        table: str,
        namespace: str,
        name: str,
        obj: dict[str, Any] | None,
        labels: dict[str, str],
        fields: dict[str, str],
        deleted_obj: dict[str, Any] | None = None,
    ) -> Entry:
        """Write `obj` (or delete when `obj` is None; `deleted_obj` is the final state
        reported to watchers). Stamps metadata.resourceVersion. Caller holds `lock`."""
        self._rv += 1
        rv = self._rv
        key = (namespace, name)
        prev = self._tables[table].get(key)
        if obj is None:
            final = deleted_obj if deleted_obj is not None else (prev.obj() if prev else {})
            final.setdefault("metadata", {})["resourceVersion"] = str(rv)
            entry = Entry(dumps(final), rv, labels, fields)
            self._tables[table].pop(key, None)
            self._reindex(table, key, prev, None)
            kind = DELETED
        else:
            obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
            entry = Entry(dumps(obj), rv, labels, fields)
            self._tables[table][key] = entry
            self._reindex(table, key, prev, entry)
            kind = MODIFIED if prev is not None else ADDED
        log = self._logs.get(table)
        if log is None:
            log = self._logs[table] = collections.deque()
        if len(log) >= self._history:
            self._compacted[table] = log.popleft().rv
        log.append(Change(rv, kind, namespace, name, entry, prev))
        self._condition(table).notify_all()
        return entry

    def _condition(self, table: str) -> threading.Condition:
        cond = self._conditions.get(table)
        if cond is None:
            cond = self._conditions[table] = threading.Condition(self.lock)
        return cond

    # -- watch ------------------------------------------------------------------------

    def changes_since(self, table: str, rv: int) -> list[Change]:
        """Changes to `table` with resourceVersion > rv, oldest first. Raises Expired."""
        with self.lock:
            if rv < self._compacted[table]:
                raise Expired(rv, self._compacted[table] + 1)
            log = self._logs.get(table)
            if not log:
                return []
            out: list[Change] = []
            for change in reversed(log):
                if change.rv <= rv:
                    break
                out.append(change)
        out.reverse()
        return out

    def wait_for_change(self, table: str, rv: int, timeout: float) -> bool:
        """Block until `table` has a change newer than rv, the timeout, or close()."""
        with self.lock:
            def ready() -> bool:
                if self._closed:
                    return True
                log = self._logs.get(table)
                return log is not None and len(log) > 0 and log[-1].rv > rv

            return self._condition(table).wait_for(ready, timeout)

    def close(self) -> None:
        with self.lock:
            self._closed = True
            for cond in self._conditions.values():
                cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def tables(self) -> Iterator[str]:
        return iter(list(self._tables))
