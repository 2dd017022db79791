"""Typed JSON parts: the machinery under `core.remediation_status`'s shapes.

A part is a frozen dataclass whose fields are declared with `text`, `integer`, `number`,
`flag`, `time`, `texts`, `free_object`, `part` and `parts`, each naming its JSON key.
`from_json` is tolerant (a value of the wrong type, a time that is not RFC 3339, a list
longer than its bound or a part that is not an object reads as None, list items of the
wrong shape are skipped; nothing raises); `to_json` leaves out the fields that are None,
and gives back exactly what `from_json` read. A stored time is a `Stamp`: its seconds and
the exact text stored, so both the second-precision and microsecond forms round-trip.
"""

# The field helpers below (`text`, `time`, `part`, ...) return `dataclasses.field`s; ruff
# cannot see that, so its rule against calls in dataclass defaults is off for this file.

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from core.clock import format_time, parse_time, rfc3339

JSON = dict[str, Any]

@dataclass(frozen=True)
class Stamp:
    """A stored time: its unix seconds and the exact text it is stored as."""

    ts: float
    text: str

    @classmethod
    def at(cls, ts: float) -> Stamp:
        """A controller or agent time (microseconds)."""
        return cls._of(format_time(ts))

    @classmethod
    def second(cls, ts: float) -> Stamp:
        """A webhook time (Kubernetes' second precision)."""
        return cls._of(rfc3339(ts))

    @classmethod
    def _of(cls, text: str) -> Stamp:
        stamp = cls.parse(text)
        assert stamp is not None, text  # we formatted it
        return stamp

    @classmethod
    def parse(cls, value: object) -> Stamp | None:
        return _stamp(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=8192)
def _stamp(text: str) -> Stamp | None:
    """Memoized: an object's times are read again at every change of it."""
    ts = parse_time(text)
    return None if ts is None else Stamp(ts, text)


def stamp_ts(stamp: Stamp | None) -> float | None:
    return None if stamp is None else stamp.ts


# -- field readers: each returns None for anything that is not of its type ---------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _object(value: object) -> JSON | None:
    return dict(value) if isinstance(value, dict) else None


def _texts(limit: int) -> Callable[[object], tuple[str, ...] | None]:
    def read(value: object) -> tuple[str, ...] | None:
        if not isinstance(value, list) or len(value) > limit:
            return None
        return tuple(item for item in value if isinstance(item, str))
    return read


def _out(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_json()
    if isinstance(value, Stamp):
        return value.text
    if isinstance(value, str):
        return str(value)  # an enum member is stored as its plain value
    if isinstance(value, tuple):
        return [_out(item) for item in value]
    if isinstance(value, dict):
        return dict(value)
    return value


def field_of(key: str, read: Callable[[object], Any], kind: str) -> Any:
    """A field stored under `key`, read with `read`; `kind` is its CRD schema type."""
    return dataclasses.field(default=None, metadata={"key": key, "read": read, "kind": kind})


def text(key: str) -> Any:
    return field_of(key, _text, "string")


def integer(key: str) -> Any:
    return field_of(key, _integer, "integer")


def number(key: str) -> Any:
    return field_of(key, _number, "number")


def flag(key: str) -> Any:
    return field_of(key, _flag, "boolean")


def time(key: str) -> Any:
    return field_of(key, Stamp.parse, "date-time")


def free_object(key: str) -> Any:
    """An object whose keys are not part of the contract (evidence inputs)."""
    return field_of(key, _object, "object")


def texts(key: str, limit: int) -> Any:
    return field_of(key, _texts(limit), "array")


def part(key: str, shape: type[Part]) -> Any:
    return dataclasses.field(default=None, metadata={"key": key, "read": shape.from_json, "kind": "object",
                                                     "shape": shape})


def parts(key: str, shape: type[Part], limit: int) -> Any:
    def read(value: object) -> tuple[Part, ...] | None:
        if not isinstance(value, list) or len(value) > limit:
            return None
        return tuple(p for p in (shape.from_json(item) for item in value) if p is not None)
    return dataclasses.field(default=None, metadata={"key": key, "read": read, "kind": "array",
                                                     "shape": shape})


class Part:
    """A part of the status: read tolerantly, written exactly (see the module docstring)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def _spec(cls) -> dict[str, tuple[str, Callable[[object], Any]]]:
        """JSON key -> (attribute, reader) of every field, computed once per shape."""
        spec = cls.__dict__.get("_spec_cache")
        if spec is None:
            spec = {f.metadata["key"]: (f.name, f.metadata["read"]) for f in dataclasses.fields(cls)}
            cls._spec_cache = spec  # type: ignore[attr-defined]
        return spec

    @classmethod
    def from_json(cls, value: object, only: frozenset[str] | None = None) -> Self | None:
        """The part `value` holds (None if it is not an object). With `only`, just those
        JSON keys are read (the rest stay None), for a reader that needs a few."""
        if not isinstance(value, dict):
            return None
        spec = cls._spec()
        fields = {}
        for key in value if only is None else only & value.keys():
            known = spec.get(key) if isinstance(key, str) else None
            if known is not None:
                fields[known[0]] = known[1](value[key])
        return cls(**fields)

    def to_json(self) -> JSON:
        out: JSON = {}
        for key, (name, _) in self._spec().items():
            value = getattr(self, name)
            if value is not None:
                out[key] = _out(value)
        return out
