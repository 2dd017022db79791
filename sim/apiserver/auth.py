"""Who is calling: bearer tokens mapped to identities, and the audit log of every
mutating request (time, identity, verb, resource, name, outcome)."""

from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    name: str  # e.g. "admin", "system:serviceaccount:nodewarden:nodewarden-webhook"
    groups: tuple[str, ...] = ()
    node: str = ""  # the node this identity runs on, for partitions ("" = none)


class Identities:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Identity] = {}
        self._by_name: dict[str, str] = {}

    def add(self, identity: Identity, token: str | None = None) -> str:
        with self._lock:
            if identity.name in self._by_name:
                return self._by_name[identity.name]
            token = token or secrets.token_urlsafe(24)
            self._by_token[token] = identity
            self._by_name[identity.name] = token
            return token

    def token_for(self, name: str) -> str | None:
        return self._by_name.get(name)

    def identity(self, name: str) -> Identity | None:
        token = self._by_name.get(name)
        return self._by_token.get(token) if token else None

    def lookup(self, token: str) -> Identity | None:
        return self._by_token.get(token)

    def names(self) -> list[str]:
        return sorted(self._by_name)


@dataclass
class AuditRecord:
    at: float
    user: str
    verb: str  # create | update | patch | delete | deletecollection
    resource: str  # plural, with group: "nodes", "leases.coordination.k8s.io"
    namespace: str
    name: str
    subresource: str
    code: int
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: collections.deque[AuditRecord] = collections.deque(maxlen=limit)

    def record(self, rec: AuditRecord) -> None:
        with self._lock:
            self._records.append(rec)

    def query(self, *, user: str | None = None, verb: str | None = None,
              resource: str | None = None, name: str | None = None,
              since: float | None = None) -> list[AuditRecord]:
        with self._lock:
            records = list(self._records)
        return [r for r in records
                if (user is None or r.user == user)
                and (verb is None or r.verb == verb)
                and (resource is None or r.resource == resource)
                and (name is None or r.name == name)
                and (since is None or r.at >= since)]
