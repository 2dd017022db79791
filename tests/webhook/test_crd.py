"""The CRD declares every field the webhook writes (a real API server prunes the rest),
and its schema accepts what the webhook writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from core import names
from core.remediation import Phase
from webhook.policy import Escalation, Outcome, Plan, Reason, Source, Strategy, Verdict
from webhook.records import (
    AlertEntry,
    Trigger,
    approval_status,
    cancelled_status,
    initial_status,
    remediation_body,
)

CRD = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "helm/nodewarden/crds/noderemediations.yaml").read_text()
)
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
NOW = 1_700_000_000.0


def undeclared(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths a structural-schema pruner would drop."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        if not props and path.endswith("metadata"):
            return []
        out = []
        for key, value in obj.items():
            if key not in props:
                out.append(f"{path}.{key}")
            else:
                out.extend(undeclared(value, props[key], f"{path}.{key}"))
        return out
    if isinstance(obj, list) and "items" in schema:
        return [
            p for i, v in enumerate(obj) for p in undeclared(v, schema["items"], f"{path}[{i}]")
        ]
    return []


def k8s_to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [k8s_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: k8s_to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}


def written_object(approval: bool = False) -> dict[str, Any]:
    plan = Plan("db", Strategy.RESOURCE_DELETION, Escalation.FENCE_AGENT, approval, True)
    verdict = Verdict(Outcome.ACCEPTED, Reason.ACCEPTED, "ok", plan)
    trigger = Trigger(Source.ALERTMANAGER, NOW, "NodeNotReady", "fp", NOW - 60)
    obj = remediation_body("node-1", trigger, plan)
    alert = AlertEntry("NodeNotReady", "fp", "firing", NOW - 60, NOW)
    status = initial_status(obj["spec"], verdict, NOW, alert)
    cancel = Verdict(Outcome.CANCELLED, Reason.OPERATOR_CANCELLED, "cancelled")
    status.update(cancelled_status(status, cancel, "alice", "why", NOW + 5))
    status.update(approval_status("bob", NOW + 1))
    obj["status"] = status
    return obj


def test_every_written_field_is_declared() -> None:
    for approval in (False, True):
        assert undeclared(written_object(approval), SCHEMA) == []
    operator = remediation_body(
        "n",
        Trigger(Source.OPERATOR, NOW, requested_by="alice", reason="x"),
        Plan("default", Strategy.OUT_OF_SERVICE_TAINT, Escalation.NONE, False, False),
    )
    assert undeclared(operator, SCHEMA) == []
    assert undeclared(
        {"spec": {"bogus": 1}, "status": {"fence": {"evidence": {"inputs": {"any": 1}}}}}, SCHEMA
    ) == [".spec.bogus"]


def test_the_schema_accepts_what_is_written() -> None:
    validator = Draft7Validator(k8s_to_json_schema(SCHEMA))
    errors = list(validator.iter_errors(written_object()))
    assert errors == []
    bad = written_object()
    bad["spec"]["strategy"] = "Reboot"
    assert list(validator.iter_errors(bad))


def test_crd_identity_and_columns() -> None:
    assert CRD["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    assert CRD["spec"]["scope"] == "Cluster"
    assert CRD["spec"]["names"]["kind"] == names.KIND
    assert CRD["spec"]["names"]["shortNames"] == list(names.SHORT_NAMES)
    assert VERSION["name"] == names.VERSION
    assert VERSION["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Strategy"] == ".spec.strategy"
    assert columns["Evidence"] == ".status.fence.evidence.rule"
    assert columns["Age"] == ".metadata.creationTimestamp"
    phases = SCHEMA["properties"]["status"]["properties"]["phase"]["enum"]
    assert phases == [str(p) for p in Phase]
