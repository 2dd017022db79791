"""Request helpers shared by the blueprints: who the caller is, what they may do, and
JSON bodies.

`authenticate(Role.ALERTMANAGER)` checks Alertmanager's static credential, nothing else.
`operator(verb, node)` identifies an operator (a static token, or a Kubernetes token
through TokenReview, as `operator_auth` allows) and, for a Kubernetes identity, asks a
SubjectAccessReview for `verb` on `noderemediations.nodewarden.io` (named `node` when
given). Answers: 401 for no or an unknown credential, 403 for the other role's
credential or a denied review (the body's `missing` names the permission), 429 when
too many reviews are in flight, 503 when a review could not be completed: never a
guess, and never "allowed".
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Request, current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from webhook.auth import AuthError, Identity, Role
from webhook.reviews import Attributes, ReviewsBusy, ReviewUnavailable
from webhook.services import ApiProblem, services

log = logging.getLogger(__name__)
MAX_USERNAME = 253  # the NodeRemediation's spec.trigger.requestedBy maxLength


class Verb:
    """The SubjectAccessReview verb of each operator action on noderemediations
    (docs/webhook.md, "Operator identity"). approve and cancel are verbs of their own,
    as `approve` is for CertificateSigningRequest signers."""

    LIST = "list"
    GET = "get"
    CREATE = "create"  # ask for a remediation
    APPROVE = "approve"
    CANCEL = "cancel"


def authenticate(role: Role) -> Identity:
    """The caller's identity if it holds `role`: 401 without valid credentials, 403 with
    a valid credential of the other role (Alertmanager's only posts alerts)."""
    svc = services()
    review = svc.reviewer.authenticate if role is Role.OPERATOR and svc.reviewer else None
    try:
        identity = svc.credentials.identify(request.headers.get("Authorization"), review)
    except AuthError as exc:
        reason = "missing" if "missing" in str(exc) else "invalid"
        svc.metrics.auth_failures.labels(reason).inc()
        problem = ApiProblem(401, f"authentication required: {exc}", reason="Unauthorized")
        problem.headers["WWW-Authenticate"] = ", ".join(
            f'{scheme} realm="nodewarden"' for scheme in svc.credentials.schemes
        )
        raise problem from None
    except ReviewUnavailable as exc:
        raise _unavailable(exc) from None
    except ReviewsBusy as exc:
        raise _busy(exc) from None
    if svc.credentials.open:
        return Identity(role, "anonymous")
    if identity.role is not role:
        svc.metrics.auth_failures.labels("forbidden").inc()
        raise ApiProblem(403, f"this credential may not call {request.path}", reason="Forbidden")
    return identity


def operator(verb: str, node: str = "") -> Identity:
    """An operator allowed to `verb` remediations (of `node`, when given); see the module
    docstring for every answer."""
    return authorize(authenticate(Role.OPERATOR), verb, node)


def authorize(identity: Identity, verb: str, node: str = "") -> Identity:
    """`identity` if it may `verb` remediations (of `node`); 403/429/503 otherwise."""
    if identity.user is None:
        return identity  # a static operator token: every operator action
    svc = services()
    if svc.reviewer is None:  # cannot happen: a reviewed identity comes from the reviewer
        raise ApiProblem(503, "operator reviews are not configured", reason="ReviewUnavailable")
    if len(identity.name) > MAX_USERNAME:
        # spec.trigger.requestedBy holds at most 253 characters; a cut name could be
        # someone else's, so the action is refused rather than recorded wrongly.
        raise ApiProblem(
            403,
            f"a username longer than {MAX_USERNAME} characters cannot be recorded; "
            "act with a shorter identity",
            reason="UsernameTooLong",
        )
    attributes = Attributes(verb=verb, name=node)
    try:
        decision = svc.reviewer.authorize(identity.user, attributes)
    except ReviewUnavailable as exc:
        raise _unavailable(exc) from None
    except ReviewsBusy as exc:
        raise _busy(exc) from None
    if decision.allowed:
        return identity
    svc.metrics.auth_failures.labels("forbidden").inc()
    message = f'User "{identity.name}" cannot {attributes.describe()}'
    if decision.reason:
        message += f": {decision.reason}"
    log.info("operator denied", extra={"fields": {"user": identity.name, **attributes.as_json()}})
    raise ApiProblem(403, message, reason="Forbidden", missing=attributes.as_json())


def _unavailable(exc: ReviewUnavailable) -> ApiProblem:
    log.warning("%s", exc)
    problem = ApiProblem(
        503,
        f"cannot check the operator's Kubernetes credentials: the {exc.kind} review "
        f"failed ({exc.reason}); nothing was done, retry later",
        reason="ReviewUnavailable",
    )
    problem.headers["Retry-After"] = "5"
    return problem


def _busy(exc: ReviewsBusy) -> ApiProblem:
    problem = ApiProblem(429, f"{exc}; retry shortly", reason="ReviewsBusy")
    problem.headers["Retry-After"] = "1"
    return problem


def json_body(required: bool) -> Any:
    """The request's JSON body: 415 if it is not JSON, 400 if it does not parse, 413 if
    it is larger than the limit (enforced while reading). An absent body is None when
    not required."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    mimetype = req.mimetype or ""
    is_json = mimetype == "application/json" or mimetype.endswith("+json")
    if required and not is_json:
        raise _unsupported()
    data = _read_body(req)
    if not data and not required:
        return None
    if not is_json:
        raise _unsupported()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ApiProblem(
            400, f"the body is not valid JSON: {str(exc)[:120]}", field="(body)"
        ) from None


def _read_body(req: Request) -> bytes:
    """The body, at most MAX_CONTENT_LENGTH bytes (413 beyond, before anything is read).

    A declared Content-Length is read here in one call of exactly that many bytes:
    Werkzeug's stream wrapper would read in 64 KiB steps up to the limit and once more
    to see the end, each a deadline-bound read on the socket (`webhook.server`), on
    every alert post. A body shorter than declared is 400 (`ClientDisconnected`), as
    Werkzeug answers it. Werkzeug enforces the limit on a declared Content-Length but
    silently truncates a chunked body at it, so a chunked body is read here too, one
    byte past the limit to tell the two apart."""
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    stream = req.environ["wsgi.input"]
    length = req.content_length
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        data = stream.read(length) if length else b""
        while len(data) < length:  # a stream may answer a large read in parts
            more = stream.read(length - len(data))
            if not more:
                raise ClientDisconnected()
            data += more
        return data
    if "wsgi.input_terminated" not in req.environ:
        return b""  # no length and no terminated stream: no body (as Werkzeug reads it)
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(65536, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RequestEntityTooLarge()


def _unsupported() -> ApiProblem:
    return ApiProblem(415, "expected Content-Type: application/json", reason="UnsupportedMediaType")
