"""Operators' Kubernetes identities: TokenReview (who is this?) and SubjectAccessReview
(may they do this?), asked of the API server the webhook already talks to.

Contract:
- `Reviewer.authenticate(token)` returns the `ReviewedUser` a TokenReview
  (authentication.k8s.io/v1) vouches for, `None` for a token the API server does not
  accept (answer 401), or raises `ReviewUnavailable` when no trustworthy answer came
  (timeout, 5xx, 429, a refusal of the webhook's own review, a malformed answer: 503).
  An unavailable review never authenticates anyone.
- With `audiences` set, the review asks for them and, as client-go's webhook token
  authenticator does, accepts the token only if the answer's `status.audiences`
  intersects them.
- `Reviewer.authorize(user, attributes)` asks a SubjectAccessReview (authorization.k8s.io/v1)
  with the user's name, uid, groups and extra, as kube-apiserver's delegated authorizer
  does, and returns an `AccessDecision`; `ReviewUnavailable` as above. An answer without
  `allowed: true` is a denial.
- Answers are cached per worker process for `cache_s` (0: never), at most `cache_size`
  entries, keyed by the SHA-256 of the token (never the token) or by the subject and the
  attributes: positive authentications, rejected tokens, and allowed access. Denials and
  failures are never cached, so a role granted a moment ago works at the next request.
  A revoked token or role therefore keeps working for at most `cache_s`.
- At most `max_in_flight` reviews run at once per process; beyond that a request is
  refused at once with `ReviewsBusy` (429) rather than queued, so a flood of distinct
  tokens cannot make the webhook hammer the API server.

The API calls themselves sit behind `ReviewApi` (`RealReviewApi`: the official client over
`core.kube`, answers as plain JSON dicts). Every review is timed and every failure counted
through the two callbacks the app wires to its metrics.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from core import names
from core.clock import Clock
from core.kube import JSON, Kube, KubeError, call, expect_object

AUTHN = "authentication.k8s.io/v1"
AUTHZ = "authorization.k8s.io/v1"
K = TypeVar("K")
V = TypeVar("V")


class ReviewKind(enum.StrEnum):
    TOKEN = "token"  # TokenReview
    ACCESS = "access"  # SubjectAccessReview


class ReviewUnavailable(Exception):
    """No trustworthy answer: the caller answers 503 and never proceeds."""

    def __init__(self, kind: ReviewKind, reason: str, detail: str) -> None:
        super().__init__(f"{kind} review {reason}: {detail}")
        self.kind = kind
        self.reason = reason  # bounded: unavailable | refused | malformed
        self.detail = detail


class ReviewsBusy(Exception):
    """Too many reviews in flight in this process: the caller answers 429."""


@dataclass(frozen=True)
class ReviewedUser:
    """user.Info as a TokenReview reports it."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Attributes:
    """What an operator action asks to do, as SubjectAccessReview resourceAttributes
    (cluster-scoped: NodeRemediations have no namespace)."""

    verb: str
    resource: str = names.PLURAL
    group: str = names.GROUP
    name: str = ""

    def describe(self) -> str:
        """As kube-apiserver words a Forbidden answer."""
        what = f'"{self.resource}" in API group "{self.group}"'
        named = f' named "{self.name}"' if self.name else ""
        return f"{self.verb} resource {what}{named} at the cluster scope"

    def as_json(self) -> dict[str, str]:
        out = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str = ""  # the authorizer's words, when it gave any


class ReviewApi(Protocol):
    def create_token_review(self, body: JSON) -> JSON:
        """POST a TokenReview; the answer as JSON (core.kube errors)."""

    def create_subject_access_review(self, body: JSON) -> JSON:
        """POST a SubjectAccessReview; the answer as JSON (core.kube errors)."""


