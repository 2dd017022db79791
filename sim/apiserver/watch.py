"""Watches over HTTP: newline-delimited `{"type","object"}` chunks from a resourceVersion
(or the current objects first), objects that start or stop matching a selector as
ADDED/DELETED, bookmarks, `timeoutSeconds`, and a 410 ERROR event when the history asked
for is compacted, as the real watch cache sends."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import errors, tables
from .http import Request
from .reads import Reads
from .resources import ResourceType
from .selectors import labels_match, parse_field_selector
from .store import DELETED, Change, Entry, Expired, dumps

BOOKMARK_INTERVAL_S = 10.0


def serve(reads: Reads, req: Request, rt: ResourceType, namespace: str, name: str) -> None:
    labels, fields = reads.selectors(req, rt)
    if name:
        fields = (*fields, *parse_field_selector(f"metadata.name={name}", ()))
    handler = req.handler
    store = reads.registry.store
    table = reads.registry.table(rt)
    as_table = reads.wants_table(req)
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
            obj = reads.registry.decode(rt, entry)
            body = dumps(tables.table(rt, [obj], reads.clock(), str(entry.rv), "Object"))
        else:
            body = reads.registry.render(rt, entry)
        return b'{"type":"' + kind.encode() + b'","object":' + body + b"}\n"

    initial: list[bytes] = []
    if rv_param in ("", "0"):
        with store.lock:
            last = store.resource_version
            for _key, entry in reads.matching(rt, namespace, labels, fields):
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
