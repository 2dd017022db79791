"""Who is calling: bearer tokens mapped to identities (what kube-apiserver's token
authenticators report as user.Info), and the audit log of every mutating request (time,
identity, verb, resource, name, outcome).

- An identity is registered under a handle (its username, or for a pod's bound token
  `<username>:<node>`), so every agent of a DaemonSet shares one service account and
  still holds its own token, as each pod of a real DaemonSet does.
- A service account's user info carries the groups the real authenticator adds
  (`system:serviceaccounts`, `system:serviceaccounts:<namespace>`, `system:authenticated`)
  and, for a token bound to a pod on a node, the extra a real bound token carries since
  Kubernetes 1.30 (KEP-4193): `authentication.kubernetes.io/node-name`, `node-uid`,
  `pod-name`, `pod-uid` and `credential-id` (pkg/serviceaccount/claims.go).
"""

from __future__ import annotations

import collections
import secrets
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

SA_PREFIX = "system:serviceaccount:"
NODE_NAME = "authentication.kubernetes.io/node-name"
NODE_UID = "authentication.kubernetes.io/node-uid"
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(frozen=True)
class Identity:
    name: str  # the username, e.g. "admin", "system:serviceaccount:nodewarden:nodewarden-webhook"
    groups: tuple[str, ...] = ()
    node: str = ""  # the node this identity runs on, for partitions and bound tokens ("" = none)
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # user.Info's extra, as pairs
    handle: str = ""  # the key it is registered under ("" = its name)

    def user_info(self) -> dict[str, Any]:
        """As authentication.k8s.io/v1 UserInfo (TokenReview, SelfSubjectReview and
        admission's request.userInfo): empty fields omitted, as the real JSON omits them."""
        info: dict[str, Any] = {"username": self.name}
        if self.uid:
            info["uid"] = self.uid
        if self.groups:
            info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {k: list(v) for k, v in self.extra}
        return info

    def extra_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.extra}


def service_account(handle: str, node: str = "", groups: tuple[str, ...] = ()) -> Identity:
    """The identity a token for `handle` authenticates as. A service-account handle
    `system:serviceaccount:<ns>:<name>[:<node>]` with a node is a pod's bound token on that
    node: the username drops the node, the extra names it."""
    if not handle.startswith(SA_PREFIX):
        return Identity(handle, tuple(dict.fromkeys((*groups, "system:authenticated"))), node, handle=handle)
    parts = handle.split(":")
    namespace, name = parts[2], parts[3]
    username = ":".join(parts[:4])
    all_groups = tuple(dict.fromkeys(
        (*groups, "system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")))
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if node:
        pod = f"{name}-{uuid.uuid5(uuid.NAMESPACE_DNS, handle).hex[:5]}"
        extra = (
            (CREDENTIAL_ID, (f"JTI={uuid.uuid5(uuid.NAMESPACE_URL, handle)}",)),
            (NODE_NAME, (node,)),
            (NODE_UID, (str(uuid.uuid5(uuid.NAMESPACE_DNS, f"node/{node}")),)),
            (POD_NAME, (pod,)),
            (POD_UID, (str(uuid.uuid5(uuid.NAMESPACE_DNS, f"pod/{handle}")),)),
        )
    uid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"serviceaccount/{namespace}/{name}"))
    return Identity(username, all_groups, node, uid, extra, handle)


class Identities:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Identity] = {}
        self._by_handle: dict[str, str] = {}

    def add(self, identity: Identity, token: str | None = None) -> str:
        handle = identity.handle or identity.name
        with self._lock:
            if handle in self._by_handle:
                return self._by_handle[handle]
            token = token or secrets.token_urlsafe(24)
            self._by_token[token] = identity
            self._by_handle[handle] = token
            return token

    def token_for(self, handle: str) -> str | None:
        return self._by_handle.get(handle)

    def identity(self, handle: str) -> Identity | None:
        token = self._by_handle.get(handle)
        return self._by_token.get(token) if token else None

    def lookup(self, token: str) -> Identity | None:
        return self._by_token.get(token)

    def names(self) -> list[str]:
        return sorted(self._by_handle)


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
    credential: str = ""  # the handle whose token was used (one per agent)

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
        """`user` matches the username or the handle of the token used."""
        with self._lock:
            records = list(self._records)
        return [r for r in records
                if (user is None or user in (r.user, r.credential))
                and (verb is None or r.verb == verb)
                and (resource is None or r.resource == resource)
                and (name is None or r.name == name)
                and (since is None or r.at >= since)]
