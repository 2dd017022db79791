"""Requests people make with their own kubectl: NodeRemediations the webhook did not create,
and the approve / cancel annotations people put on any NodeRemediation.

The contract (docs/noderemediation.md, "Requesting with kubectl"):
- create `NodeRemediation <node>` with annotation `nodewarden.io/requested-by: <username>`,
  `spec.nodeName: <node>`, `spec.trigger: {source: kubectl, reason: ...}`, optional
  `spec.force`; approve with annotation `nodewarden.io/approved-by: <username>`; cancel with
  `nodewarden.io/cancelled-by: <username>` (+ `nodewarden.io/cancel-reason`).
- The chart's admission policy (templates/admission-operators.yaml) makes each of those
  annotations equal to the authenticated username of whoever wrote it, and lets nobody but
  nodewarden's own accounts write `/status`. So the annotations are identities, and the
  status this module writes is the only thing the controller acts on: the controller never
  acts on an object without a phase.

What this module does with each NodeRemediation it sees (`next_step`, pure):
  no phase, a person's request          -> DECIDE: exactly the policy of an operator request
                                           (`decide_firing`, with the cooldown of a finished
                                           predecessor someone deleted, then the shared rate-limit
                                           ledger, keyed by the object's uid so that every
                                           worker and replica takes one slot between them),
                                           written as the first status: Pending /
                                           AwaitingApproval (with `status.plan`) or Rejected
  no phase, the webhook's own, older    -> RESUME: its creation was interrupted after the
  than `resume_after_s`                    decision; write the status it was about to write
  active, `cancelled-by` set            -> CANCEL (`decide_cancel`, as the HTTP API)
  AwaitingApproval (the first wait, for -> APPROVE (`decide_approve`: four-eyes applies)
  a go-ahead; never an escalation's
  "is it off?"), `approved-by` set, not
  approved since it began waiting
  anything else                         -> NOTHING
Every status write carries the resourceVersion it was decided on: several workers and
replicas run this at once, exactly one write wins, and only the winner reports the
verdict (log line, metric, Event). A refusal (a self-approval, a cancel after the fence
order) is reported once for each (object, annotation value) by all the processes together:
each builds the same Event name from it, and only the one whose Event the API server
creates first logs and counts it.

The same thread archives every NodeRemediation a watch DELETED event removes (a person
deleted a finished one to ask again): `HistoryArchive.keep_deleted`, tried again at each
rescan while the API server does not answer.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable

from core.clock import Clock, parse_time
from core.kube import JSON, Conflict, KubeError, NotFound, Unavailable, dig
from core.remediation import (
    APPROVED_BY_ANNOTATION,
    CANCEL_REASON_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
    REQUESTED_BY_ANNOTATION,
    Phase,
    annotation,
    decided,
    is_foreign,
)
from core.remediation_status import RemediationStatus, Stamp
from webhook.cache import ClusterCache, existing_facts, requester
from webhook.decisions import Context, Decisions
from webhook.ledger import RateLedger
from webhook.policy import (
    Outcome,
    Reason,
    Request,
    Source,
    Verdict,
    decide_approve,
    decide_cancel,
    decide_firing,
)
from webhook.policy.decide import valid_node_name
from webhook.records import MAX_TEXT, history_record, plan_record, rejected_status
from webhook.writer import RemediationWriter

log = logging.getLogger(__name__)
ATTEMPTS = 5
INITIAL_APPROVAL_REASONS = frozenset({str(Reason.AWAITING_APPROVAL), str(Reason.FORCE_NEEDS_APPROVAL)})


class Step(enum.StrEnum):
    DECIDE = "Decide"
    RESUME = "Resume"
    CANCEL = "Cancel"
    APPROVE = "Approve"
    NOTHING = "Nothing"


def next_step(obj: JSON, now: float, resume_after_s: float) -> Step:
    """What the webhook does about `obj` now (see the module docstring)."""
    if not decided(obj):
        if is_foreign(obj):
            return Step.DECIDE
        created = parse_time(dig(obj, "metadata", "creationTimestamp"))
        if created is not None and now - created >= resume_after_s:
            return Step.RESUME
        return Step.NOTHING
    facts = existing_facts(obj)
    if not facts.active:
        return Step.NOTHING
    if annotation(obj, CANCELLED_BY_ANNOTATION):
        return Step.CANCEL
    if (
        facts.phase == Phase.AWAITING_APPROVAL
        and first_approval_wait(obj)
        and annotation(obj, APPROVED_BY_ANNOTATION)
        and not (facts.approved_at is not None and facts.phase_since is not None
                 and facts.approved_at >= facts.phase_since)
    ):
        return Step.APPROVE
    return Step.NOTHING


def first_approval_wait(obj: JSON) -> bool:
    """The wait for a person's go-ahead before anything is done (policy or force), not a
    later escalation's "is the node powered off?": an `approved-by` annotation stays on
    the object, so it must never answer that later question by itself. That confirmation
    goes through the operator API."""
    status = obj.get("status") or {}
    return (
        str(status.get("reason")) in INITIAL_APPROVAL_REASONS
        and not dig(status, "fence", "issuedAt")
        and not status.get("escalation")
    )


def request_of(obj: JSON) -> Request | Verdict:
    """The policy request a person's NodeRemediation makes, or why it is malformed."""
    name = str(dig(obj, "metadata", "name") or "")
    spec = obj.get("spec") or {}
    if not valid_node_name(name) or spec.get("nodeName") != name:
        return Verdict(
            Outcome.REJECTED,
            Reason.INVALID_NODE_NAME,
            f"spec.nodeName {str(spec.get('nodeName'))[:80]!r} must equal the object's name",
        )
    if not annotation(obj, REQUESTED_BY_ANNOTATION):
        return Verdict(
            Outcome.REJECTED,
            Reason.INVALID_REQUEST,
            f"annotation {REQUESTED_BY_ANNOTATION} (the requester's username) is missing",
        )
    return Request(
        Source.KUBECTL, name, dry_run=bool(spec.get("dryRun")), force=bool(spec.get("force"))
    )


