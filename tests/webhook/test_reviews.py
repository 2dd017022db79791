"""The review client (`webhook.reviews`): answers read strictly, positive answers cached
briefly and boundedly, reviews in flight bounded, and every failure a `ReviewUnavailable`,
never an identity or an "allowed".

The failures are played by a real HTTP server that answers the official client's
requests as a broken or overloaded API server would (the client speaks urllib3, which
`responses` does not intercept); the rest uses a scripted `ReviewApi`.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from core.clock import FakeClock
from core.kube import JSON, Kube, Unavailable
from webhook.reviews import (
    Attributes,
    RealReviewApi,
    ReviewedUser,
    Reviewer,
    ReviewKind,
    ReviewsBusy,
    ReviewUnavailable,
    access_review_body,
    read_access_review,
    read_token_review,
    token_review_body,
)

ALICE = ReviewedUser("alice", "u-1", ("ops", "system:authenticated"), (("scopes", ("a", "b")),))


class Scripted:
    """A ReviewApi answering from a script; counts what it was asked."""

    def __init__(self, token: Any = None, access: Any = None) -> None:
        self.token = token if token is not None else {"status": {"authenticated": True, "user": {"username": "alice"}}}
        self.access = access if access is not None else {"status": {"allowed": True}}
        self.asked: list[JSON] = []

    def _answer(self, answer: Any, body: JSON) -> JSON:
        self.asked.append(body)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    def create_token_review(self, body: JSON) -> JSON:
        return self._answer(self.token, body)

    def create_subject_access_review(self, body: JSON) -> JSON:
        return self._answer(self.access, body)


# -- reading answers ---------------------------------------------------------------------


def test_token_review_answers() -> None:
    ok = {"status": {"authenticated": True, "audiences": ["nodewarden"],
                     "user": {"username": "alice", "uid": "u-1", "groups": ["ops", "system:authenticated"],
                              "extra": {"scopes": ["a", "b"]}}}}
    assert read_token_review(ok, ()) == ALICE
    assert read_token_review(ok, ("nodewarden", "other")) == ALICE
    assert read_token_review(ok, ("other",)) is None  # valid, but not for us
    assert read_token_review({"status": {"user": {}}}, ()) is None
    assert read_token_review({"status": {"authenticated": "true", "user": {"username": "x"}}}, ()) is None
    for bad in ({}, {"status": []}, {"status": {"authenticated": True}},
                {"status": {"authenticated": True, "user": {"username": ""}}},
                {"status": {"authenticated": True, "user": {"username": "x", "groups": "ops"}}}):
        with pytest.raises(ValueError):
            read_token_review(bad, ())
    assert token_review_body("t", ()) == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                          "spec": {"token": "t"}}
    assert token_review_body("t", ("nw",))["spec"]["audiences"] == ["nw"]


def test_access_review_answers() -> None:
    body = access_review_body(ALICE, Attributes("approve", name="node-1"))
    assert body["spec"] == {
        "user": "alice", "uid": "u-1", "groups": ["ops", "system:authenticated"], "extra": {"scopes": ["a", "b"]},
        "resourceAttributes": {"verb": "approve", "group": "nodewarden.io", "resource": "noderemediations",
                               "name": "node-1"}}
    assert read_access_review({"status": {"allowed": True}}).allowed
    assert not read_access_review({"status": {"allowed": False, "reason": "no"}}).allowed
    assert not read_access_review({"status": {"allowed": True, "denied": True}}).allowed
    assert not read_access_review({"status": {}}).allowed
    assert not read_access_review({"status": {"allowed": "true"}}).allowed
    with pytest.raises(ValueError):
        read_access_review({"kind": "SubjectAccessReview"})


# -- caching and bounds ----------------------------------------------------------------


def test_positive_answers_are_reused_for_the_ttl_only_and_denials_never() -> None:
    clock = FakeClock()
    api = Scripted()
    r = Reviewer(api, clock, cache_s=10)
    for _ in range(50):
        assert r.authenticate("tok") == ReviewedUser("alice")
        assert r.authorize(ALICE, Attributes("list")).allowed
    assert len(api.asked) == 2
    assert "tok" not in repr(r.tokens._items)  # keyed by digest, never the token
    clock.advance(10.01)
    r.authenticate("tok")
    r.authorize(ALICE, Attributes("list"))
    assert len(api.asked) == 4
    # Another verb or node is another question.
    r.authorize(ALICE, Attributes("list", name="node-1"))
    assert len(api.asked) == 5

    api.access = {"status": {"allowed": False}}
    for _ in range(3):
        assert not r.authorize(ALICE, Attributes("approve")).allowed
    assert len(api.asked) == 8  # a denial is asked again: a role just granted works at once
    api.access = {"status": {"allowed": True}}
    assert r.authorize(ALICE, Attributes("approve")).allowed


def test_a_rejected_token_is_remembered_too_and_no_cache_means_always_ask() -> None:
    api = Scripted(token={"status": {"user": {}}})
    r = Reviewer(api, FakeClock(), cache_s=10)
    assert r.authenticate("bad") is None and r.authenticate("bad") is None
    assert len(api.asked) == 1
    uncached = Reviewer(api, FakeClock(), cache_s=0)
    uncached.authenticate("bad")
    uncached.authenticate("bad")
    assert len(api.asked) == 3


def test_the_cache_is_bounded() -> None:
    api = Scripted()
    r = Reviewer(api, FakeClock(), cache_s=60, cache_size=100)
    for i in range(1000):
        r.authenticate(f"tok-{i}")
    assert len(r.tokens) == 100
    asked = len(api.asked)
    r.authenticate("tok-999")  # the newest stayed
    r.authenticate("tok-0")  # the oldest went
    assert len(api.asked) == asked + 1


def test_reviews_in_flight_are_bounded() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    class Slow(Scripted):
        def create_token_review(self, body: JSON) -> JSON:
            entered.release()
            release.wait(10)
            return super().create_token_review(body)

    failures: list[tuple[ReviewKind, str]] = []
    r = Reviewer(Slow(), FakeClock(), max_in_flight=2, failed=lambda k, why: failures.append((k, why)))
    threads = [threading.Thread(target=r.authenticate, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
    with pytest.raises(ReviewsBusy):
        r.authenticate("t3")
    release.set()
    for t in threads:
        t.join(5)
    assert failures == [(ReviewKind.TOKEN, "busy")]
    assert r.authenticate("t3") == ReviewedUser("alice")  # the slots came back


def test_failures_are_unavailable_and_never_cached() -> None:
    failures: list[tuple[ReviewKind, str]] = []
    api = Scripted(token=Unavailable(503, "ServiceUnavailable", "down"), access=Unavailable(0, "Timeout", "slow"))
    r = Reviewer(api, FakeClock(), failed=lambda k, why: failures.append((k, why)))
    for _ in range(2):
        with pytest.raises(ReviewUnavailable):
            r.authenticate("tok")
        with pytest.raises(ReviewUnavailable):
            r.authorize(ALICE, Attributes("create", name="n"))
    assert len(api.asked) == 4
    api.token, api.access = {"status": {"authenticated": True}}, {"nothing": 1}
    with pytest.raises(ReviewUnavailable) as token_exc:
        r.authenticate("tok")
    with pytest.raises(ReviewUnavailable) as access_exc:
        r.authorize(ALICE, Attributes("create"))
    assert (token_exc.value.reason, access_exc.value.reason) == ("malformed", "malformed")
    assert failures == [(ReviewKind.TOKEN, "unavailable"), (ReviewKind.ACCESS, "unavailable")] * 2 + [
        (ReviewKind.TOKEN, "malformed"), (ReviewKind.ACCESS, "malformed")]


# -- the official client against a misbehaving API server ----------------------------------


class Misbehaving(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = type(self).mode
        if mode == "slow":
            time.sleep(1)  # past the client's 0.5 s read timeout
        if mode == "hangup":
            self.connection.close()
            return
        codes = {"500": 500, "429": 429, "403": 403, "404": 404}
        code = codes.get(mode, 201)
        body = (b"<html>oops</html>" if mode == "html" else b"[1, 2]" if mode == "list" else json.dumps(
            {"kind": "Status", "code": code, "reason": "Forbidden" if code == 403 else "x", "message": mode}
            if code != 201 else {"status": {"authenticated": True, "user": {"username": "alice"}}}).encode())
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if code == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up first (slow)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _reviewer(url: str, failures: list[tuple[ReviewKind, str]]) -> Reviewer:
    cfg = client.Configuration()
    cfg.host = url
    cfg.retries = False
    return Reviewer(RealReviewApi(Kube(client.ApiClient(cfg), request_timeout_s=0.5)), FakeClock(),
                    cache_s=0, failed=lambda k, why: failures.append((k, why)))


@pytest.mark.parametrize("mode,reason", [
    ("500", "unavailable"), ("429", "unavailable"), ("slow", "unavailable"), ("hangup", "unavailable"),
    ("403", "refused"), ("404", "refused"), ("html", "malformed"), ("list", "malformed"),
])
def test_the_real_client_turns_every_failure_into_unavailable(server: str, mode: str, reason: str) -> None:
    failures: list[tuple[ReviewKind, str]] = []
    r = _reviewer(server, failures)
    Misbehaving.mode = mode
    try:
        with pytest.raises(ReviewUnavailable) as exc:
            r.authenticate("tok")
    finally:
        Misbehaving.mode = "ok"
    assert exc.value.reason == reason
    assert failures == [(ReviewKind.TOKEN, reason)]
    assert r.authenticate("tok") == ReviewedUser("alice")  # the same client, once the server answers


def test_a_server_that_is_not_there_is_unavailable() -> None:
    failures: list[tuple[ReviewKind, str]] = []
    r = _reviewer("http://127.0.0.1:9", failures)
    with pytest.raises(ReviewUnavailable):
        r.authorize(ALICE, Attributes("list"))
    assert failures == [(ReviewKind.ACCESS, "unavailable")]
