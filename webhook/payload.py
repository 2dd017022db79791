"""Alertmanager's webhook payload, version "4", parsed into typed values.

Fields (Alertmanager's `notify/webhook`): version, groupKey, truncatedAlerts, status,
receiver, groupLabels, commonLabels, commonAnnotations, externalURL, and alerts[] with
status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint.

Required: `version` ("4"), `status`, `alerts`, and per alert `status`, `labels`,
`startsAt`. Every other listed field is optional but type-checked when present (a JSON
null is refused where Alertmanager sends a string; the maps may be null); fields not listed
are accepted and ignored (newer Alertmanagers add fields). Every string must be valid
Unicode text (a lone surrogate from a `\\udXXX` escape is refused: it cannot be encoded).

A problem with the message itself raises `PayloadError` whose `field` names the offending
key. A problem inside one alert (`alerts[3].labels.node`) does not: that alert becomes an
`InvalidAlert` in its place, and the others are handled as usual.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SUPPORTED_VERSION = "4"
STATUSES = ("firing", "resolved")
MAX_LABELS = 256
MAX_STRING = 16_384
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


class PayloadError(ValueError):
    """The payload is not a valid version-4 webhook message; `field` names the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float | None
    ends_at: float | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass(frozen=True)
class InvalidAlert:
    """An alert that failed validation: rejected alone, the rest of the message stands."""

    index: int
    field: str
    message: str
    status: str = ""  # the alert's status and name, when they could be read
    name: str = ""


@dataclass(frozen=True)
class Message:
    version: str
    group_key: str
    truncated_alerts: int
    status: str
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    alerts: tuple[Alert | InvalidAlert, ...]

    @property
    def invalid(self) -> tuple[InvalidAlert, ...]:
        return tuple(a for a in self.alerts if isinstance(a, InvalidAlert))


def parse_message(data: object) -> Message:
    """Validate a decoded JSON body; raises `PayloadError` naming the first bad field."""
    if not isinstance(data, dict):
        raise PayloadError("(body)", f"expected a JSON object, got {_kind(data)}")
    version = _required(data, "version", "")
    if version != SUPPORTED_VERSION:
        raise PayloadError("version", f'unsupported version {version!r}, expected "4"')
    status = _status(_required(data, "status", ""), "status")
    raw_alerts = _required(data, "alerts", "")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", f"expected a list, got {_kind(raw_alerts)}")
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError(
            "truncatedAlerts", f"expected a non-negative integer, got {_kind(truncated)}"
        )
    return Message(
        version=version,
        group_key=_opt_str(data, "groupKey", ""),
        truncated_alerts=truncated,
        status=status,
        receiver=_opt_str(data, "receiver", ""),
        group_labels=_labels(data.get("groupLabels"), "groupLabels"),
        common_labels=_labels(data.get("commonLabels"), "commonLabels"),
        common_annotations=_labels(data.get("commonAnnotations"), "commonAnnotations"),
        external_url=_opt_str(data, "externalURL", ""),
        alerts=tuple(_checked_alert(i, a) for i, a in enumerate(raw_alerts)),
    )


def _checked_alert(index: int, data: object) -> Alert | InvalidAlert:
    try:
        return _alert(data, f"alerts[{index}]")
    except PayloadError as exc:
        status = name = ""
        if isinstance(data, dict):
            status = str(data["status"]) if data.get("status") in STATUSES else ""
            labels = data.get("labels")
            raw_name = labels.get("alertname") if isinstance(labels, dict) else None
            name = raw_name[:256] if isinstance(raw_name, str) and _is_text(raw_name) else ""
        return InvalidAlert(index, exc.field, exc.message, status, name)


