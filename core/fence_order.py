"""Fence orders: what the remediator asks of a node's agent, signed with Ed25519.

An order is a small JSON payload, signed by the remediator's private key; agents hold
only public keys. The wire form is one compact string, safe to store in the
NodeRemediation status and to relay through peers unchanged:

    nwf1.<base64url(canonical JSON payload)>.<base64url(Ed25519 signature of those bytes)>

Payload fields (all required):
    node            the node the order is for
    remediationUid  metadata.uid of the NodeRemediation that issued it
    action          "fence" | "restart-kubelet"
    issuedAt        unix seconds (float), remediator's clock
    expiresAt       unix seconds (float); after this the order is void
    bootId          the node's status.nodeInfo.bootID when the order was issued ("" if unknown)
    nonce           random hex, so two orders never share bytes

`verify_order` is pure: it takes the agent's view (node name, current boot id and boot
time, the time now) and returns either the order or a `Rejection` with an enumerated reason.
An order issued for an earlier boot is `STALE_BOOT`: the node has already rebooted since,
so the agent must answer "already rebooted" and never reboot again for it.

Trusted keys are `OrderKey`s: the 32 raw bytes of an Ed25519 public key, read from PEM
here (RFC 8410 fixes the encoding: one 12-byte prefix, then the key). `cryptography` is
imported only by the functions that sign, make keys or check a signature, so a node
agent that has verified no order yet does not carry it (about 7 MiB of its memory);
`VERIFIER_SELF_TEST` lets a process check at start, in a child, that it will load.

Every part of a token is untrusted: a non-ASCII or deeply nested part is `MALFORMED`,
never an exception.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.jsonlimit import loads_bounded

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

PREFIX = "nwf1"
MAX_ORDER_BYTES = 4096


class Action(enum.StrEnum):
    FENCE = "fence"
    RESTART_KUBELET = "restart-kubelet"


class RejectReason(enum.StrEnum):
    MALFORMED = "Malformed"  # not an order at all, or fields missing / wrong types
    BAD_SIGNATURE = "BadSignature"  # no trusted key verifies it
    WRONG_NODE = "WrongNode"  # addressed to another node
    UNKNOWN_ACTION = "UnknownAction"
    NOT_YET_VALID = "NotYetValid"  # issued in the future beyond the allowed clock skew
    EXPIRED = "Expired"
    STALE_BOOT = "StaleBoot"  # issued before the node's current boot: already rebooted


@dataclass(frozen=True)
class FenceOrder:
    node: str
    remediation_uid: str
    action: Action
    issued_at: float
    expires_at: float
    boot_id: str
    nonce: str

    def payload(self) -> dict[str, object]:
        return {
            "node": self.node,
            "remediationUid": self.remediation_uid,
            "action": str(self.action),
            "issuedAt": self.issued_at,
            "expiresAt": self.expires_at,
            "bootId": self.boot_id,
            "nonce": self.nonce,
        }


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    """Decode base64url; anything else (non-ASCII included) is a binascii.Error."""
    if not text.isascii():
        raise binascii.Error("not ASCII")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_bytes(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def new_order(
    *,
    node: str,
    remediation_uid: str,
    action: Action,
    issued_at: float,
    ttl_s: float,
    boot_id: str,
) -> FenceOrder:
    return FenceOrder(
        node=node,
        remediation_uid=remediation_uid,
        action=action,
        issued_at=issued_at,
        expires_at=issued_at + ttl_s,
        boot_id=boot_id,
        nonce=secrets.token_hex(8),
    )


def sign_order(order: FenceOrder, key: Ed25519PrivateKey) -> str:
    body = canonical_bytes(order.payload())
    return f"{PREFIX}.{_b64e(body)}.{_b64e(key.sign(body))}"


def decode_order(token: str) -> FenceOrder | Rejection:
    """Parse without verifying (for display and logs). Never trust the result."""
    if not isinstance(token, str) or len(token) > MAX_ORDER_BYTES:
        return Rejection(RejectReason.MALFORMED, "not a string of acceptable length")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        return Rejection(RejectReason.MALFORMED, f"expected {PREFIX}.<payload>.<signature>")
    try:
        payload = loads_bounded(_b64d(parts[1]))
    except (binascii.Error, ValueError):
        return Rejection(RejectReason.MALFORMED, "payload is not base64url JSON")
    return _order_from_payload(payload)


def _order_from_payload(payload: object) -> FenceOrder | Rejection:
    if not isinstance(payload, dict):
        return Rejection(RejectReason.MALFORMED, "payload is not an object")
    spec: dict[str, type | tuple[type, ...]] = {
        "node": str,
        "remediationUid": str,
        "action": str,
        "issuedAt": (int, float),
        "expiresAt": (int, float),
        "bootId": str,
        "nonce": str,
    }
    for key, tp in spec.items():
        value = payload.get(key)
        if not isinstance(value, tp) or isinstance(value, bool):
            return Rejection(RejectReason.MALFORMED, f"field {key} missing or of wrong type")
    try:
        action = Action(payload["action"])
    except ValueError:
        return Rejection(RejectReason.UNKNOWN_ACTION, f"unknown action {payload['action']!r}")
    return FenceOrder(
        node=payload["node"],
        remediation_uid=payload["remediationUid"],
        action=action,
        issued_at=float(payload["issuedAt"]),
        expires_at=float(payload["expiresAt"]),
        boot_id=payload["bootId"],
        nonce=payload["nonce"],
    )


def verify_order(
    token: str,
    *,
    public_keys: Sequence[OrderKey],
    node: str,
    now: float,
    boot_id: str,
    boot_time: float | None,
    max_clock_skew_s: float,
) -> FenceOrder | Rejection:
    """Accept `token` only if a trusted key signed it and it is for this node, now, this boot.

    `boot_time` is when the current boot started (wall clock), used when the order does
    not name a boot id. Checks run in a fixed order, so each bad order has one reason.
    """
    decoded = decode_order(token)
    if isinstance(decoded, Rejection) and decoded.reason is RejectReason.MALFORMED:
        return decoded
    _, body_b64, sig_b64 = token.split(".")
    try:
        body, signature = _b64d(body_b64), _b64d(sig_b64)
    except binascii.Error:
        return Rejection(RejectReason.MALFORMED, "signature is not base64url")
    if not _signed_by_any(public_keys, body, signature):
        return Rejection(RejectReason.BAD_SIGNATURE, "no trusted key verifies this order")
    if isinstance(decoded, Rejection):
        return decoded
    order = decoded
    if body != canonical_bytes(order.payload()):
        return Rejection(RejectReason.MALFORMED, "payload is not in canonical form")
    if order.node != node:
        return Rejection(RejectReason.WRONG_NODE, f"order is for node {order.node!r}")
    if order.issued_at > now + max_clock_skew_s:
        return Rejection(
            RejectReason.NOT_YET_VALID,
            f"issued {order.issued_at - now:.1f}s in the future (allowed skew {max_clock_skew_s}s)",
        )
    if now > order.expires_at:
        return Rejection(RejectReason.EXPIRED, f"expired {now - order.expires_at:.1f}s ago")
    if order.boot_id:
        if order.boot_id != boot_id:
            return Rejection(
                RejectReason.STALE_BOOT,
                f"issued for boot {order.boot_id}, node is on boot {boot_id}: already rebooted",
            )
    elif boot_time is not None and order.issued_at < boot_time - max_clock_skew_s:
        return Rejection(RejectReason.STALE_BOOT, "issued before the current boot: already rebooted")
    return order


def _signed_by_any(keys: Sequence[OrderKey], body: bytes, signature: bytes) -> bool:
    return any(key.verifies(signature, body) for key in keys)


# Key handling -------------------------------------------------------------------------

# SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 section 4): SEQUENCE { SEQUENCE { OID
# 1.3.101.112 }, BIT STRING (no unused bits) of 32 bytes }. Nothing in it varies but the key.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_PUBLIC_KEY = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.DOTALL)


@dataclass(frozen=True)
class OrderKey:
    """A trusted Ed25519 public key: its 32 raw bytes (RFC 8032)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(self.raw)}")

    def fingerprint(self) -> str:
        """The first 16 hex digits of the key's SHA-256: how agents publish which keys
        they trust, and how the controller finds its own among them."""
        import hashlib

        return hashlib.sha256(self.raw).hexdigest()[:16]

    @classmethod
    def of(cls, key: Ed25519PublicKey) -> OrderKey:
        return cls(key.public_bytes_raw())

    def verifies(self, signature: bytes, body: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, body)
        except InvalidSignature:
            return False
        return True


