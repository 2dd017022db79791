"""Hostile input to the peer endpoint, over real sockets: every one is answered with a 4xx
JSON body (never a dropped connection), counted by reason, and never acted on.

Each test sends what an attacker on the network would: no secret, or a request signed
for another agent, or (with the secret, as a buggy or compromised peer would) a body
built to break the parser."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from agent_testkit import SECRET, AgentWorld, scaled_settings

from core.fence_order import canonical_bytes, new_order
from core.peer_auth import ANSWER_HEADER, SIGNATURE_HEADER, sign_request
from core.peer_client import order_request_body


@pytest.fixture
def world(world_factory: Callable[..., AgentWorld]) -> Iterator[AgentWorld]:
    w = world_factory()
    w.runtime.server.start()
    yield w
    w.runtime.server.shutdown()


def exchange(world: AgentWorld, request: bytes, timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes after a refusal)."""
    with socket.create_connection(("127.0.0.1", world.runtime.server.port), timeout=timeout_s) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection dropped without an answer (got {data!r})"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            assert chunk, "answer cut short"
            body += chunk
        return int(lines[0].split(" ")[1]), headers, body


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: agent", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def signed(world: AgentWorld, method: str, path: str, body: bytes = b"", receiver: str = "worker-1") -> bytes:
    return request(method, path, sign_request(SECRET, method, path, body, world.clock.now(), receiver), body)


def refused(world: AgentWorld, reason: str) -> float:
    return world.metric("nodewarden_agent_peer_requests_refused_total", reason=reason)


def test_a_non_ascii_signature_is_a_401_answer(world: AgentWorld) -> None:
    headers = sign_request(SECRET, "GET", "/peer/v1/health", b"", world.clock.now(), "worker-1")
    headers[SIGNATURE_HEADER] = "é" * 64
    status, _, body = exchange(world, request("GET", "/peer/v1/health", headers))
    assert (status, json.loads(body)["description"]) == (401, "BadSignature")
    assert refused(world, "BadSignature") == 1


def test_an_order_with_a_non_ascii_signature_part_is_rejected_not_dropped(world: AgentWorld) -> None:
    world.api.cut_off()
    world.step()
    order = new_order(node="worker-7", remediation_uid="u", action="fence", issued_at=world.clock.now(),  # type: ignore[arg-type]
                      ttl_s=60, boot_id="b")
    payload = base64.urlsafe_b64encode(canonical_bytes(order.payload())).rstrip(b"=").decode()
    body = order_request_body(f"nwf1.{payload}.sig\u00e9")
    status, _, answer = exchange(world, signed(world, "POST", "/peer/v1/orders", body))
    assert (status, json.loads(answer)["reason"]) == (422, "Malformed")
    assert world.runtime.fencer.record is None


@pytest.mark.parametrize("body", [b"[" * 16000, b'{"order": ' + b"[" * 15000 + b"}"])
def test_deeply_nested_json_is_a_400_answer(world: AgentWorld, body: bytes) -> None:
    status, headers, answer = exchange(world, signed(world, "POST", "/peer/v1/orders", body))
    assert status == 400 and json.loads(answer)["name"] == "BadRequest"
    assert ANSWER_HEADER.lower() in headers  # an answer to an authenticated request is signed
    assert world.runtime.fencer.record is None


def test_a_deeply_nested_order_payload_is_malformed(world: AgentWorld) -> None:
    payload = base64.urlsafe_b64encode(b"[" * 9000).rstrip(b"=").decode()
    body = order_request_body(f"nwf1.{payload}.c2ln")
    status, _, answer = exchange(world, signed(world, "POST", "/peer/v1/orders", body))
    assert (status, json.loads(answer)["reason"]) == (422, "Malformed")


def test_an_oversized_body_is_refused_from_the_headers_without_reading_it(world: AgentWorld) -> None:
    head = request("POST", "/peer/v1/orders", {}, b"").replace(b"Content-Length: 0", b"Content-Length: 10000000")
    started = time.monotonic()
    status, _, body = exchange(world, head)
    assert (status, json.loads(body)["name"]) == (413, "TooLarge")
    assert time.monotonic() - started < 1.0


def test_oversized_headers_get_a_json_431(world: AgentWorld) -> None:
    status, headers, body = exchange(world, request("GET", "/peer/v1/health", {"X-Filler": "a" * 20000}))
    assert status == 431 and headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == 431