class RealReviewApi:
    """`ReviewApi` over the official client."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def _json(self, fn: Any, body: JSON) -> JSON:
        resp: Any = call(fn, body, _preload_content=False, _request_timeout=self.kube.timeout)
        try:
            return expect_object(json.loads(resp.data))
        except ValueError as exc:
            raise KubeError(0, "Malformed", f"not JSON: {exc}") from None
        finally:
            resp.release_conn()

    def create_token_review(self, body: JSON) -> JSON:
        return self._json(self.kube.authentication.create_token_review, body)

    def create_subject_access_review(self, body: JSON) -> JSON:
        return self._json(self.kube.authorization.create_subject_access_review, body)


# -- the pure parts: bodies and answers ----------------------------------------------------


def token_review_body(token: str, audiences: tuple[str, ...]) -> JSON:
    spec: JSON = {"token": token}
    if audiences:
        spec["audiences"] = list(audiences)
    return {"apiVersion": AUTHN, "kind": "TokenReview", "spec": spec}


def read_token_review(answer: JSON, audiences: tuple[str, ...]) -> ReviewedUser | None:
    """The user a TokenReview answer vouches for, None if it does not; ValueError for an
    answer that is not a TokenReview status."""
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ValueError("no status")
    if status.get("authenticated") is not True:
        return None
    if audiences:
        got = status.get("audiences") or []
        if not isinstance(got, list) or not set(audiences) & {str(a) for a in got}:
            return None  # valid, but not for us
    user = status.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("username"), str) or not user["username"]:
        raise ValueError("authenticated without a username")
    groups = user.get("groups") or []
    extra = user.get("extra") or {}
    if not isinstance(groups, list) or not isinstance(extra, dict):
        raise ValueError("malformed groups or extra")
    return ReviewedUser(
        username=user["username"],
        uid=str(user.get("uid") or ""),
        groups=tuple(str(g) for g in groups),
        extra=tuple(sorted((str(k), tuple(str(v) for v in (vs or []))) for k, vs in extra.items())),
    )


def access_review_body(user: ReviewedUser, attributes: Attributes) -> JSON:
    spec: JSON = {"user": user.username, "resourceAttributes": attributes.as_json()}
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra}
    return {"apiVersion": AUTHZ, "kind": "SubjectAccessReview", "spec": spec}


def read_access_review(answer: JSON) -> AccessDecision:
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ValueError("no status")
    reason = str(status.get("reason") or status.get("evaluationError") or "")[:300]
    return AccessDecision(status.get("allowed") is True and status.get("denied") is not True, reason)


# -- the cache and the reviewer --------------------------------------------------------------


class TtlCache(Generic[K, V]):
    """At most `size` entries, each for `ttl_s` of the clock's monotonic time; the oldest
    entry is evicted first. Thread-safe."""

    def __init__(self, ttl_s: float, size: int, monotonic: Callable[[], float]) -> None:
        self.ttl_s, self.size, self.monotonic = ttl_s, size, monotonic
        self._lock = threading.Lock()
        self._items: collections.OrderedDict[K, tuple[float, V]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> tuple[bool, V | None]:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return False, None
            if found[0] <= self.monotonic():
                del self._items[key]
                return False, None
            return True, found[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0 or self.size <= 0:
            return
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (self.monotonic() + self.ttl_s, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Reviewer:
    def __init__(
        self,
        api: ReviewApi,
        clock: Clock,
        *,
        audiences: tuple[str, ...] = (),
        cache_s: float = 10.0,
        cache_size: int = 4096,
        max_in_flight: int = 8,
        observe: Callable[[ReviewKind, float], None] = lambda kind, seconds: None,
        failed: Callable[[ReviewKind, str], None] = lambda kind, reason: None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.audiences = audiences
        self.tokens: TtlCache[bytes, ReviewedUser | None] = TtlCache(cache_s, cache_size, clock.monotonic)
        self.access: TtlCache[tuple[ReviewedUser, Attributes], bool] = TtlCache(
            cache_s, cache_size, clock.monotonic
        )
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._observe = observe
        self._failed = failed

    def authenticate(self, token: str) -> ReviewedUser | None:
        key = hashlib.sha256(token.encode("utf-8")).digest()
        hit, user = self.tokens.get(key)
        if hit:
            return user
        answer = self._ask(ReviewKind.TOKEN, self.api.create_token_review,
                           token_review_body(token, self.audiences))
        try:
            user = read_token_review(answer, self.audiences)
        except ValueError as exc:
            self._failed(ReviewKind.TOKEN, "malformed")
            raise ReviewUnavailable(ReviewKind.TOKEN, "malformed", str(exc)) from None
        self.tokens.put(key, user)
        return user

    def authorize(self, user: ReviewedUser, attributes: Attributes) -> AccessDecision:
        hit, _ = self.access.get((user, attributes))
        if hit:
            return AccessDecision(True)
        answer = self._ask(ReviewKind.ACCESS, self.api.create_subject_access_review,
                           access_review_body(user, attributes))
        try:
            decision = read_access_review(answer)
        except ValueError as exc:
            self._failed(ReviewKind.ACCESS, "malformed")
            raise ReviewUnavailable(ReviewKind.ACCESS, "malformed", str(exc)) from None
        if decision.allowed:
            self.access.put((user, attributes), True)
        return decision

    def _ask(self, kind: ReviewKind, fn: Callable[[JSON], JSON], body: JSON) -> JSON:
        if not self._slots.acquire(blocking=False):
            self._failed(kind, "busy")
            raise ReviewsBusy(f"too many {kind} reviews in flight")
        started = self.clock.monotonic()
        try:
            return fn(body)
        except KubeError as exc:
            reason = _failure(exc)
            self._failed(kind, reason)
            raise ReviewUnavailable(kind, reason, str(exc)[:300]) from None
        finally:
            self._observe(kind, self.clock.monotonic() - started)
            self._slots.release()


def _failure(exc: KubeError) -> str:
    """The bounded reason of a failed review. A 4xx (401/403: the webhook's own account
    may not ask; 404: the API does not serve reviews) is a misconfiguration, never an
    answer about the operator."""
    if exc.reason in ("Malformed", "UnexpectedResponse"):
        return "malformed"
    if exc.status == 0 or exc.status == 429 or exc.status >= 500:
        return "unavailable"
    return "refused"
