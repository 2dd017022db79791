"""Authentication of peer requests and of their answers (agent to agent, remediator to agent).

A request is authenticated from its headers alone, before any body is read, so a client
without the secret never gets a body read, a worker or a log line per byte:

    X-Nodewarden-Date:           sender's unix time, decimal seconds (at most 3 decimals)
    X-Nodewarden-Receiver:       the node name of the agent the request is meant for
    X-Nodewarden-Content-Sha256: sha256hex(body) (of b"" when there is none)
    X-Nodewarden-Signature:      hex(HMAC-SHA256(secret, "nodewarden-peer-v2" \n METHOD \n
                                     PATH \n DATE \n RECEIVER \n CONTENT-SHA256))

`check_headers` says whether the headers are authentic, fresh (within `max_skew_s` of the
receiver's clock) and meant for this receiver; a captured request therefore never replays
to another agent. Once the body is read, `check_body` says whether it is the body that was
signed. Replays to the same receiver inside the skew window are the receiver's business
(`node_agent.replay`).

An answer carries `X-Nodewarden-Answer-Signature`: an HMAC over the request's signature,
the HTTP status and the answer body's digest. Only the cluster secret's holders can make
one, and it binds the answer to the question: a host on the network without the secret
cannot answer "reachable, no order" for an agent, nor replay an old answer.

Every input is untrusted: a header that is not ASCII, not hex, too long or not a number
is a refusal with an enumerated reason, never an exception.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
from collections.abc import Mapping

DATE_HEADER = "X-Nodewarden-Date"
RECEIVER_HEADER = "X-Nodewarden-Receiver"
CONTENT_HEADER = "X-Nodewarden-Content-Sha256"
SIGNATURE_HEADER = "X-Nodewarden-Signature"
ANSWER_HEADER = "X-Nodewarden-Answer-Signature"
REQUEST_HEADERS = (DATE_HEADER, RECEIVER_HEADER, CONTENT_HEADER, SIGNATURE_HEADER)

_REQUEST_TAG = "nodewarden-peer-v2"
_ANSWER_TAG = "nodewarden-peer-answer-v2"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,3})?")
_RECEIVER = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class AuthFailure(enum.StrEnum):
    MISSING = "MissingCredentials"
    BAD_DATE = "BadDate"
    SKEW = "ClockSkew"
    BAD_SIGNATURE = "BadSignature"  # not a well-formed signature, or not ours
    WRONG_RECEIVER = "WrongReceiver"  # signed for another agent (or for none)
    BODY_MISMATCH = "BodyMismatch"  # the body read is not the body signed


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _mac(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def format_date(now: float) -> str:
    return f"{now:.3f}"


def sign_request(
    secret: bytes, method: str, path: str, body: bytes, now: float, receiver: str
) -> dict[str, str]:
    """Headers to add to a request for `path` (path and query, as sent) to `receiver`'s agent."""
    date = format_date(now)
    content = body_digest(body)
    signature = _mac(secret, _REQUEST_TAG, method.upper(), path, date, receiver, content)
    return {DATE_HEADER: date, RECEIVER_HEADER: receiver, CONTENT_HEADER: content, SIGNATURE_HEADER: signature}


def check_headers(
    secret: bytes,
    method: str,
    path: str,
    headers: Mapping[str, str],
    *,
    now: float,
    receiver: str,
    max_skew_s: float = 60.0,
) -> AuthFailure | None:
    """None when the headers are authentic, fresh and meant for `receiver`; otherwise why not.
    The body is checked later, against the signed digest, by `check_body`."""
    values = [headers.get(h) for h in REQUEST_HEADERS]
    if not all(values):
        return AuthFailure.MISSING
    date, to, content, signature = (str(v) for v in values)
    if not _DATE.fullmatch(date):
        return AuthFailure.BAD_DATE
    sent_at = float(date)
    if not math.isfinite(sent_at):
        return AuthFailure.BAD_DATE
    if abs(now - sent_at) > max_skew_s:
        return AuthFailure.SKEW
    if not _HEX64.fullmatch(signature) or not _HEX64.fullmatch(content) or not _RECEIVER.fullmatch(to):
        return AuthFailure.BAD_SIGNATURE
    expected = _mac(secret, _REQUEST_TAG, method.upper(), path, date, to, content)
    if not hmac.compare_digest(expected, signature):
        return AuthFailure.BAD_SIGNATURE
    if to != receiver:
        return AuthFailure.WRONG_RECEIVER
    return None


def check_body(headers: Mapping[str, str], body: bytes) -> AuthFailure | None:
    """After `check_headers` passed: is `body` the body that was signed?"""
    if not hmac.compare_digest(body_digest(body), str(headers.get(CONTENT_HEADER, ""))):
        return AuthFailure.BODY_MISMATCH
    return None


def sign_answer(secret: bytes, request_signature: str, status: int, body: bytes) -> str:
    """The answer header's value for the answer to the request signed `request_signature`."""
    return _mac(secret, _ANSWER_TAG, request_signature, str(status), body_digest(body))


def check_answer(secret: bytes, request_signature: str, status: int, body: bytes, header: str | None) -> bool:
    """True when `header` proves the answer comes from a holder of the secret, for this request."""
    if not header or not _HEX64.fullmatch(header):
        return False
    return hmac.compare_digest(sign_answer(secret, request_signature, status, body), header)
