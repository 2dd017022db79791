"""The webhook's view of the cluster: Nodes, NodeRemediations and the pause switch,
kept current by watches (`webhook.watch`) so that no request ever lists anything.

A finished remediation (Succeeded or Failed) that someone deleted leaves its facts
behind, so the next request of that node still waits out the cooldown.

Counters that every decision needs (nodes not Ready, nodes with an active remediation)
are maintained incrementally on each change, so a decision costs O(1) however large the
cluster. Writes the webhook makes itself are put in at once (`upsert_remediation`), so
the next decision, even in the same request, sees them; a stale watch event never
overwrites a newer object (resourceVersions are compared as integers when both are).
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from dataclasses import dataclass

from core.clock import parse_time
from core.kube import JSON, WatchEvent, dig
from core.remediation import (
    COOLDOWN_PHASES,
    REQUESTED_BY_ANNOTATION,
    Phase,
    annotation,
    decided,
    is_foreign,
)
from core.remediation_status import parse_status, stamp_ts
from webhook.kube import Resource
from webhook.policy import ClusterFacts, ExistingFacts, NodeFacts, Policy
from webhook.policy.decide import TERMINAL_PHASES


@dataclass(frozen=True)
class _Remediation:
    """What decisions need from one NodeRemediation, parsed once per change."""

    obj: JSON
    facts: ExistingFacts
    received_at: float | None
    counts_for_rate: bool


MAX_REMEMBERED_DELETIONS = 10_000


def _newer(new_rv: str, old_rv: str) -> bool:
    try:
        return int(new_rv) >= int(old_rv)
    except ValueError:
        return True


_get = dig


def ready_status(node: JSON) -> str | None:
    for cond in _get(node, "status", "conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


# The parts of a status the webhook's decisions read (parsed at every change of the object).
_FACT_KEYS = frozenset({"phase", "phaseSince", "fence", "approval", "alerts"})
_PLAN = frozenset({"plan"})


def plan_of(obj: JSON) -> JSON:
    """What the remediation was decided with: `status.plan` for a person's kubectl request
    (its spec is theirs, so none of it counts), else the spec the webhook wrote."""
    if is_foreign(obj):
        plan = parse_status(obj, _PLAN).plan
        return plan.to_json() if plan is not None else {}
    return obj.get("spec") or {}


def requester(obj: JSON) -> str:
    """The person who asked: the admission-checked annotation of a kubectl request, else
    the operator API's `spec.trigger.requestedBy` ("" for an alert)."""
    if is_foreign(obj):
        return annotation(obj, REQUESTED_BY_ANNOTATION)
    return str(_get(obj, "spec", "trigger", "requestedBy") or "")


def existing_facts(obj: JSON) -> ExistingFacts:
    """Facts about a stored NodeRemediation, from its spec and its status (read through
    `core.remediation_status`: a malformed part reads as absent)."""
    status = parse_status(obj, _FACT_KEYS)
    plan = plan_of(obj)
    latest: dict[str, tuple[str, float | None]] = {}
    for entry in status.alerts or ():  # oldest first, so the newest entry wins
        if entry.fingerprint:
            latest[entry.fingerprint] = (str(entry.status), stamp_ts(entry.starts_at))
    fence = status.fence
    return ExistingFacts(
        phase=status.phase,
        phase_since=stamp_ts(status.phase_since),
        # Any trace of an order counts: the webhook never cancels past one.
        fence_issued=fence is not None and bool(fence.issued_at or fence.order),
        source=str(_get(obj, "spec", "trigger", "source") or ""),
        approval_required=bool(plan.get("approvalRequired")),
        approved_at=stamp_ts(status.approval.approved_at) if status.approval else None,
        alerts=latest,
        dry_run=bool(plan.get("dryRun")),
        requested_by=requester(obj),
        four_eyes=bool(plan.get("fourEyes")),
        decided=decided(obj) or not is_foreign(obj),
    )


def _parse_remediation(obj: JSON) -> _Remediation:
    facts = existing_facts(obj)
    # A person's request says when it was made in a field they wrote: the API server's
    # creationTimestamp counts instead.
    when = _get(obj, "metadata", "creationTimestamp") if is_foreign(obj) else _get(
        obj, "spec", "trigger", "receivedAt")
    return _Remediation(
        obj=obj,
        facts=facts,
        received_at=parse_time(when),
        counts_for_rate=facts.decided and facts.phase not in (Phase.CANCELLED, Phase.REJECTED)
        and not facts.dry_run,
    )


class ClusterCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._synced_cond = threading.Condition(self._lock)
        self._nodes: dict[str, NodeFacts] = {}
        self._node_rv: dict[str, str] = {}
        self._node_uid: dict[str, str] = {}
        self._rems: dict[str, _Remediation] = {}
        # A finished remediation someone deleted (node -> its facts): its cooldown still
        # holds for the next request. In memory only: a restart of every replica forgets it.
        self._deleted: dict[str, ExistingFacts] = {}
        self._pause: tuple[bool, str] = (False, "")
        self._not_ready: set[str] = set()
        self._active: set[str] = set()
        self._unhealthy: set[str] = set()
        self._synced: dict[Resource, bool] = dict.fromkeys(Resource, False)
        self._rv: dict[Resource, str] = dict.fromkeys(Resource, "")

    # Feeding ----------------------------------------------------------------------

    def replace(self, resource: Resource, items: list[JSON], resource_version: str) -> None:
        """A fresh LIST: forget what was there, take these."""
        with self._lock:
            if resource is Resource.NODES:
                for name in list(self._nodes):
                    self._drop_node(name)
                for item in items:
                    self._put_node(item)
            elif resource is Resource.REMEDIATIONS:
                for name in list(self._rems):
                    self._drop_remediation(name)
                for item in items:
                    self._put_remediation(item)
            else:
                self._pause = _pause_state(items[0] if items else None)
            self._rv[resource] = resource_version
            self._synced[resource] = True
            self._synced_cond.notify_all()

    def apply(self, resource: Resource, event: WatchEvent) -> None:
        """One watch event (ADDED, MODIFIED, DELETED; BOOKMARK only moves the version)."""
        obj = event.object
        rv = str(_get(obj, "metadata", "resourceVersion") or "")
        with self._lock:
            if rv:
                self._rv[resource] = rv
            if event.type == "BOOKMARK":
                return
            name = str(_get(obj, "metadata", "name") or "")
            deleted = event.type == "DELETED"
            if resource is Resource.NODES:
                if deleted:
                    if self._node_uid.get(name) == _get(obj, "metadata", "uid"):
                        self._drop_node(name)
                elif _newer(rv, self._node_rv.get(name, "0")):
                    self._put_node(obj)
            elif resource is Resource.REMEDIATIONS:
                current = self._rems.get(name)
                if deleted:
                    if current and _get(current.obj, "metadata", "uid") == _get(
                        obj, "metadata", "uid"
                    ):
                        self._drop_remediation(name)
                        self._remember_deleted(name, current.facts)
                elif current is None or _newer(rv, _rv_of(current.obj)):
                    self._put_remediation(obj)
            else:
                self._pause = _pause_state(None if deleted else obj)

    def upsert_node(self, obj: JSON) -> None:
        """A Node read from the API server directly: kept if newer than the cached one.
        The watch's resourceVersion is left alone (it resumes from what it has seen)."""
        rv = str(_get(obj, "metadata", "resourceVersion") or "")
        name = str(_get(obj, "metadata", "name") or "")
        with self._lock:
            if name and _newer(rv, self._node_rv.get(name, "0")):
                self._put_node(obj)

    def unsynced(self, resource: Resource) -> None:
        """The watch broke; until the next LIST succeeds this view may be stale."""
        with self._lock:
            self._synced[resource] = False

    def upsert_remediation(self, obj: JSON) -> None:
        """Put in an object the webhook itself just wrote (ignored if already older)."""
        name = str(_get(obj, "metadata", "name") or "")
        with self._lock:
            current = self._rems.get(name)
            if current is None or _newer(_rv_of(obj), _rv_of(current.obj)):
                self._put_remediation(copy.deepcopy(obj))

    def forget_remediation(self, name: str, uid: str | None) -> None:
        """Drop `name` (only if it still has `uid`, when given): the webhook deleted it."""
        with self._lock:
            current = self._rems.get(name)
            if current and (uid is None or _get(current.obj, "metadata", "uid") == uid):
                self._drop_remediation(name)

    def _put_node(self, obj: JSON) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        self._nodes[name] = NodeFacts(name=name, labels=dict(labels), ready=ready_status(obj))
        self._node_rv[name] = str(meta.get("resourceVersion") or "0")
        self._node_uid[name] = str(meta.get("uid") or "")
        if self._nodes[name].ready == "True":
            self._not_ready.discard(name)
        else:
            self._not_ready.add(name)
        self._recount(name)

    def _drop_node(self, name: str) -> None:
        self._nodes.pop(name, None)
        self._node_rv.pop(name, None)
        self._node_uid.pop(name, None)
        self._not_ready.discard(name)
        self._recount(name)

    def _put_remediation(self, obj: JSON) -> None:
        name = str(_get(obj, "metadata", "name") or "")
        parsed = _parse_remediation(obj)
        self._rems[name] = parsed
        if parsed.facts.active:
            self._active.add(name)
        else:
            self._active.discard(name)
        self._recount(name)

    def _remember_deleted(self, name: str, facts: ExistingFacts) -> None:
        if facts.phase in COOLDOWN_PHASES and not facts.dry_run:
            if len(self._deleted) >= MAX_REMEMBERED_DELETIONS:
                self._deleted.pop(next(iter(self._deleted)))
            self._deleted[name] = facts

    def _drop_remediation(self, name: str) -> None:
        self._rems.pop(name, None)
        self._active.discard(name)
        self._recount(name)

    def _recount(self, name: str) -> None:
        # Only nodes that exist count: a remediation of a deleted node is not a node.
        if name in self._nodes and (name in self._not_ready or name in self._active):
            self._unhealthy.add(name)
        else:
            self._unhealthy.discard(name)

    # Reading ----------------------------------------------------------------------

    def synced(self) -> bool:
        with self._lock:
            return all(self._synced.values())

    def wait_synced(self, timeout_s: float) -> bool:
        with self._synced_cond:
            return self._synced_cond.wait_for(lambda: all(self._synced.values()), timeout_s)

    def resource_version(self, resource: Resource) -> str:
        with self._lock:
            return self._rv[resource]

    def facts(self, node: str) -> tuple[NodeFacts | None, ExistingFacts | None, ClusterFacts]:
        """Everything a decision about `node` needs, read consistently."""
        return self.facts_and_remediation(node)[0]

    def facts_and_remediation(
        self, node: str
    ) -> tuple[tuple[NodeFacts | None, ExistingFacts | None, ClusterFacts], JSON | None]:
        """`facts(node)` and the cached remediation they describe, read at one instant:
        a create that replaces a finished remediation must delete the very object its
        decision was taken on, never one a concurrent delivery created since."""
        with self._lock:
            rem = self._rems.get(node)
            cluster = ClusterFacts(
                total_nodes=len(self._nodes),
                unhealthy_nodes=len(self._unhealthy),
                recent_starts=tuple(
                    r.received_at
                    for r in self._rems.values()
                    if r.counts_for_rate and r.received_at is not None
                ),
                paused=self._pause[0],
                pause_reason=self._pause[1],
            )
            # Without an object, a finished one someone deleted still has its cooldown.
            existing = rem.facts if rem else self._deleted.get(node)
            facts = (self._nodes.get(node), existing, cluster)
            return facts, rem.obj if rem else None

    def deleted_facts(self, node: str) -> ExistingFacts | None:
        """The facts of the last finished remediation of `node` someone deleted, if any."""
        with self._lock:
            return self._deleted.get(node)

    def node_uid(self, node: str) -> str:
        with self._lock:
            return self._node_uid.get(node, "")

    def remediation(self, name: str) -> JSON | None:
        """The cached object. Read-only: cached objects are replaced, never changed, so
        callers must not mutate what they get (copy first)."""
        with self._lock:
            rem = self._rems.get(name)
            return rem.obj if rem else None

    def remediations(self) -> list[JSON]:
        """Every cached object, by name (read-only, like `remediation`)."""
        with self._lock:
            return [self._rems[n].obj for n in sorted(self._rems)]

    def phase_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(r.facts.phase or Phase.PENDING for r in self._rems.values())

    def storm_state(self, policy: Policy) -> tuple[int, int, int, bool]:
        """(unhealthy nodes, all nodes, the limit, whether storm protection is engaged)."""
        with self._lock:
            total, unhealthy = len(self._nodes), len(self._unhealthy)
        limit = policy.max_unhealthy.limit(total)
        return unhealthy, total, limit, unhealthy > limit

    def paused(self) -> tuple[bool, str]:
        with self._lock:
            return self._pause


def _rv_of(obj: JSON) -> str:
    return str(_get(obj, "metadata", "resourceVersion") or "0")


def _pause_state(obj: JSON | None) -> tuple[bool, str]:
    data = (obj or {}).get("data") or {}
    paused = str(data.get("paused", "")).strip().lower() in ("true", "yes", "1", "on")
    return paused, str(data.get("reason", ""))[:200]


__all__ = ["TERMINAL_PHASES", "ClusterCache", "existing_facts", "ready_status"]
