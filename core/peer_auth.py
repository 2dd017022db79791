"""Authentication of peer requests (agent to agent, remediator to agent).

Every request carries an HMAC-SHA256 over method, path, a timestamp and the body's
digest, keyed with the per-cluster peer secret:

    X-Nodewarden-Date:      unix seconds, decimal
    X-Nodewarden-Signature: hex(HMAC(secret, METHOD \n PATH \n DATE \n sha256hex(body)))

A request whose timestamp is further than `max_skew_s` from the receiver's clock is
rejected, which bounds replays to that window; peer requests are queries or carry
already-signed fence orders, so a replay inside the window can do no harm.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping

DATE_HEADER = "X-Nodewarden-Date"
SIGNATURE_HEADER = "X-Nodewarden-Signature"


class AuthFailure(enum.StrEnum):
    MISSING = "MissingCredentials"
    BAD_DATE = "BadDate"
    SKEW = "ClockSkew"
    BAD_SIGNATURE = "BadSignature"


def _mac(secret: bytes, method: str, path: str, date: str, body: bytes) -> str:
    message = "\n".join([method.upper(), path, date, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def sign_request(secret: bytes, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
    """Headers to add to a request for `path` (path and query, as sent)."""
    date = str(int(now))
    return {DATE_HEADER: date, SIGNATURE_HEADER: _mac(secret, method, path, date, body)}


def check_request(
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
    max_skew_s: float = 60.0,
) -> AuthFailure | None:
    """None when the request is authentic; otherwise why not."""
    date = headers.get(DATE_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not date or not signature:
        return AuthFailure.MISSING
    try:
        sent_at = int(date)
    except ValueError:
        return AuthFailure.BAD_DATE
    if abs(now - sent_at) > max_skew_s:
        return AuthFailure.SKEW
    expected = _mac(secret, method, path, date, body)
    if not hmac.compare_digest(expected, signature):
        return AuthFailure.BAD_SIGNATURE
    return None
