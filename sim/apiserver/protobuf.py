"""Requests in Kubernetes' protobuf encoding, for the kinds kubectl sends that way and
the simulator answers: the reviews (`kubectl auth can-i`, `auth can-i --list`,
`auth whoami`), and `kubectl drain`'s Evictions and DeleteOptions. Decoding only: client-go reads a JSON answer to a protobuf request by
the answer's Content-Type.

The envelope (k8s.io/apimachinery/pkg/runtime/serializer/protobuf): the magic
`k8s\\x00`, then a runtime.Unknown {typeMeta=1 {apiVersion=1, kind=2}, raw=2,
contentEncoding=3, contentType=4}; `raw` is the object's message. Field numbers are the
ones in k8s.io/api's generated.proto; unknown fields are skipped, as proto2 does.
"""

from __future__ import annotations

from typing import Any

from . import errors

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

Schema = dict[int, tuple[str, Any]]  # field number -> (JSON name, "string" | "bool" | [..] | Schema)

_RESOURCE_ATTRIBUTES: Schema = {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
                                4: ("version", "string"), 5: ("resource", "string"),
                                6: ("subresource", "string"), 7: ("name", "string")}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string"), 2: ("verb", "string")}
_META: Schema = {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                 5: ("uid", "string"), 6: ("resourceVersion", "string")}
_DELETE_OPTIONS: Schema = {1: ("gracePeriodSeconds", "int"),
                           2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
                           3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"),
                           5: ("dryRun", ["string"])}
_EXTRA_ENTRY: Schema = {1: ("key", "string"), 2: ("value", {1: ("items", ["string"])})}
_ACCESS_SPEC: Schema = {1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
                        2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
                        3: ("user", "string"), 4: ("groups", ["string"]), 5: ("extra", ["map", _EXTRA_ENTRY]),
                        6: ("uid", "string")}
KINDS: dict[str, Schema] = {
    "SelfSubjectAccessReview": {1: ("metadata", _META), 2: ("spec", _ACCESS_SPEC)},
    "SubjectAccessReview": {1: ("metadata", _META), 2: ("spec", _ACCESS_SPEC)},
    "LocalSubjectAccessReview": {1: ("metadata", _META), 2: ("spec", _ACCESS_SPEC)},
    "SelfSubjectRulesReview": {1: ("metadata", _META), 2: ("spec", {1: ("namespace", "string")})},
    "TokenReview": {1: ("metadata", _META), 2: ("spec", {1: ("token", "string"), 2: ("audiences", ["string"])})},
    "SelfSubjectReview": {1: ("metadata", _META)},
    # kubectl drain: the eviction it posts and the options of the deletes it sends.
    "Eviction": {1: ("metadata", _META), 2: ("deleteOptions", _DELETE_OPTIONS)},
    "DeleteOptions": _DELETE_OPTIONS,
    "Scale": {1: ("metadata", _META), 2: ("spec", {1: ("replicas", "int")}),
              3: ("status", {1: ("replicas", "int"), 2: ("selector", "string")})},
}
_UNKNOWN: Schema = {1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}),
                    2: ("raw", "bytes"), 3: ("contentEncoding", "string"), 4: ("contentType", "string")}


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _scalar(kind: str, value: Any) -> Any:
    if kind == "bool":
        return bool(value)
    if kind == "int":  # int32/int64 as varints, negative ones in two's complement
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "bytes":
        return bytes(value)
    return bytes(value).decode("utf-8")


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, dict):
            out[name] = decode_message(value, kind)
        elif isinstance(kind, list) and kind[0] == "map":
            entry = decode_message(value, kind[1])
            out.setdefault(name, {})[entry.get("key", "")] = (entry.get("value") or {}).get("items", [])
        elif isinstance(kind, list):
            out.setdefault(name, []).append(_scalar(kind[0], value))
        else:
            out[name] = _scalar(kind, value)
    return out


def decode(body: bytes, expected_kind: str) -> dict[str, Any]:
    """The object in a protobuf request body, as its JSON form; a 415 for kinds the
    simulator cannot read this way, a 400 for a body that is not what it says."""
    if expected_kind not in KINDS:
        raise errors.ApiError(415, "UnsupportedMediaType",
                              f'the body of the request was in an unknown format - accepted media types '
                              f'include: application/json, application/yaml; got "{PROTOBUF}" '
                              f"(the simulator reads protobuf only for {', '.join(sorted(KINDS))})")
    if not body.startswith(MAGIC):
        raise errors.bad_request("provided data does not appear to be a protobuf message, expected prefix "
                                 "[107 56 115 0]")
    try:
        unknown = decode_message(body[len(MAGIC):], _UNKNOWN)
        obj = decode_message(unknown.get("raw", b""), KINDS[expected_kind])
    except (ProtobufError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"error decoding request body: {exc}") from None
    type_meta = unknown.get("typeMeta") or {}
    obj["apiVersion"], obj["kind"] = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    return obj