def first_status(obj: JSON, verdict: Verdict, now: float) -> JSON:
    """The status a person's request starts with, for `verdict` on it."""
    who = requester(obj)
    if verdict.outcome is not Outcome.ACCEPTED or verdict.plan is None:
        return rejected_status(verdict, who, now)
    phase = Phase.AWAITING_APPROVAL if verdict.plan.approval_required else Phase.PENDING
    reason_text = str(dig(obj, "spec", "trigger", "reason") or "")
    message = f"{verdict.message}; requested by {who}" + (f": {reason_text}" if reason_text else "")
    return RemediationStatus(
        phase=phase,
        reason=str(verdict.reason),
        message=message[:MAX_TEXT],
        phase_since=Stamp.second(now),
        requested_by=who[:253],
        plan=plan_record(verdict.plan),
        history=(history_record(phase, str(verdict.reason), message, now),),
    ).to_json()


MAX_UNARCHIVED = 1000  # deleted remediations held for another try while the API is away


class KubectlRequests:
    """Runs `next_step` for every NodeRemediation the watch delivers, on its own thread,
    and once per `rescan_s` for all of them (so an interrupted creation is resumed)."""

    def __init__(
        self,
        cache: ClusterCache,
        writer: RemediationWriter,
        decisions: Decisions,
        ledger: RateLedger | None,
        clock: Clock,
        resume_after_s: float = 10.0,
        rescan_s: float = 5.0,
    ) -> None:
        self.cache = cache
        self.writer = writer
        self.decisions = decisions
        self.ledger = ledger
        self.clock = clock
        self.resume_after_s = resume_after_s
        self.rescan_s = rescan_s
        # Names to look at, and objects a DELETED event removed (to archive).
        self._queue: queue.Queue[str | JSON | None] = queue.Queue()
        self._unarchived: list[JSON] = []  # deleted while the API server did not answer
        self._reported: set[tuple[str, str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Wiring -----------------------------------------------------------------------

    def notify(self, name: str) -> None:
        """A NodeRemediation changed (called from the watch thread: only queues)."""
        self._queue.put(name)

    def deleted(self, obj: JSON) -> None:
        """A NodeRemediation was deleted (watch thread: only queues); it is archived unless
        the webhook archived it itself before deleting it (then this finds it stored)."""
        self._queue.put(obj)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kubectl-requests", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self.rescan_s)
            except queue.Empty:
                for obj in self.cache.remediations():
                    self._safely(str(dig(obj, "metadata", "name") or ""))
                self._archive_again()
                continue
            if isinstance(item, dict):
                self._archive(item)
            elif item is not None:
                self._safely(item)

    def _archive(self, obj: JSON) -> None:
        if not self.writer.archive.keep_deleted(obj) and len(self._unarchived) < MAX_UNARCHIVED:
            self._unarchived.append(obj)  # the API server did not answer: at the next rescan

    def _archive_again(self) -> None:
        pending, self._unarchived = self._unarchived, []
        for obj in pending:
            self._archive(obj)

    def _safely(self, name: str) -> None:
        try:
            self.handle(name)
        except Unavailable as exc:
            log.warning("kubectl request %s: API server unavailable: %s", name, exc)
        except KubeError as exc:
            log.warning("kubectl request %s: the API server refused: %s", name, exc)

    # Steps ------------------------------------------------------------------------

    def handle(self, name: str) -> Step:
        """Do what `next_step` says for the cached object `name`; returns the step."""
        if not self.cache.synced():
            return Step.NOTHING
        obj = self.cache.remediation(name)
        if obj is None:
            return Step.NOTHING
        step = next_step(obj, self.clock.now(), self.resume_after_s)
        if step is Step.CANCEL and self._refused(obj, CANCELLED_BY_ANNOTATION):
            return Step.NOTHING
        if step is Step.APPROVE and self._refused(obj, APPROVED_BY_ANNOTATION):
            return Step.NOTHING
        action: dict[Step, Callable[[JSON], None]] = {
            Step.DECIDE: self._decide,
            Step.RESUME: self._resume,
            Step.CANCEL: self._cancel,
            Step.APPROVE: self._approve,
        }
        if step in action:
            action[step](obj)
        return step

    def _refused(self, obj: JSON, key: str) -> bool:
        """This annotation value was already refused (and reported): do not ask again."""
        return (str(obj["metadata"]["uid"]), key, annotation(obj, key)) in self._reported

    def _decide(self, obj: JSON) -> None:
        name = str(obj["metadata"]["name"])
        who = requester(obj)
        ctx = Context(source=str(Source.KUBECTL), action="Remediate", actor=who)
        for _ in range(ATTEMPTS):
            request = request_of(obj)
            if isinstance(request, Verdict):
                verdict = request
            else:
                (node, _, cluster), _ = self.cache.facts_and_remediation(name)
                # The object being decided is the request itself; its predecessor, if a
                # person deleted a finished one to ask again, still has its cooldown.
                verdict = decide_firing(
                    request, node, self.cache.deleted_facts(name), cluster,
                    self.decisions.policy, self.clock.now(),
                )
                plan = verdict.plan
                if self.ledger is not None and plan is not None and not plan.dry_run:
                    refused = self.ledger.reserve(
                        name, self.decisions.policy, key=str(obj["metadata"]["uid"])
                    )
                    verdict = refused or verdict
            try:
                written = self.writer.kube.patch_remediation_status(
                    name, first_status(obj, verdict, self.clock.now()), _rv(obj)
                )
            except Conflict:
                fresh = self.writer.refresh(name)
                if fresh is None or decided(fresh):
                    return  # another worker or replica decided it
                obj = fresh
                continue
            except NotFound:
                return
            self.cache.upsert_remediation(written)
            self.decisions.report(verdict, name, ctx, written)
            return

    def _resume(self, obj: JSON) -> None:
        name = str(obj["metadata"]["name"])
        try:
            written = self.writer.kube.patch_remediation_status(
                name, self.writer.resumed_status(obj), _rv(obj)
            )
        except (Conflict, NotFound):
            return
        self.cache.upsert_remediation(written)
        log.info("remediation %s: status written after an interrupted creation", name)

    def _cancel(self, obj: JSON) -> None:
        name = str(obj["metadata"]["name"])
        by = annotation(obj, CANCELLED_BY_ANNOTATION)
        text = annotation(obj, CANCEL_REASON_ANNOTATION) or f"cancelled by {by} with kubectl"
        verdict, written = self.writer.cancel(name, lambda f: decide_cancel(name, f), by, text)
        self._report(obj, CANCELLED_BY_ANNOTATION, by, verdict, written, "Cancel")

    def _approve(self, obj: JSON) -> None:
        name = str(obj["metadata"]["name"])
        by = annotation(obj, APPROVED_BY_ANNOTATION)
        verdict, written = self.writer.approve(
            name, lambda f: decide_approve(name, f, by), by
        )
        self._report(obj, APPROVED_BY_ANNOTATION, by, verdict, written, "Approve")

    def _report(
        self, obj: JSON, key: str, by: str, verdict: Verdict, written: JSON | None, action: str
    ) -> None:
        """Report a carried-out verdict (this worker's write won), or a refusal once per
        (object, annotation value) in all (every worker and replica sees it: the first to
        create its Event reports it); never another worker's success."""
        if verdict.outcome is Outcome.DUPLICATE or verdict.reason is Reason.ALREADY_FINISHED:
            return
        once = ""
        if verdict.outcome is Outcome.REJECTED:
            seen = (str(obj["metadata"]["uid"]), key, by)
            if seen in self._reported:
                return
            if len(self._reported) > 10_000:
                self._reported.clear()
            self._reported.add(seen)
            once = "\x00".join(("refused", *seen))
        ctx = Context(source=str(Source.KUBECTL), action=action, actor=by)
        self.decisions.report(verdict, str(obj["metadata"]["name"]), ctx, written or obj, once=once)


def _rv(obj: JSON) -> str:
    return str(dig(obj, "metadata", "resourceVersion") or "")

