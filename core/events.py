"""Kubernetes Events about Nodes (`events.k8s.io/v1`), sent off the request path.

A request never waits for an Event: `record()` puts it on a bounded queue and one
background thread creates it. Identical Events (same node, reason, action and note)
within `dedup_window_s` are sent once, the way client-go's event correlator keeps
repeated deliveries from flooding the API; a full queue drops the Event. Every outcome
is counted (`sent`, `deduplicated`, `dropped`, `failed`), so nothing disappears unseen.
The memory of recent Events is bounded (`recent_limit` keys, O(1) per Event), and the
warning about a full queue is written at most once per `dedup_window_s`, saying how many
drops it folded.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core import names
from core.clock import Clock, rfc3339_micro
from core.kube import JSON, AlreadyExists, KubeError
from core.recent import RecentKeys

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """The one API call the recorder needs (both sides' access layers have it)."""

    def create_event(self, namespace: str, body: JSON) -> None:
        """Create an events.k8s.io/v1 Event."""


@dataclass(frozen=True)
class NodeEvent:
    node: str
    node_uid: str
    type: str  # Normal | Warning
    reason: str  # CamelCase, the verdict's reason
    action: str  # Remediate | Cancel | Approve | RecordAlert
    note: str
    related: JSON | None = None  # object reference of the NodeRemediation, if any
    name: str = ""  # a fixed name (see EventRecorder.claim); empty: a random one


def event_body(event: NodeEvent, instance: str, now: float,
               controller: str = names.WEBHOOK_COMPONENT) -> JSON:
    """The events.k8s.io/v1 Event for `event`, reported by `controller`."""
    regarding: JSON = {"apiVersion": "v1", "kind": "Node", "name": event.node}
    if event.node_uid:
        regarding["uid"] = event.node_uid
    body: JSON = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": event.name or f"{event.node}.{secrets.token_hex(8)}"},
        "eventTime": rfc3339_micro(now),
        "reportingController": controller,
        "reportingInstance": instance[:128],
        "action": event.action,
        "reason": event.reason,
        "regarding": regarding,
        "note": event.note[:1024],
        "type": event.type,
    }
    if event.related:
        body["related"] = event.related
    return body


class EventRecorder:
    def __init__(
        self,
        kube: EventSink,
        clock: Clock,
        namespace: str,
        instance: str,
        queue_size: int = 1000,
        dedup_window_s: float = 60.0,
        count: Callable[[str], None] | None = None,
        controller: str = names.WEBHOOK_COMPONENT,
        recent_limit: int = 10_000,
    ) -> None:
        self.kube = kube
        self.controller = controller
        self.clock = clock
        self.namespace = namespace
        self.instance = instance
        self.dedup_window_s = dedup_window_s
        self._count = count or (lambda result: None)
        self._queue: queue.Queue[NodeEvent | None] = queue.Queue(maxsize=queue_size)
        self._recent: RecentKeys[tuple[str, str, str, str]] = RecentKeys(
            dedup_window_s, recent_limit
        )
        self._drops: RecentKeys[str] = RecentKeys(dedup_window_s, 1)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def stop(self, join_s: float = 0.0) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread:
            self._thread.join(join_s)

    def record(self, event: NodeEvent) -> None:
        """Queue `event` unless an identical one was queued within the window."""
        key = (event.node, event.reason, event.action, event.note)
        now = self.clock.monotonic()
        if self._recent.admit(key, now) is None:
            self._count("deduplicated")
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count("dropped")
            folded = self._drops.admit("full", now)
            if folded is not None:
                log.warning(
                    "event queue full; dropped %s %s for node %s (%d more drops folded)",
                    event.action,
                    event.reason,
                    event.node,
                    folded,
                )

    def claim(self, event: NodeEvent) -> bool:
        """Create `event` (which has a fixed `name`) now, on the caller's thread: whether
        this process is the first to report it. Several processes that each see the same
        thing (every webhook worker of every replica) report it once between them, the
        API server deciding who: AlreadyExists says another one did. If the API server
        cannot say (any other error), True: reported twice rather than never."""
        try:
            self.kube.create_event(
                self.namespace, event_body(event, self.instance, self.clock.now(), self.controller)
            )
        except AlreadyExists:
            self._count("deduplicated")
            return False
        except KubeError as exc:
            self._count("failed")
            log.warning("could not create event %s for node %s: %s", event.reason, event.node, exc)
            return True
        self._count("sent")
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued Event was handled (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return False

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._send(event)
            finally:
                self._queue.task_done()

    def _send(self, event: NodeEvent) -> None:
        try:
            self.kube.create_event(
                self.namespace, event_body(event, self.instance, self.clock.now(), self.controller)
            )
            self._count("sent")
        except KubeError as exc:
            self._count("failed")
            log.warning("could not create event %s for node %s: %s", event.reason, event.node, exc)
        except Exception:
            self._count("failed")
            log.exception("could not create event %s for node %s", event.reason, event.node)
