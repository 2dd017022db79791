"""`/openapi.json` and the answers agree: a bounded schemathesis run against the real app
(over the in-memory API), part of `make test`. Every operation gets generated requests,
valid and invalid, with the right credential for its route; each answer must be one the
document lists for that operation, in the documented content type and schema, never a
5xx (the only 5xx the webhook may give, 503, needs an unreachable API server)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, WorldFactory

EXAMPLES = 30  # per operation: bounded, a few seconds each


OPERATIONS = [
    ("/api/v1/alerts", "POST"),
    ("/api/v1/remediations", "GET"),
    ("/api/v1/remediations", "POST"),
    ("/api/v1/remediations/{node}", "GET"),
    ("/api/v1/remediations/{node}/approve", "POST"),
    ("/api/v1/remediations/{node}/cancel", "POST"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/openapi.json", "GET"),
]


WITHOUT_INPUT = {"/healthz", "/readyz", "/openapi.json"}


def test_every_operation_is_checked() -> None:
    from tests.webhook.spec import document

    documented = {(p, m.upper()) for p, ops in document()["paths"].items() for m in ops}
    assert documented - {("/metrics", "GET")} == set(OPERATIONS)  # /metrics is text


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_answers_are_the_documented_ones(
    world: WorldFactory, path: str, method: str, mode: GenerationMode
) -> None:
    """Positive: schema-valid requests get a documented answer (never a 400 for a valid
    one). Negative: schema-invalid requests are refused with a 4xx."""
    if mode is GenerationMode.NEGATIVE and path in WITHOUT_INPUT:
        pytest.skip("no parameter or body to get wrong")
    w = world({"rateLimit": {"maxRemediations": 100}})
    w.kube.set_ready("node-1", "Unknown")
    w.settle()
    operation = schemathesis.openapi.from_wsgi("/openapi.json", w.app)[path][method]
    token = AM_TOKEN if path == "/api/v1/alerts" else OPERATOR_TOKEN

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"})

    check()
