"""Keeps a finished remediation before its replacement deletes it, and prunes the archive.

`RemediationWriter.create` calls `keep(predecessor)` before it deletes the finished
NodeRemediation of a node, then `prune(node)`. A remediation deleted by anyone else (a
person with kubectl) is archived from the watch's DELETED event (`keep_deleted`). The
record's shape is `core.history`'s.

The rule an operator can rely on: **no remediation is deleted unless its record is
stored.** So:
- `keep` writes the record; AlreadyExists is success when the stored record archives the
  same remediation (a retried delivery, another replica) and a refusal otherwise. A
  record of the same remediation taken from an older read (its delete then failed on the
  resourceVersion precondition, and the start was decided again on a fresh read) is
  replaced, so the record always holds the state that was deleted.
- If the record cannot be written, `keep` raises and the predecessor stays: an
  unreachable API server raises `Unavailable` as it is (the webhook answers 503;
  Alertmanager retries), any other refusal (RBAC, the CRD not installed, validation)
  raises `ArchiveRefused`, which the start turns into the verdict `ApiError` (the
  operator API answers 502) naming the record: the new remediation does not start until
  the archive works again. Each failure is counted in
  `nodewarden_webhook_kube_errors_total{operation="archive"}` and logged.
- `prune` keeps the newest `keep_per_node` records of the node and never raises: a
  failed prune leaves the archive a little longer than its bound until the next one,
  which loses nothing (counted as operation "prune", logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core import history
from core.clock import Clock
from core.kube import JSON, AlreadyExists, KubeError, NotFound, Unavailable
from webhook.kube import WebhookKube

log = logging.getLogger(__name__)


class ArchiveRefused(KubeError):
    """The history record of a finished remediation could not be stored."""


class HistoryArchive:
    def __init__(
        self,
        kube: WebhookKube,
        clock: Clock,
        keep_per_node: int = history.DEFAULT_KEEP_PER_NODE,
        on_error: Callable[[str, KubeError], None] | None = None,
    ) -> None:
        if keep_per_node < 1:
            raise ValueError("keep_per_node must be at least 1")
        self.kube = kube
        self.clock = clock
        self.keep_per_node = keep_per_node
        self.on_error = on_error or (lambda op, exc: None)

    def keep(self, remediation: JSON) -> str:
        """Store the record of `remediation`; returns its name (see the module docstring)."""
        body = history.record_body(remediation, self.clock.now())
        name, uid = body["metadata"]["name"], history.record_uid(body)
        try:
            try:
                self.kube.create_record(body)
            except AlreadyExists:
                stored = self.kube.get_record(name)
                if history.record_uid(stored) != uid:
                    raise ArchiveRefused(
                        409,
                        "AlreadyExists",
                        f"record {name} archives remediation {history.record_uid(stored)}, "
                        f"not {uid}",
                    ) from None
                if not history.same_state(stored, body):
                    # Archived from an older read (the delete then lost its precondition
                    # and the start was decided again): keep the state being deleted.
                    meta = stored.get("metadata") or {}
                    self.kube.delete_record(name, str(meta.get("uid") or ""))
                    self.kube.create_record(body)
        except Unavailable as exc:
            self._failed("archive", name, exc)
            raise
        except ArchiveRefused as exc:
            self._failed("archive", name, exc)
            raise
        except KubeError as exc:
            self._failed("archive", name, exc)
            raise ArchiveRefused(
                exc.status,
                exc.reason,
                f"history record {name} not stored ({exc.status} {exc.reason}: {exc.message}); "
                f"finished remediation {uid} kept, new one not started",
            ) from exc
        return name

    def keep_deleted(self, remediation: JSON) -> bool:
        """Archive a remediation someone else deleted (a person with kubectl, once it
        finished): the watch's DELETED event carries its final state. Every webhook
        process sees the event and each tries; the first stores the record and the others
        find it stored (AlreadyExists, same state). False: the API server did not answer,
        try again later; any other failure is logged and counted, and given up."""
        if not (remediation.get("status") or {}).get("phase"):
            return True  # never decided: nothing happened that history would show
        node = str(((remediation.get("spec") or {}).get("nodeName")) or "")
        try:
            name = self.keep(remediation)
        except Unavailable:
            return False
        except KubeError:
            return True  # logged and counted by keep
        log.info("kept history record %s of remediation %s, deleted by someone else", name,
                 (remediation.get("metadata") or {}).get("uid"))
        if node:
            self.prune(node)
        return True

    def prune(self, node: str) -> int:
        """Delete all but the newest `keep_per_node` records of `node`; how many went."""
        try:
            records = self.kube.list_records(node)
        except KubeError as exc:
            self._failed("prune", node, exc)
            return 0
        # A hashed label value could in theory match another node: check the name too.
        mine = [r for r in records if (r.get("remediation") or {}).get("nodeName") == node]
        deleted = 0
        for record in history.beyond_retention(mine, self.keep_per_node):
            meta = record.get("metadata") or {}
            try:
                self.kube.delete_record(str(meta.get("name")), str(meta.get("uid") or ""))
                deleted += 1
            except NotFound:
                pass
            except KubeError as exc:
                self._failed("prune", str(meta.get("name")), exc)
                break
        return deleted

    def _failed(self, operation: str, what: str, exc: KubeError) -> None:
        self.on_error(operation, exc)
        log.warning("history %s of %s failed: %s", operation, what, exc)