def test_an_unsigned_post_is_refused_before_its_body_is_read(world: AgentWorld) -> None:
    """The old server read (and waited for) the whole body before looking at the signature."""
    head = request("POST", "/peer/v1/orders", {}).replace(b"Content-Length: 0", b"Content-Length: 16000")
    started = time.monotonic()
    status, _, body = exchange(world, head)  # no body is ever sent
    assert (status, json.loads(body)["description"]) == (401, "MissingCredentials")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("name", ["worker-7%0A", "worker-7%0D%0A", "Worker-7", "worker-7%00", "-worker"])
def test_node_names_must_match_in_full(world: AgentWorld, name: str) -> None:
    world.step()
    status, _, _ = exchange(world, signed(world, "GET", f"/peer/v1/nodes/{name}"))
    assert status == 400
    view = json.loads(exchange(world, signed(world, "GET", "/peer/v1/nodes/worker-7?observer=1"))[2])
    assert view["lastHealthyAnswerAt"] is None  # the refused name recorded nothing


def test_malformed_requests_are_answered(world: AgentWorld) -> None:
    for raw in (b"GARBAGE\r\n\r\n", b"GET /peer/v1/health HTTP/1.1\r\nNoColon\r\n\r\n",
                b"GET /peer/v1/health HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                b"GET /peer/v1/health HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n",
                b"GET /peer/v1/health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"):
        status, _, body = exchange(world, raw)
        assert status == 400 and json.loads(body)["code"] == 400, raw


def test_a_request_signed_for_another_agent_does_not_replay_here(world: AgentWorld) -> None:
    status, _, body = exchange(world, signed(world, "GET", "/peer/v1/health", receiver="worker-2"))
    assert (status, json.loads(body)["description"]) == (401, "WrongReceiver")


def test_a_body_other_than_the_one_signed_is_refused(world: AgentWorld) -> None:
    headers = sign_request(SECRET, "POST", "/peer/v1/orders", b'{"order": "a"}', world.clock.now(), "worker-1")
    status, _, body = exchange(world, request("POST", "/peer/v1/orders", headers, b'{"order": "b"}'))
    assert (status, json.loads(body)["description"]) == (401, "BodyMismatch")


def test_unauthenticated_warnings_are_rate_limited_with_a_count(
    world: AgentWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="node_agent.server")
    for _ in range(200):
        assert exchange(world, request("GET", "/peer/v1/health", {}))[0] == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "node_agent.server"]
    assert 1 <= len(lines) <= 2, lines
    assert refused(world, "MissingCredentials") == 200
    world.clock.advance(11.0)  # the fold interval runs on the agent's (fake) monotonic clock
    world.runtime.server.refusals.flush()
    last = [r.getMessage() for r in caplog.records if r.name == "node_agent.server"][-1]
    assert "199 more refused" in last or "198 more refused" in last, last


def test_the_replay_defence_holds_across_a_restart(
    world_factory: Callable[..., AgentWorld], tmp_path: Path, make_token: Callable[..., str]
) -> None:
    settings = replace(scaled_settings(), peer_cache_file=str(tmp_path / "peers.json"))
    first = world_factory(settings)
    first.runtime.server.start()
    body = order_request_body(make_token(node="worker-7"))
    captured = signed(first, "POST", "/peer/v1/orders", body)
    try:
        assert exchange(first, captured)[0] == 502  # kept for worker-7, no endpoint to relay to
    finally:
        first.runtime.server.shutdown()
    again = world_factory(settings)  # the same node's agent, restarted: a new process state
    again.runtime.server.start()
    try:
        status, _, answer = exchange(again, captured)
        assert (status, json.loads(answer)["description"]) == (401, "Replay")
    finally:
        again.runtime.server.shutdown()


def test_without_a_state_directory_a_post_signed_before_start_is_refused(
    world_factory: Callable[..., AgentWorld], make_token: Callable[..., str]
) -> None:
    w = world_factory()
    body = order_request_body(make_token(node="worker-7"))
    old = request("POST", "/peer/v1/orders",
                  sign_request(SECRET, "POST", "/peer/v1/orders", body, w.clock.now() - 1.0, "worker-1"), body)
    w.runtime.server.start()
    try:
        status, _, answer = exchange(w, old)
        assert (status, json.loads(answer)["description"]) == (401, "Replay")
    finally:
        w.runtime.server.shutdown()
