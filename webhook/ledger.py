"""The rate limit's ledger: when real remediations started, in one ConfigMap that every
thread, gunicorn worker and webhook replica reads and writes, so that `maxRemediations`
holds however many of them decide at once.

Each cache only sees the others' starts after its watch delivers them, so four
concurrent alerts about four NotReady nodes were all accepted under `maxRemediations: 2`.
Now an accepted, non-dry-run verdict must take a slot in the ledger before its
NodeRemediation is created: read the ConfigMap, count the starts inside the window, and
write the new start with the read `resourceVersion` (optimistic concurrency). A 409 means
someone else wrote first: read again and count again. So at most `maxRemediations`
starts are ever written inside one window.

The ConfigMap (`<pause ConfigMap>-ledger`, in the release namespace) holds under `starts`
a JSON list of `[node, unix seconds]` (or `[node, unix seconds, key]`), only those inside
the window (bounded by the limit). A reservation made with a `key` (a kubectl request's
uid, which every worker and replica decides on) is taken once: a second reserve with the
same key inside the window finds it and takes no further slot. Failure modes are on the safe side: a slot taken by a create that then loses to
another writer stays taken (one remediation fewer in the window), an unreadable ledger
or one that keeps changing refuses the start (`ApiError`, Alertmanager's next delivery
tries again), and a dry run never takes a slot.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from core.clock import Clock
from core.kube import JSON, AlreadyExists, Conflict, KubeError, NotFound
from webhook.policy import Outcome, Policy, Reason, Verdict

log = logging.getLogger(__name__)
KEY = "starts"
ATTEMPTS = 10


class LedgerKube(Protocol):
    def get_ledger(self) -> JSON:
        """The ledger ConfigMap (NotFound)."""

    def create_ledger(self, data: dict[str, str]) -> JSON:
        """Create the ledger ConfigMap (AlreadyExists)."""

    def replace_ledger(self, data: dict[str, str], resource_version: str) -> JSON:
        """Replace its data, guarded by `resource_version` (Conflict)."""


class LedgerError(KubeError):
    """The ledger could not be read or kept changing: no slot was taken."""


def read_starts(obj: JSON | None) -> list[tuple[str, float]]:
    """The starts recorded in the ledger ConfigMap; LedgerError if they do not parse."""
    return [(node, at) for node, at, _ in _read(obj)]


def _read(obj: JSON | None) -> list[tuple[str, float, str]]:
    raw = ((obj or {}).get("data") or {}).get(KEY, "[]")
    try:
        items = json.loads(raw)
        return [(str(item[0]), float(item[1]), str(item[2]) if len(item) > 2 else "")
                for item in items]
    except (TypeError, ValueError) as exc:
        raise LedgerError(0, "InvalidLedger", f"the rate-limit ledger does not parse: {exc}") from None


class RateLedger:
    def __init__(self, kube: LedgerKube, clock: Clock, attempts: int = ATTEMPTS) -> None:
        self.kube = kube
        self.clock = clock
        self.attempts = attempts

    def reserve(self, node: str, policy: Policy, key: str = "") -> Verdict | None:
        """Take a slot for a start of `node` now: None when taken (or, with `key`, already
        taken under that key), else the `RateLimited` verdict. Raises LedgerError (or the
        API's error) when it cannot tell."""
        window = policy.rate_limit.window_s
        limit = policy.rate_limit.max_remediations
        for _ in range(self.attempts):
            try:
                obj: JSON | None = self.kube.get_ledger()
            except NotFound:
                obj = None
            now = self.clock.now()
            recent = [(n, at, k) for n, at, k in _read(obj) if at > now - window]
            if key and any(k == key for _, _, k in recent):
                return None
            if len(recent) >= limit:
                return Verdict(
                    Outcome.REJECTED,
                    Reason.RATE_LIMITED,
                    f"{len(recent)} remediations started in the last {window:g}s "
                    f"(limit {limit}, counted in the shared ledger)",
                )
            entries = [[n, at, k] if k else [n, at] for n, at, k in [*recent, (node, now, key)]]
            data = {KEY: json.dumps(entries)}
            try:
                if obj is None:
                    self.kube.create_ledger(data)
                else:
                    self.kube.replace_ledger(data, str(obj["metadata"]["resourceVersion"]))
                return None
            except (AlreadyExists, Conflict):
                continue  # another writer took a slot first: count again
        raise LedgerError(0, "Conflict", f"the rate-limit ledger kept changing ({self.attempts} tries)")
