"""Trusted order keys read from PEM without `cryptography`, and checked with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.fence_order import OrderKey, load_public_keys, parse_public_keys, public_key_pem


def _pem(key: object) -> str:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_every_key_of_a_rotation_file_is_read_byte_for_byte(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = tmp_path / "keys.pem"
    path.write_bytes(public_key_pem(old.public_key()) + b"\n" + public_key_pem(new.public_key()))
    assert load_public_keys(path) == [OrderKey.of(old.public_key()), OrderKey.of(new.public_key())]
    assert load_public_keys(path)[1].raw == new.public_key().public_bytes_raw()


@pytest.mark.parametrize("other", [
    lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
    lambda: x25519.X25519PrivateKey.generate().public_key(),  # same length, another algorithm
])
def test_a_key_that_is_not_ed25519_is_refused(other: object) -> None:
    good = public_key_pem(Ed25519PrivateKey.generate().public_key()).decode()
    with pytest.raises(ValueError, match="not Ed25519 \\(key 2\\)"):
        parse_public_keys(good + _pem(other()), "keys.pem")  # type: ignore[operator]


@pytest.mark.parametrize("text, message", [
    ("", "holds no public key"),
    ("-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n", "holds no public key"),
    ("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n", "is not base64"),
    ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", "not Ed25519"),
])
def test_a_file_without_a_usable_key_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_public_keys(text, "keys.pem")


def test_a_signature_verifies_under_its_key_only() -> None:
    signer, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    key = OrderKey.of(signer.public_key())
    signature = signer.sign(b"order")
    assert key.verifies(signature, b"order")
    assert not key.verifies(signature, b"orders")
    assert not OrderKey.of(other.public_key()).verifies(signature, b"order")
    with pytest.raises(ValueError):
        OrderKey(b"short")
