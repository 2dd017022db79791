"""Load and validate `rules/remediation.yaml` into a `Policy`.

A bad file stops start-up: every error is a `PolicyError` whose `field` is the path of
the offending key (`groups[1].selector.matchExpressions[0].operator`). Unknown keys are
errors too, so a typo never silently falls back to a default. See docs/webhook.md for
the reference of every key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.fence_inventory import InventoryError, parse_inventory
from core.settings import SettingsError, parse_duration
from webhook.policy.model import (
    DEFAULT_GROUP_NAME,
    AlertRules,
    Escalation,
    Group,
    LabelSelector,
    MaxUnhealthy,
    NodeRules,
    Policy,
    RateLimit,
    Requirement,
    SelectorOperator,
    Strategy,
)

API_VERSION = "nodewarden.io/v1alpha1"
KIND = "RemediationPolicy"
E = TypeVar("E")

# Kubernetes label keys: optional DNS-subdomain prefix "/" name (63 chars max).
# Every pattern is used with fullmatch (`$` alone lets a trailing newline through).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$", re.ASCII)


class PolicyError(ValueError):
    """The policy file is invalid; `field` is the path of the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"policy: {field}: {message}")
        self.field = field
        self.message = message


def load_policy(path: str | Path) -> Policy:
    """Read and validate the policy file at `path`."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PolicyError("(file)", f"cannot read {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError("(file)", f"{p} is not valid YAML: {exc}") from None
    return parse_policy({} if data is None else data)


def parse_policy(data: object) -> Policy:
    """Validate a parsed policy mapping."""
    doc = _mapping(data, "(root)")
    _only(
        doc,
        "",
        {
            "apiVersion",
            "kind",
            "alerts",
            "nodes",
            "stormProtection",
            "rateLimit",
            "cooldown",
            "paused",
            "dryRun",
            "defaults",
            "groups",
            "fenceAgents",  # the fence inventory: validated here, used by the controller
        },
    )
    try:
        parse_inventory(doc.get("fenceAgents"))
    except InventoryError as exc:
        raise PolicyError(f"fenceAgents.{exc.field}".rstrip("."), exc.message) from None
    if "apiVersion" in doc and doc["apiVersion"] != API_VERSION:
        raise PolicyError("apiVersion", f"must be {API_VERSION!r}, got {doc['apiVersion']!r}")
    if "kind" in doc and doc["kind"] != KIND:
        raise PolicyError("kind", f"must be {KIND!r}, got {doc['kind']!r}")
    base = Policy()
    defaults = _group(doc.get("defaults", {}), "defaults", base.defaults, named=False)
    groups = tuple(
        _group(g, f"groups[{i}]", defaults, named=True)
        for i, g in enumerate(_list(doc.get("groups", []), "groups"))
    )
    seen: set[str] = set()
    for i, g in enumerate(groups):
        if g.name in seen or g.name == DEFAULT_GROUP_NAME:
            raise PolicyError(f"groups[{i}].name", f"duplicate or reserved group name {g.name!r}")
        seen.add(g.name)
    return Policy(
        alerts=_alerts(doc.get("alerts", {}), base.alerts),
        nodes=_nodes(doc.get("nodes", {})),
        max_unhealthy=_storm(doc.get("stormProtection", {}), base),
        rate_limit=_rate_limit(doc.get("rateLimit", {}), base.rate_limit),
        cooldown_s=_duration(doc.get("cooldown", base.cooldown_s), "cooldown"),
        paused=_bool(doc.get("paused", False), "paused"),
        dry_run=_bool(doc.get("dryRun", False), "dryRun"),
        defaults=defaults,
        groups=groups,
    )


# Sections --------------------------------------------------------------------------


def _alerts(value: object, base: AlertRules) -> AlertRules:
    m = _mapping(value, "alerts")
    _only(m, "alerts", {"names", "nodeLabels", "matchLabels"})
    names = tuple(_strings(m.get("names", list(base.names)), "alerts.names", nonempty=True))
    node_labels = tuple(
        _strings(m.get("nodeLabels", list(base.node_labels)), "alerts.nodeLabels", nonempty=True)
    )
    match = _string_map(m.get("matchLabels", {}), "alerts.matchLabels", label_rules=False)
    return AlertRules(names=names, node_labels=node_labels, match_labels=match)


def _nodes(value: object) -> NodeRules:
    m = _mapping(value, "nodes")
    _only(m, "nodes", {"selector", "includeControlPlane"})
    return NodeRules(
        selector=_selector(m.get("selector", {}), "nodes.selector"),
        include_control_plane=_bool(
            m.get("includeControlPlane", False), "nodes.includeControlPlane"
        ),
    )


def _storm(value: object, base: Policy) -> MaxUnhealthy:
    m = _mapping(value, "stormProtection")
    _only(m, "stormProtection", {"maxUnhealthy"})
    raw = m.get("maxUnhealthy", str(base.max_unhealthy))
    where = "stormProtection.maxUnhealthy"
    if isinstance(raw, bool):
        raise PolicyError(where, f"expected a count or a percentage like '40%', got {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise PolicyError(where, f"must not be negative, got {raw}")
        return MaxUnhealthy(count=raw)
    if isinstance(raw, str):
        match = _PERCENT.fullmatch(raw)
        if match:
            pct = float(match.group(1))
            if pct > 100:
                raise PolicyError(where, f"a percentage must be at most 100%, got {raw!r}")
            return MaxUnhealthy(percent=pct)
        if raw.strip().isdigit():
            return MaxUnhealthy(count=int(raw.strip()))
    raise PolicyError(where, f"expected a count or a percentage like '40%', got {raw!r}")


def _rate_limit(value: object, base: RateLimit) -> RateLimit:
    m = _mapping(value, "rateLimit")
    _only(m, "rateLimit", {"maxRemediations", "window"})
    count = m.get("maxRemediations", base.max_remediations)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise PolicyError("rateLimit.maxRemediations", f"expected an integer >= 1, got {count!r}")
    window = _duration(m.get("window", base.window_s), "rateLimit.window")
    if window <= 0:
        raise PolicyError("rateLimit.window", "must be longer than zero")
    return RateLimit(max_remediations=count, window_s=window)


def _group(value: object, where: str, base: Group, *, named: bool) -> Group:
    m = _mapping(value, where)
    keys = {"strategy", "escalation", "approvalRequired", "fourEyes"}
    _only(m, where, keys | ({"name", "selector"} if named else set()))
    name = DEFAULT_GROUP_NAME
    selector = LabelSelector()
    if named:
        if "name" not in m:
            raise PolicyError(f"{where}.name", "required")
        name = _string(m["name"], f"{where}.name")
        if not _GROUP_NAME.fullmatch(name):
            raise PolicyError(f"{where}.name", f"must be a DNS label (a-z, 0-9, -), got {name!r}")
        if "selector" not in m:
            raise PolicyError(f"{where}.selector", "required (use {} to match every node)")
        selector = _selector(m["selector"], f"{where}.selector")
    return Group(
        name=name,
        selector=selector,
        strategy=_enum(Strategy, m.get("strategy", base.strategy), f"{where}.strategy"),
        escalation=_enum(Escalation, m.get("escalation", base.escalation), f"{where}.escalation"),
        approval_required=_bool(
            m.get("approvalRequired", base.approval_required), f"{where}.approvalRequired"
        ),
        four_eyes=_bool(m.get("fourEyes", base.four_eyes), f"{where}.fourEyes"),
    )


def _selector(value: object, where: str) -> LabelSelector:
    m = _mapping(value, where)
    _only(m, where, {"matchLabels", "matchExpressions"})
    labels = _string_map(m.get("matchLabels", {}), f"{where}.matchLabels", label_rules=True)
    reqs = []
    for i, raw in enumerate(_list(m.get("matchExpressions", []), f"{where}.matchExpressions")):
        at = f"{where}.matchExpressions[{i}]"
        e = _mapping(raw, at)
        _only(e, at, {"key", "operator", "values"})
        if "key" not in e:
            raise PolicyError(f"{at}.key", "required")
        key = _label_key(e["key"], f"{at}.key")
        if "operator" not in e:
            raise PolicyError(f"{at}.operator", "required")
        op = _enum(SelectorOperator, e["operator"], f"{at}.operator")
        values = tuple(_strings(e.get("values", []), f"{at}.values", nonempty=False))
        for j, v in enumerate(values):
            _label_value(v, f"{at}.values[{j}]")
        if op in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not values:
            raise PolicyError(f"{at}.values", f"operator {op} needs at least one value")
        if op in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and values:
            raise PolicyError(f"{at}.values", f"operator {op} takes no values")
        reqs.append(Requirement(key=key, operator=op, values=values))
    return LabelSelector(match_labels=labels, match_expressions=tuple(reqs))


# Scalars ---------------------------------------------------------------------------


def _only(m: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in m:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise PolicyError(path, f"unknown key (known: {', '.join(sorted(allowed))})")


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError(where, f"expected a mapping, got {type(value).__name__}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(where, f"expected a list, got {type(value).__name__}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(where, f"expected a non-empty string, got {value!r}")
    return value


def _strings(value: object, where: str, *, nonempty: bool) -> list[str]:
    items = _list(value, where)
    if nonempty and not items:
        raise PolicyError(where, "must not be empty")
    return [_string(v, f"{where}[{i}]") for i, v in enumerate(items)]


def _string_map(value: object, where: str, *, label_rules: bool) -> tuple[tuple[str, str], ...]:
    m = _mapping(value, where)
    out = []
    for key, v in m.items():
        at = f"{where}.{key}"
        if not isinstance(key, str):
            raise PolicyError(at, "keys must be strings")
        if not isinstance(v, str):
            raise PolicyError(at, f"expected a string value, got {v!r}")
        if label_rules:
            _label_key(key, at)
            _label_value(v, at)
        out.append((key, v))
    return tuple(sorted(out))


def _label_key(value: object, where: str) -> str:
    key = _string(value, where)
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))) or not (
        _LABEL_NAME.fullmatch(name)
    ):
        raise PolicyError(where, f"not a valid label key: {key!r}")
    return key


def _label_value(value: str, where: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise PolicyError(where, f"not a valid label value: {value!r}")


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(where, f"expected true or false, got {value!r}")
    return value


def _duration(value: object, where: str) -> float:
    try:
        return parse_duration(value, where)
    except SettingsError as exc:
        raise PolicyError(where, exc.message) from None


def _enum(cls: Callable[[str], E], value: object, where: str) -> E:
    try:
        return cls(str(value)) if isinstance(value, str) else cls(value)  # type: ignore[arg-type]
    except ValueError:
        known = ", ".join(str(v) for v in cls)  # type: ignore[attr-defined]
        raise PolicyError(where, f"expected one of {known}, got {value!r}") from None