def _alert(data: object, where: str) -> Alert:
    if not isinstance(data, dict):
        raise PayloadError(where, f"expected an object, got {_kind(data)}")
    status = _status(_required(data, "status", where), f"{where}.status")
    labels = _labels(_required(data, "labels", where), f"{where}.labels")
    starts_at = parse_time(_required(data, "startsAt", where), f"{where}.startsAt")
    ends_at = parse_time(data["endsAt"], f"{where}.endsAt") if "endsAt" in data else None
    fingerprint = _opt_str(data, "fingerprint", where)
    return Alert(
        status=status,
        labels=labels,
        annotations=_labels(data.get("annotations"), f"{where}.annotations"),
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=_opt_str(data, "generatorURL", where),
        fingerprint=fingerprint or label_fingerprint(labels),
    )


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit fingerprint for alerts that came without one."""
    digest = hashlib.sha256()
    for key in sorted(labels):
        digest.update(key.encode() + b"\xff" + labels[key].encode() + b"\xff")
    return digest.hexdigest()[:16]


def parse_time(value: object, where: str) -> float | None:
    """RFC 3339 with any number of fraction digits; Go's zero time means "unset" (None)."""
    if not isinstance(value, str):
        raise PayloadError(where, f"expected an RFC 3339 time string, got {_kind(value)}")
    parse = _remembered_instant if len(value) <= _REMEMBERED_TEXT else _instant
    try:
        return parse(value)
    except _NotRfc3339:
        raise PayloadError(where, f"not an RFC 3339 time: {value[:64]!r}") from None
    except (ValueError, OverflowError):  # no such date, or out of Python's range in UTC
        raise PayloadError(where, f"not a valid time: {value[:64]!r}") from None


class _NotRfc3339(ValueError):
    """The text does not have the shape of an RFC 3339 time."""


def _instant(text: str) -> float | None:
    """`text` as Unix seconds, or None for Go's zero time; ValueError if it is no time."""
    match = _TIME.fullmatch(text)  # the whole text: no trailing newline, no spaces
    if not match:
        raise _NotRfc3339(text)
    day, clock, fraction, zone = match.groups()
    if day.startswith("0001-01-01"):
        return None
    zone = "+00:00" if zone in ("Z", "z") else zone
    frac = (fraction or ".0")[:7].ljust(7, "0")
    dt = datetime.fromisoformat(f"{day}T{clock}{frac}{zone}")
    return dt.astimezone(UTC).timestamp()


# Every redelivery of an alert carries the same startsAt and endsAt. `_instant` is a pure
# function, so short texts are memoized (errors are not: they raise every time).
_REMEMBERED_TEXT = 64
_remembered_instant = functools.lru_cache(maxsize=1024)(_instant)


def _required(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] is None:
        raise PayloadError(f"{where}.{key}" if where else key, "required")
    return data[key]


def _status(value: object, where: str) -> str:
    if value not in STATUSES:
        raise PayloadError(where, f"expected 'firing' or 'resolved', got {_short(value)}")
    return str(value)


def _opt_str(data: dict[str, Any], key: str, where: str) -> str:
    if key not in data:
        return ""
    value = data[key]
    field = f"{where}.{key}" if where else key
    if not isinstance(value, str):
        raise PayloadError(field, f"expected a string, got {_kind(value)}")
    if not _is_text(value):
        raise PayloadError(field, _NOT_TEXT)
    return value[:MAX_STRING]


_NOT_TEXT = "not valid Unicode text (a lone surrogate)"


def _is_text(value: str) -> bool:
    """Whether `value` encodes as UTF-8: JSON's `\\udXXX` escapes can produce lone
    surrogates, which no hash, log line or API request can carry."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _labels(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(where, f"expected an object of strings, got {_kind(value)}")
    if len(value) > MAX_LABELS:
        raise PayloadError(where, f"more than {MAX_LABELS} entries")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{_printable(key)}", f"expected a string, got {_kind(item)}")
        if not (_is_text(key) and _is_text(item)):
            raise PayloadError(f"{where}.{_printable(key)}", _NOT_TEXT)
    return value


def _printable(key: str) -> str:
    return key[:64].encode(errors="backslashreplace").decode()


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
