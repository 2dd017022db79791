"""Who may call what: the Alertmanager credential posts alerts, operators use the rest.

Alertmanager's `http_config` sends either `Authorization: Bearer <token>` or HTTP basic
auth; both may be configured. Its credential is only ever compared with the configured
secrets: never sent anywhere.

Operators send `Authorization: Bearer <token>`; `operator_auth` says which tokens count:
- `static`: the operator token file, one token per line, optionally as `name:token` so
  that records say who acted (`requestedBy`, `approvedBy`); such an operator may do
  everything the operator API offers;
- `kubernetes`: the operator's own Kubernetes token, handed to the `review` callable
  (a TokenReview, `webhook.reviews`); the identity is the username the API server
  reports, and each action is then authorized with a SubjectAccessReview
  (`webhook.api.common.operator`);
- `both`: a static operator token first, any other bearer token as in `kubernetes`.

Every comparison with a static secret is constant-time over SHA-256 digests, so neither
content nor length leaks. The two roles never share a credential: start-up fails if they
do.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from core.settings import SettingsError, read_secret_file
from webhook.reviews import ReviewedUser
from webhook.settings import WebhookSettings


class Role(enum.StrEnum):
    ALERTMANAGER = "alertmanager"
    OPERATOR = "operator"


class OperatorAuth(enum.StrEnum):
    STATIC = "static"
    KUBERNETES = "kubernetes"
    BOTH = "both"


@dataclass(frozen=True)
class Identity:
    role: Role
    name: str
    # Set when the API server vouched for the caller (TokenReview): its actions are then
    # authorized by SubjectAccessReview. None: a static credential.
    user: ReviewedUser | None = None


# A bearer token -> the Kubernetes user it belongs to, None if it is nobody's; raises
# webhook.reviews.ReviewUnavailable / ReviewsBusy when it cannot tell.
TokenReview = Callable[[str], ReviewedUser | None]


class AuthError(Exception):
    """401: no credential, or one nobody issued."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True)
class Credentials:
    """Digests of accepted secrets. `open` accepts anyone (development only)."""

    alertmanager_tokens: tuple[bytes, ...] = ()
    alertmanager_basic: tuple[bytes, ...] = ()  # digest of "user:password"
    operator_tokens: tuple[tuple[bytes, str], ...] = ()
    open: bool = False
    schemes: tuple[str, ...] = field(default=("Bearer",))
    operator_auth: OperatorAuth = OperatorAuth.STATIC

    @property
    def reviews_tokens(self) -> bool:
        return not self.open and self.operator_auth is not OperatorAuth.STATIC

    def identify(self, authorization: str | None, review: TokenReview | None = None) -> Identity:
        """The caller behind an `Authorization` header, or `AuthError`. A bearer token
        that matches no static secret goes to `review` when given and `operator_auth`
        allows Kubernetes tokens (the operator API passes it, Alertmanager's never does)."""
        if self.open:
            return Identity(Role.OPERATOR, "anonymous")
        if not authorization:
            raise AuthError("missing credentials")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            found = self._bearer(_digest(value))
            if found is not None:
                return found
            if review is not None and self.reviews_tokens:
                user = review(value)
                if user is not None:
                    return Identity(Role.OPERATOR, user.username, user)
                raise AuthError("the Kubernetes API server does not accept this token")
            raise AuthError("invalid credentials")
        if scheme.lower() == "basic" and value:
            return self._basic(value)
        raise AuthError("unsupported authorization scheme")

    def _bearer(self, digest: bytes) -> Identity | None:
        found: Identity | None = None
        for known in self.alertmanager_tokens:
            if hmac.compare_digest(known, digest):
                found = Identity(Role.ALERTMANAGER, "alertmanager")
        for known, name in self.operator_tokens:
            if hmac.compare_digest(known, digest):
                found = Identity(Role.OPERATOR, name)
        return found

    def _basic(self, value: str) -> Identity:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthError("malformed basic credentials") from None
        digest = _digest(decoded)
        ok = False
        for known in self.alertmanager_basic:
            ok |= hmac.compare_digest(known, digest)
        if not ok:
            raise AuthError("invalid credentials")
        return Identity(Role.ALERTMANAGER, "alertmanager")


def _operator_tokens(path: str) -> tuple[tuple[bytes, str], ...]:
    text = read_secret_file(path, "operator_token_file")
    tokens = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        if not sep:
            name, token = "operator", line
        if not token.strip() or not name.strip():
            raise SettingsError(
                "operator_token_file", f"line {i}: expected 'token' or 'name:token'"
            )
        tokens.append((_digest(token.strip()), name.strip()))
    if not tokens:
        raise SettingsError("operator_token_file", "holds no token")
    return tuple(tokens)


def load_credentials(settings: WebhookSettings) -> Credentials:
    """Read every configured secret file; refuse configurations that cannot be safe."""
    if settings.allow_unauthenticated:
        return Credentials(open=True)
    am_tokens: tuple[bytes, ...] = ()
    am_basic: tuple[bytes, ...] = ()
    schemes = ["Bearer"]
    if settings.alertmanager_token_file:
        am_tokens = (
            _digest(read_secret_file(settings.alertmanager_token_file, "alertmanager_token_file")),
        )
    if settings.alertmanager_username or settings.alertmanager_password_file:
        if not (settings.alertmanager_username and settings.alertmanager_password_file):
            raise SettingsError(
                "alertmanager_password_file",
                "basic auth needs both alertmanager_username and alertmanager_password_file",
            )
        password = read_secret_file(
            settings.alertmanager_password_file, "alertmanager_password_file"
        )
        am_basic = (_digest(f"{settings.alertmanager_username}:{password}"),)
        schemes.append("Basic")
    if not am_tokens and not am_basic:
        raise SettingsError(
            "alertmanager_token_file",
            "set alertmanager_token_file or alertmanager_username/alertmanager_password_file "
            "(or allow_unauthenticated for development)",
        )
    try:
        mode = OperatorAuth(settings.operator_auth)
    except ValueError:
        raise SettingsError(
            "operator_auth", f"expected static, kubernetes or both, got {settings.operator_auth!r}"
        ) from None
    operators: tuple[tuple[bytes, str], ...] = ()
    if mode is OperatorAuth.KUBERNETES:
        if settings.operator_token_file:
            raise SettingsError(
                "operator_token_file",
                "not used with operator_auth=kubernetes: remove it, or set operator_auth=both",
            )
    else:
        if not settings.operator_token_file:
            raise SettingsError(
                "operator_token_file",
                f"required with operator_auth={mode} (or set operator_auth=kubernetes)",
            )
        operators = _operator_tokens(settings.operator_token_file)
    if any(digest in am_tokens for digest, _ in operators):
        raise SettingsError("operator_token_file", "operators must not share Alertmanager's token")
    return Credentials(
        alertmanager_tokens=am_tokens,
        alertmanager_basic=am_basic,
        operator_tokens=operators,
        schemes=tuple(schemes),
        operator_auth=mode,
    )
