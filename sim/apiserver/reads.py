"""Reads over HTTP: one object (as JSON or as a server-side Table for kubectl), and
lists with label and field selectors, `limit` and `continue` pagination."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from . import errors, events, tables
from .http import Request, Response, json_response
from .registry import Registry
from .resources import ResourceType
from .selectors import SelectorError, labels_match, parse_field_selector, parse_label_selector
from .store import Entry, dumps

TABLE_MARK = "as=Table"


class Reads:
    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.clock = clock

    def wants_table(self, req: Request) -> bool:
        return TABLE_MARK in (req.headers.get("Accept") or "")

    def object_response(self, req: Request, rt: ResourceType, entry: Entry, code: int = 200,
                         warnings: list[str] | None = None) -> Response:
        headers = [("Warning", f'299 - "{w}"') for w in warnings or []]
        if self.wants_table(req):
            obj = self.registry.decode(rt, entry)
            return json_response(code, tables.table(rt, [obj], self.clock(), str(entry.rv),
                                                    req.query.get("includeObject", "Metadata")), headers)
        return Response(code, self.registry.render(rt, entry), headers=headers)

    def selectors(self, req: Request, rt: ResourceType) -> tuple[Any, Any]:
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

    def matching(self, rt: ResourceType, namespace: str, labels: Any, fields: Any) -> list[tuple[tuple[str, str], Entry]]:
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

    def list(self, req: Request, rt: ResourceType, namespace: str) -> Response:
        labels, fields = self.selectors(req, rt)
        store = self.registry.store
        with store.lock:
            rv = store.resource_version
            matching = self.matching(rt, namespace, labels, fields)
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
        if self.wants_table(req):
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
