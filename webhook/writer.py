"""Writes to NodeRemediation objects: create, record an alert, cancel, approve.

Every write is idempotent and guarded:
- create: name = node name, so a second create answers 409 AlreadyExists (the caller
  decides again with the object that won). A finished predecessor is archived first
  (`webhook.history`: no record stored, no delete, no new remediation), then deleted with
  uid + resourceVersion preconditions, and the node's archive pruned. Status is written
  through /status right after; if that step is lost (crash, API gone), the next write to
  the object completes it.
- status writes carry the resourceVersion they were computed from; on 409 Conflict the
  object is read again and the decision is taken again on what is now stored, so the
  webhook can never cancel past a fence order the controller issued meanwhile.
- repeated deliveries of one alert are written at most once per `record_interval_s`;
  the deliveries in between are added to the entry's `count` by the next write.
Each write is put into the cache at once, so the next decision sees it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from core.clock import Clock
from core.kube import JSON, AlreadyExists, Conflict, KubeError, NotFound, retry_on_conflict
from core.remediation import Phase, is_foreign
from core.remediation_status import RemediationStatus, Stamp
from webhook.cache import ClusterCache, existing_facts
from webhook.history import HistoryArchive
from webhook.kube import WebhookKube
from webhook.policy import ExistingFacts, Outcome, Reason, Verdict
from webhook.records import (
    AlertEntry,
    Trigger,
    approval_status,
    cancelled_status,
    has_entry,
    history_record,
    initial_phase,
    initial_status,
    recorded_recently,
    remediation_body,
    with_alert,
)

T = TypeVar("T")
ATTEMPTS = 5
MAX_UNWRITTEN_KEYS = 10_000


class WriteConflict(KubeError):
    """Gave up after repeated 409s: others keep changing the object."""


class RemediationWriter:
    def __init__(
        self,
        kube: WebhookKube,
        cache: ClusterCache,
        clock: Clock,
        record_interval_s: float = 30.0,
        on_error: Callable[[str, KubeError], None] | None = None,
        archive: HistoryArchive | None = None,
    ) -> None:
        self.kube = kube
        self.archive = archive or HistoryArchive(kube, clock, on_error=on_error)
        self.cache = cache
        self.clock = clock
        self.record_interval_s = record_interval_s
        self.on_error = on_error or (lambda op, exc: None)
        self._unwritten: Counter[tuple[str, tuple[str, str, str]]] = Counter()
        self._lock = threading.Lock()

    def _call(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except KubeError as exc:
            self.on_error(operation, exc)
            raise

    # Create -----------------------------------------------------------------------

    def create(
        self,
        node: str,
        verdict: Verdict,
        trigger: Trigger,
        alert: AlertEntry | None,
        predecessor: JSON | None,
    ) -> JSON:
        """Create the remediation of `node` for an accepted verdict (AlreadyExists)."""
        assert verdict.plan is not None
        note = ""
        if predecessor is not None:
            meta, status = predecessor["metadata"], predecessor.get("status") or {}
            if existing_facts(predecessor).active:
                # Never delete a remediation that is still running: whoever created it
                # wins, and the caller decides again on it.
                raise AlreadyExists(
                    409, "AlreadyExists", f"remediation {meta['uid']} of {node} is active"
                )
            self.archive.keep(predecessor)  # raises: the predecessor stays, nothing starts
            try:
                self._call(
                    "delete",
                    self.kube.delete_remediation,
                    node,
                    meta["uid"],
                    meta["resourceVersion"],
                )
            except NotFound:
                pass
            self.cache.forget_remediation(node, meta["uid"])
            self.archive.prune(node)
            note = (
                f"replaces remediation {meta['uid']} that ended {status.get('phase')} "
                f"at {status.get('phaseSince')}"
            )
        created = self._call(
            "create", self.kube.create_remediation, remediation_body(node, trigger, verdict.plan)
        )
        self.cache.upsert_remediation(created)
        status = initial_status(created["spec"], verdict, self.clock.now(), None, note)

        def patch_for(obj: JSON) -> JSON | None:
            # Normally `obj` is what create returned. After a 409 it is the stored object,
            # which a concurrent delivery may have initialized: keep what it wrote, and
            # only add this delivery's alert if it is not there yet.
            alerts = (obj.get("status") or {}).get("alerts") or []
            if _phase(obj):
                if alert is None or has_entry(alerts, alert):
                    return None
                return {"alerts": with_alert(alerts, alert, 1)}
            return {**status, "alerts": with_alert(alerts, alert, 1) if alert else alerts}

        return self._write_status(created, patch_for)

    # Record -----------------------------------------------------------------------

    def record_alert(self, node: str, entry: AlertEntry) -> JSON | None:
        """Add a delivery of `entry` to `status.alerts` (coalesced; None: not written now)."""
        key = (node, entry.key())
        cached = self.cache.remediation(node)
        if cached is not None and _phase(cached):
            alerts = (cached.get("status") or {}).get("alerts") or []
            if recorded_recently(alerts, entry, self.record_interval_s):
                with self._lock:
                    if len(self._unwritten) >= MAX_UNWRITTEN_KEYS:
                        self._unwritten.clear()  # bounded memory beats exact counts
                    self._unwritten[key] += 1
                return None
        with self._lock:
            extra = self._unwritten.pop(key, 0)

        def patch(obj: JSON) -> JSON:
            status = obj.get("status") or {}
            out: JSON = {"alerts": with_alert(status.get("alerts") or [], entry, 1 + extra)}
            if not status.get("phase") and not is_foreign(obj):
                out.update(self.resumed_status(obj))
            return out

        try:
            return self._write_status(cached, patch, node=node)
        except NotFound:
            return None
        except KubeError:
            with self._lock:
                self._unwritten[key] += extra
            raise

    # Cancel / approve -------------------------------------------------------------

    def cancel(
        self,
        node: str,
        decide: Callable[[ExistingFacts | None], Verdict],
        requested_by: str,
        reason_text: str,
        alert: AlertEntry | None = None,
    ) -> tuple[Verdict, JSON | None]:
        """Decide on the stored object and, if the verdict is CANCELLED, write it; a 409
        means the object changed (maybe a fence order was issued), so decide again."""

        def patch_for(obj: JSON, verdict: Verdict) -> JSON:
            status = obj.get("status") or {}
            patch = cancelled_status(status, verdict, requested_by, reason_text, self.clock.now())
            if alert is not None:
                patch["alerts"] = with_alert(status.get("alerts") or [], alert, 1)
            return patch

        return self._decide_and_write(node, decide, Outcome.CANCELLED, patch_for, "cancelled")

    def approve(
        self, node: str, decide: Callable[[ExistingFacts | None], Verdict], approved_by: str
    ) -> tuple[Verdict, JSON | None]:
        def patch_for(obj: JSON, verdict: Verdict) -> JSON:
            patch = approval_status(approved_by, self.clock.now())
            if not _phase(obj) and not is_foreign(obj):
                patch.update(self.resumed_status(obj))
            return patch

        return self._decide_and_write(node, decide, Outcome.ACCEPTED, patch_for, "approved")

    # Helpers ----------------------------------------------------------------------

    def refresh(self, node: str) -> JSON | None:
        """Read the stored object (None if there is none) and put it in the cache."""
        try:
            obj = self._call("get", self.kube.get_remediation, node)
        except NotFound:
            self.cache.forget_remediation(node, None)
            return None
        self.cache.upsert_remediation(obj)
        return obj

    def _decide_and_write(
        self,
        node: str,
        decide: Callable[[ExistingFacts | None], Verdict],
        wanted: Outcome,
        patch_for: Callable[[JSON, Verdict], JSON],
        what: str,
    ) -> tuple[Verdict, JSON | None]:
        """Read the stored object, decide on it, and write `patch_for` if the verdict is
        `wanted`, guarded by the resourceVersion read; on 409 read and decide again."""

        def attempt() -> tuple[Verdict, JSON | None]:
            obj = self.refresh(node)
            verdict = decide(existing_facts(obj) if obj else None)
            if obj is None or verdict.outcome is not wanted:
                return verdict, obj
            return verdict, self._patch_status(node, patch_for(obj, verdict), obj)

        try:
            return retry_on_conflict(attempt, ATTEMPTS)
        except Conflict:
            raise WriteConflict(409, "Conflict", f"remediation {node} kept changing; not {what}") from None

    def _write_status(
        self, obj: JSON | None, patch_for: Callable[[JSON], JSON | None], node: str = ""
    ) -> JSON:
        """Patch status computed from `obj` (or a fresh read); read again on 409."""
        name = node or str(((obj or {}).get("metadata") or {}).get("name"))
        known = [obj]

        def attempt() -> JSON:
            current = known.pop() if known else None
            if current is None:
                current = self._call("get", self.kube.get_remediation, name)
            patch = patch_for(current)
            return current if patch is None else self._patch_status(name, patch, current)

        try:
            return retry_on_conflict(attempt, ATTEMPTS)
        except Conflict:
            raise WriteConflict(409, "Conflict", f"remediation {name} kept changing") from None

    def _patch_status(self, name: str, patch: JSON, read: JSON) -> JSON:
        """One status patch guarded by the resourceVersion of `read`; into the cache."""
        new = self._call("patch_status", self.kube.patch_remediation_status, name, patch, _rv(read))
        self.cache.upsert_remediation(new)
        return new

    def resumed_status(self, obj: JSON) -> JSON:
        """The initial status fields of a remediation whose creation was interrupted."""
        spec = obj.get("spec") or {}
        phase, now = initial_phase(spec), self.clock.now()
        message = "status written after an interrupted creation"
        return RemediationStatus(
            phase=phase,
            reason=str(Reason.ACCEPTED if phase is Phase.PENDING else Reason.AWAITING_APPROVAL),
            message=message,
            phase_since=Stamp.second(now),
            history=(history_record(phase, "Resumed", message, now),),
        ).to_json()


def _phase(obj: JSON) -> str | None:
    phase = (obj.get("status") or {}).get("phase")
    return str(phase) if phase else None


def _rv(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
