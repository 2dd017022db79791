"""Property-based fuzzing of every endpoint: whatever arrives, the webhook answers with a
documented status and a JSON error body, never a 5xx, never a crash, and its memory
(metric series, caches, counters) stays bounded however many distinct inputs it sees."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, World, alert, make_world, message
from tests.webhook.spec import check_response

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
label_maps = st.dictionaries(
    st.sampled_from(["alertname", "node", "kubernetes_node", "severity"]) | st.text(max_size=8),
    st.sampled_from(["NodeNotReady", "KubeNodeUnreachable", "node-1", "node-2", "Node 9!"])
    | st.text(max_size=20),
    max_size=5,
)
times = st.sampled_from(
    ["2023-11-14T22:03:20Z", "0001-01-01T00:00:00Z", "2023-11-14T22:03:20.123456789+02:00"]
) | st.text(max_size=30)


@st.composite
def alerts(draw: st.DrawFn) -> Any:
    base = alert(
        draw(st.sampled_from(["node-1", "node-2", "node-3", None])),
        status=draw(st.sampled_from(["firing", "resolved"])),
        name=draw(st.sampled_from(["NodeNotReady", "KubeNodeNotReady", "Other"])),
    )
    if draw(st.booleans()):
        base["labels"] = draw(label_maps)
    if draw(st.booleans()):
        base["startsAt"] = draw(times)
    if draw(st.booleans()):
        base["fingerprint"] = draw(st.text(max_size=20))
    for key in draw(st.lists(st.sampled_from(sorted(base)), max_size=2, unique=True)):
        if draw(st.booleans()):
            base.pop(key, None)
        else:
            base[key] = draw(json_values)
    if draw(st.booleans()):
        base[draw(st.text(max_size=10))] = draw(json_values)
    return base


@st.composite
def messages(draw: st.DrawFn) -> Any:
    body = message(*draw(st.lists(alerts(), max_size=4)), status="firing")
    for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=2, unique=True)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(json_values)
    return body


header_text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
    max_size=40,
)
auth_headers = (
    st.sampled_from(
        [
            None,
            f"Bearer {AM_TOKEN}",
            f"Bearer {OPERATOR_TOKEN}",
            "Bearer ",
            "Basic ???",
            "Basic Zm9vOmJhcg==",
        ]
    )
    | header_text.map(lambda t: "Bearer " + t)
    | header_text
)
content_types = (
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
    | header_text
)
node_segments = st.sampled_from(["node-1", "node-2", "NODE", "a" * 300]) | st.text(
    min_size=1, max_size=40
)


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    policy = {
        "stormProtection": {"maxUnhealthy": 5},
        "rateLimit": {"maxRemediations": 1000},
        "cooldown": 0,
    }
    w = make_world(tmp_path_factory.mktemp("fuzz"), policy)
    for node in ("node-1", "node-2", "node-3"):
        w.kube.set_ready(node, "Unknown")
    w.settle()
    yield w
    w.svc.stop()


def send(
    w: World, method: str, path: str, rule: str, body: bytes | None, auth: str | None, ctype: str
) -> Any:
    headers = {"Authorization": auth} if auth is not None else {}
    response = w.client.open(
        path, method=method, data=body, headers=headers, content_type=ctype or None
    )
    assert response.status_code < 500, (path, response.status_code, response.get_data()[:300])
    if rule != "/metrics":
        data = response.get_json(silent=True)
        assert isinstance(data, dict), (path, response.get_data()[:200])
        if response.status_code >= 400:
            assert {"code", "name", "description"} <= set(data)
        if rule != "unmatched":
            check_response(rule, method, response.status_code, data)
    return response


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@SETTINGS
@given(body=messages(), auth=auth_headers)
def test_fuzz_alert_messages(fuzz_world: World, body: Any, auth: str | None) -> None:
    send(
        fuzz_world,
        "POST",
        "/api/v1/alerts",
        "/api/v1/alerts",
        encode(body),
        auth,
        "application/json",
    )


@SETTINGS
@given(
    raw=st.binary(max_size=300) | json_values.map(encode), auth=auth_headers, ctype=content_types
)
def test_fuzz_alert_raw_bodies(fuzz_world: World, raw: bytes, auth: str | None, ctype: str) -> None:
    send(fuzz_world, "POST", "/api/v1/alerts", "/api/v1/alerts", raw, auth, ctype)


@SETTINGS
@given(
    body=json_values
    | st.fixed_dictionaries(
        {"node": st.sampled_from(["node-1", "node-2", "node-9"]) | json_values},
        optional={"reason": json_values, "dryRun": json_values},
    ),
    auth=st.sampled_from([f"Bearer {OPERATOR_TOKEN}", f"Bearer {AM_TOKEN}", None]),
    ctype=content_types,
)
def test_fuzz_request_remediation(
    fuzz_world: World, body: Any, auth: str | None, ctype: str
) -> None:
    send(
        fuzz_world,
        "POST",
        "/api/v1/remediations",
        "/api/v1/remediations",
        encode(body),
        auth,
        ctype,
    )


@SETTINGS
@given(
    node=node_segments,
    action=st.sampled_from(["approve", "cancel", None]),
    body=st.none() | json_values.map(encode) | st.binary(max_size=50),
    auth=st.sampled_from([f"Bearer {OPERATOR_TOKEN}", f"Bearer {AM_TOKEN}", None]),
)
def test_fuzz_remediation_paths(
    fuzz_world: World, node: str, action: str | None, body: bytes | None, auth: str | None
) -> None:
    quoted = urllib.parse.quote(node, safe="")
    if action is None:
        path, rule, method = f"/api/v1/remediations/{quoted}", "/api/v1/remediations/<node>", "GET"
    else:
        path, rule, method = (
            f"/api/v1/remediations/{quoted}/{action}",
            f"/api/v1/remediations/<node>/{action}",
            "POST",
        )
    if "/" in node or node in (".", ".."):
        rule = "unmatched"
    response = send(fuzz_world, method, path, rule, body, auth, "application/json")
    assert response.status_code in (200, 400, 401, 403, 404, 405, 409, 413, 415)


@SETTINGS
@given(
    path=st.sampled_from(
        ["/healthz", "/readyz", "/metrics", "/openapi.json", "/api/v1/remediations"]
    ),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
)
def test_fuzz_other_endpoints_and_methods(
    fuzz_world: World, path: str, query: dict[str, str], method: str
) -> None:
    url = path + ("?" + urllib.parse.urlencode(query) if query else "")
    auth = f"Bearer {OPERATOR_TOKEN}"
    response = fuzz_world.client.open(url, method=method, headers={"Authorization": auth})
    assert response.status_code < 500
    if path != "/metrics" or response.status_code != 200:
        assert isinstance(response.get_json(silent=True), dict)


def series_count(w: World) -> int:
    return sum(len(m.samples) for m in w.metrics.registry.collect())


def test_memory_stays_bounded_under_distinct_inputs(fuzz_world: World) -> None:
    w = fuzz_world
    am = {"Authorization": f"Bearer {AM_TOKEN}"}

    def batch(offset: int) -> None:
        for i in range(offset, offset + 300):
            body = message(
                alert("node-1", fingerprint=f"fp-{i}"),
                alert(f"node-{i}", name=f"Alert{i}"),
                alert(None, label="x", fingerprint=f"g{i}"),
                alert("node-2", status="resolved", fingerprint=f"r{i}"),
            )
            w.client.post("/api/v1/alerts", json=body, headers=am)
            w.client.get(
                f"/api/v1/remediations/node-{i}",
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            )
            w.client.get(f"/nothing/{i}")

    batch(0)
    w.settle()
    series = series_count(w)
    batch(10_000)
    w.settle()
    assert series_count(w) == series  # no label grows with the input
    stored = w.remediation("node-1")
    assert len(stored["status"]["alerts"]) <= 20  # type: ignore[index]
    assert len(w.svc.writer._unwritten) <= 10_000
    assert len(w.svc.recorder._recent) <= 10_001