# RFC 8032 section 7.1, test 1: this signature of the empty message verifies under this key.
VERIFIER_SELF_TEST = (
    "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as K\n"
    "K.from_public_bytes(bytes.fromhex("
    "'d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')).verify(bytes.fromhex("
    "'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'"
    "), b'')\n"
)


def generate_private_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def parse_public_keys(pem: str, source: str = "the PEM text") -> list[OrderKey]:
    """Every PUBLIC KEY block in `pem` (several allow key rotation); each must be an
    Ed25519 key. ValueError naming `source` otherwise, or when there is none."""
    keys: list[OrderKey] = []
    for number, block in enumerate(_PEM_PUBLIC_KEY.findall(pem), start=1):
        try:
            der = base64.b64decode("".join(block.split()), validate=True)
        except binascii.Error:
            raise ValueError(f"{source}: public key {number} is not base64") from None
        if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
            raise ValueError(f"{source} holds a public key that is not Ed25519 (key {number})")
        keys.append(OrderKey(der[len(_ED25519_SPKI_PREFIX):]))
    if not keys:
        raise ValueError(f"{source} holds no public key")
    return keys


def load_public_keys(path: str | Path) -> list[OrderKey]:
    """All public keys in a PEM file (several allow key rotation)."""
    return parse_public_keys(Path(path).read_text(), str(path))
