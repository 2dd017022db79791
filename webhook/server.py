"""The webhook's gunicorn worker: gevent, so that slow clients cost a greenlet, not a worker.

With gunicorn's thread workers, 16 connections sending their headers a byte at a time held
every thread (2 workers x 4): `/healthz` and Alertmanager's posts waited for the whole
hold. Here every connection is a greenlet, so a held connection blocks nobody, and each is
bounded:

- headers: the whole request head must arrive within `NODEWARDEN_HEADER_TIMEOUT_S`
  (default 5 s) of the connection's previous request (or of its accept), else the
  connection is closed without an answer;
- body and answer: each read or write on the socket may wait at most
  `NODEWARDEN_READ_TIMEOUT_S` (default 10 s), and the body as a whole must arrive within
  `NODEWARDEN_BODY_TIMEOUT_S` (default 30 s): a slower body is answered 408 (see
  `webhook.api.common`);
- connections: at most `worker_connections` per worker (`NODEWARDEN_WORKER_CONNECTIONS`,
  default 1000); beyond that the kernel's accept backlog queues them.

gunicorn's own error answers (for example 431 for oversized headers) leave as the same
JSON body as every other error (`code`, `name`, `description`), not gunicorn's HTML page,
and its warnings about them are rate-limited (`webhook.logs.FoldingFilter`).

This module is imported by gunicorn's master too (to find the worker class): it imports
nothing that opens connections (see `webhook/gunicorn.conf.py`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.exceptions import RequestTimeout

from webhook.logs import FoldingFilter

HEADER_TIMEOUT_S = float(os.environ.get("NODEWARDEN_HEADER_TIMEOUT_S", "5"))
READ_TIMEOUT_S = float(os.environ.get("NODEWARDEN_READ_TIMEOUT_S", "10"))
BODY_TIMEOUT_S = float(os.environ.get("NODEWARDEN_BODY_TIMEOUT_S", "30"))


class DeadlineBody:
    """A request body that must be read in full by `deadline` (gevent's clock): a read
    past it raises 408 (an HTTP error the app answers as JSON), however slowly the
    client drips its bytes."""

    def __init__(self, req: Any, timeout_s: float) -> None:
        self._req = req
        self._body = req.body
        self._deadline = gevent.get_hub().loop.now() + timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        left = self._deadline - gevent.get_hub().loop.now()
        late = RequestTimeout(f"the request body did not arrive within {BODY_TIMEOUT_S:g}s")
        try:
            with gevent.Timeout(max(left, 0.0), late):
                return getattr(self._body, method)(*args)
        except RequestTimeout:
            self._req.must_close = True  # the rest of the body is never read: close
            raise

    def read(self, size: int | None = None) -> bytes:
        return bytes(self._call("read", size))

    def readline(self, size: int | None = None) -> bytes:
        return bytes(self._call("readline", size))

    def readlines(self, size: int | None = None) -> list[bytes]:
        return list(self._call("readlines", size))

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def json_error(status_int: int, reason: str, mesg: str) -> bytes:
    """gunicorn's error answer with the webhook's JSON error body."""
    body = json.dumps({"code": status_int, "name": reason, "description": mesg[:300]}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, json_error(status_int, reason, mesg))


class WebhookWorker(GeventWorker):
    """gunicorn's gevent worker with read deadlines and JSON error answers."""

    def init_process(self) -> None:
        # gunicorn writes its error answers through `util.write_error` (an HTML page); the
        # webhook's clients expect its JSON body on every error.
        util.write_error = _write_json_error
        # gunicorn's own warnings (one per refused request) are rate-limited like ours.
        self.log.error_log.addFilter(FoldingFilter())
        super().init_process()

    def timeout_ctx(self) -> gevent.Timeout:
        return gevent.Timeout(HEADER_TIMEOUT_S, False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.settimeout(READ_TIMEOUT_S)  # instead of GeventWorker's blocking mode
        super(GeventWorker, self).handle(listener, client, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        req.body = DeadlineBody(req, BODY_TIMEOUT_S)
        return super().handle_request(listener_name, req, sock, addr)
