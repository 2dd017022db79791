"""The fields of the Prometheus Operator's objects that the chart uses, as JSON schemas.

kubernetes-validate knows only Kubernetes' own kinds. These schemas follow the Prometheus
Operator's CRDs (monitoring.coreos.com, v0.70 and later) for every field the chart
writes, and refuse any other field, so a misspelt or misplaced field fails a test instead
of being silently pruned by the API server. Types and enums are the CRDs'.
"""

from __future__ import annotations

from typing import Any


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    return out


STR = {"type": "string"}
DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
SELECTOR = _obj({"matchLabels": LABELS, "matchExpressions": {"type": "array"}})
METADATA = _obj({"name": STR, "namespace": STR, "labels": LABELS, "annotations": LABELS}, ["name", "namespace"])
SECRET_KEY = _obj({"name": STR, "key": STR, "optional": {"type": "boolean"}}, ["key"])
RELABEL = _obj({
    "action": {"type": "string", "enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "labelmap", "LabelMap",
                                          "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "hashmod", "HashMod"]},
    "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
    "targetLabel": STR, "replacement": STR, "regex": STR, "separator": STR, "modulus": {"type": "integer"},
})
SAFE_TLS = _obj({
    "ca": _obj({"secret": SECRET_KEY, "configMap": SECRET_KEY}),
    "serverName": STR, "insecureSkipVerify": {"type": "boolean"},
})
ENDPOINT = {
    "port": STR, "path": STR, "interval": DURATION, "scheme": {"type": "string", "enum": ["http", "https"]},
    "tlsConfig": SAFE_TLS, "relabelings": {"type": "array", "items": RELABEL},
}


def _kind(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _obj({"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
                ["apiVersion", "kind", "metadata", "spec"])


SERVICE_MONITOR = _kind("monitoring.coreos.com/v1", "ServiceMonitor", _obj({
    "selector": SELECTOR,
    "namespaceSelector": _obj({"matchNames": {"type": "array", "items": STR}, "any": {"type": "boolean"}}),
    "endpoints": {"type": "array", "minItems": 1, "items": _obj(ENDPOINT)},
}, ["selector", "endpoints"]))

POD_MONITOR = _kind("monitoring.coreos.com/v1", "PodMonitor", _obj({
    "selector": SELECTOR,
    "namespaceSelector": _obj({"matchNames": {"type": "array", "items": STR}, "any": {"type": "boolean"}}),
    "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _obj(ENDPOINT)},
}, ["selector", "podMetricsEndpoints"]))

RULE = _obj({
    "alert": STR, "record": STR, "expr": {"type": ["string", "integer"]}, "for": DURATION,
    "keep_firing_for": DURATION, "labels": LABELS, "annotations": LABELS,
}, ["expr"])
PROMETHEUS_RULE = _kind("monitoring.coreos.com/v1", "PrometheusRule", _obj({
    "groups": {"type": "array", "items": _obj({
        "name": {"type": "string", "minLength": 1}, "interval": DURATION,
        "rules": {"type": "array", "items": RULE},
    }, ["name"])},
}))

MATCHER = _obj({"name": {"type": "string", "minLength": 1}, "value": STR,
                "matchType": {"type": "string", "enum": ["!=", "=", "=~", "!~"]}}, ["name"])
ALERTMANAGER_CONFIG = _kind("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig", _obj({
    "route": _obj({
        "receiver": STR, "matchers": {"type": "array", "items": MATCHER},
        "groupBy": {"type": "array", "items": STR}, "groupWait": STR, "groupInterval": STR,
        "repeatInterval": STR, "continue": {"type": "boolean"},
    }),
    "receivers": {"type": "array", "items": _obj({
        "name": {"type": "string", "minLength": 1},
        "webhookConfigs": {"type": "array", "items": _obj({
            "url": {"type": "string", "pattern": "^https?://"}, "sendResolved": {"type": "boolean"},
            "maxAlerts": {"type": "integer", "minimum": 0},
            "httpConfig": _obj({
                "authorization": _obj({"type": STR, "credentials": SECRET_KEY}),
                "tlsConfig": SAFE_TLS,
            }),
        })},
    }, ["name"])},
}))

OPERATOR_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): ALERTMANAGER_CONFIG,
}
