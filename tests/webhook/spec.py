"""Checks responses against the checked-in OpenAPI document (webhook/openapi.json)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft7Validator

from webhook.api.ops import OPENAPI_PATH


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return doc


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema draft 7 (refs, nullable)."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/definitions/")
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _definitions() -> dict[str, Any]:
    return {k: _to_json_schema(v) for k, v in document()["components"]["schemas"].items()}


def flask_path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", template)


def operation(path: str, method: str) -> dict[str, Any]:
    """The operation for a Flask rule (`/api/v1/remediations/<node>`) and method."""
    for template, ops in document()["paths"].items():
        if flask_path(template) == path and method.lower() in ops:
            op: dict[str, Any] = ops[method.lower()]
            return op
    raise AssertionError(f"{method} {path} is not in openapi.json")


def check_response(rule: str, method: str, status: int, body: Any) -> None:
    """Fail unless `status` is declared for the operation and `body` fits its schema."""
    op = operation(rule, method)
    declared = op["responses"].get(str(status))
    assert declared is not None, f"{method} {rule} answered undeclared status {status}"
    content = declared.get("content", {})
    if "application/json" not in content:
        return
    schema = _to_json_schema(content["application/json"]["schema"])
    schema = {**schema, "definitions": _definitions()}
    errors = sorted(Draft7Validator(schema).iter_errors(body), key=str)
    assert not errors, f"{method} {rule} {status}: {errors[0].message} at {list(errors[0].path)}"
