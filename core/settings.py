"""Typed settings, read once at an entry point from a YAML/JSON mapping and the
environment, with errors that name the offending field.

A settings class is a frozen dataclass whose fields have simple types (str, int, float,
bool, list[str], or those `| None`). Durations are floats in seconds and accept either a
number or a Go-style string ("500ms", "10s", "1m30s"). Environment variables override the
file: field `api_check_interval_s` is read from `<PREFIX>API_CHECK_INTERVAL_S`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing, of the wrong type, or out of range. `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object, field: str = "duration") -> float:
    """Seconds from a number or a Go-style duration string ("1m30s", "250ms")."""
    if isinstance(value, bool):
        raise SettingsError(field, f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_S[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise SettingsError(
                    field, f"expected a duration like 10s, 1m30s or 500ms, got {value!r}"
                ) from None
    else:
        raise SettingsError(field, f"expected a duration, got {type(value).__name__}")
    if seconds < 0:
        raise SettingsError(field, f"must not be negative, got {value!r}")
    return seconds


def _is_duration_field(name: str) -> bool:
    return name.endswith("_s")


def _coerce(name: str, tp: Any, value: object) -> object:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(name, args[0], value)
    if tp is float and _is_duration_field(name):
        return parse_duration(value, name)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise SettingsError(name, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise SettingsError(name, f"expected an integer, got {value!r}")
        try:
            return int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise SettingsError(name, f"expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise SettingsError(name, f"expected a number, got {value!r}")
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SettingsError(name, f"expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise SettingsError(name, f"expected a string, got {type(value).__name__}")
    if origin is list:
        if isinstance(value, str):
            items: list[object] = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list):
            items = value
        else:
            raise SettingsError(name, f"expected a list, got {type(value).__name__}")
        (inner,) = typing.get_args(tp)
        return [_coerce(name, inner, v) for v in items]
    raise SettingsError(name, f"unsupported settings type {tp!r}")


def load_settings(
    cls: type[T],
    mapping: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    env_prefix: str = "",
) -> T:
    """Build `cls` from `mapping` (e.g. a parsed config file), then `env` overrides.

    Unknown keys in `mapping` are an error (a typo must not silently fall back to a
    default). Keys may be written with dashes or underscores.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, object] = {}
    for key, raw in (mapping or {}).items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise SettingsError(str(key), f"unknown setting (known: {', '.join(sorted(fields))})")
        values[name] = _coerce(name, hints[name], raw)
    if env is not None and env_prefix:
        for name in fields:
            env_key = env_prefix + name.upper()
            if env_key in env:
                values[name] = _coerce(name, hints[name], env[env_key])
    missing = [
        n
        for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SettingsError(missing[0], "required setting is missing")
    return cls(**values)


def read_config_file(path: str | os.PathLike[str] | None) -> dict[str, object]:
    """A YAML (or JSON) mapping from `path`; an empty mapping when `path` is None."""
    if path is None or str(path) == "":
        return {}
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SettingsError("config", f"file not found: {p}") from None
    except yaml.YAMLError as exc:
        raise SettingsError("config", f"{p} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError("config", f"{p} must hold a mapping, got {type(data).__name__}")
    return data


def read_secret_file(path: str | os.PathLike[str], field: str) -> str:
    """A secret from a file, stripped of surrounding whitespace; never empty."""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise SettingsError(field, f"cannot read secret file {path}: {exc.strerror}") from None
    if not value:
        raise SettingsError(field, f"secret file {path} is empty")
    return value
