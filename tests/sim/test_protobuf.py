"""Protobuf request bodies as client-go encodes them (k8s.io/apimachinery's protobuf
serializer: the `k8s\\x00` magic, a runtime.Unknown, the object's message with the field
numbers of k8s.io/api's generated.proto), decoded to their JSON form."""

from __future__ import annotations

import pytest

from sim.apiserver import errors, protobuf


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 in two's complement, as proto encodes negative numbers
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw)


def test_eviction_with_delete_options() -> None:
    options = (field(1, 30) + field(2, field(1, b"uid-1") + field(2, b"42"))
               + field(4, b"Background") + field(5, b"All"))
    raw = field(1, field(1, b"db-0") + field(3, b"ops")) + field(2, options)
    obj = protobuf.decode(envelope("policy/v1", "Eviction", raw), "Eviction")
    assert obj == {"apiVersion": "policy/v1", "kind": "Eviction",
                   "metadata": {"name": "db-0", "namespace": "ops"},
                   "deleteOptions": {"gracePeriodSeconds": 30,
                                     "preconditions": {"uid": "uid-1", "resourceVersion": "42"},
                                     "propagationPolicy": "Background", "dryRun": ["All"]}}


def test_negative_int64_and_scale() -> None:
    obj = protobuf.decode(envelope("v1", "DeleteOptions", field(1, -1)), "DeleteOptions")
    assert obj["gracePeriodSeconds"] == -1
    raw = field(1, field(1, b"db") + field(6, b"7")) + field(2, field(1, 3))
    obj = protobuf.decode(envelope("autoscaling/v1", "Scale", raw), "Scale")
    assert obj["metadata"] == {"name": "db", "resourceVersion": "7"} and obj["spec"] == {"replicas": 3}


def test_kinds_it_cannot_read_are_415() -> None:
    with pytest.raises(errors.ApiError) as err:
        protobuf.decode(envelope("v1", "Namespace", b""), "Namespace")
    assert err.value.code == 415
