"""The NodeRemediationRecord contract: one archived remediation, the one owner of its shape.

A NodeRemediation is one object per node, replaced by the node's next remediation. Before
the webhook deletes a finished one it writes a `NodeRemediationRecord`
(`nodewarden.io/v1alpha1`, cluster-scoped, plural `noderemediationrecords`, short name
`nremrec`) holding the remediation's final spec, status and annotations: the phase
history, the alerts, the approval and the cancellation, i.e. the audit trail. The webhook
writes records and prunes them to the newest N per node; the kubectl plugin reads them.
The CRD is `helm/nodewarden/crds/noderemediationrecords.yaml`; the stored contract is
docs/noderemediation.md ("History").

Naming and edge cases, once:
- name `<node>-<first 8 characters of the remediation's uid>`; a node name long enough to
  make that exceed 253 characters is cut. The uid in `remediation.uid` is the identity:
  a record found under the name with another uid is not this remediation's.
- label `nodewarden.io/node` selects a node's records. A label value holds at most 63
  characters, so a longer node name (or one a label cannot spell) is labelled with
  `sha256-` and the first 40 hex digits of its hash; `node_label_value` is the one rule
  both sides use.
- "newest" is the remediation's `creationTimestamp` (then the archive time, then the
  name): the order in which the node was remediated, whatever order records were written.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from core import names
from core.clock import rfc3339

JSON = dict[str, Any]

RECORD_KIND = "NodeRemediationRecord"
RECORD_PLURAL = "noderemediationrecords"
RECORD_SHORT_NAMES = ("nremrec",)
LABEL_NODE = names.ANNOTATION_PREFIX + "node"
DEFAULT_KEEP_PER_NODE = 20
UID_PREFIX = 8
MAX_NAME = 253
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def node_label_value(node: str) -> str:
    """The value of `nodewarden.io/node` on the records of `node`."""
    if len(node) <= 63 and _LABEL_VALUE.match(node):
        return node
    return "sha256-" + hashlib.sha256(node.encode()).hexdigest()[:40]


def node_selector(node: str) -> str:
    """The label selector that lists the records of `node`."""
    return f"{LABEL_NODE}={node_label_value(node)}"


def record_name(node: str, uid: str) -> str:
    suffix = "-" + uid[:UID_PREFIX].lower()
    return node[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


def record_body(remediation: JSON, archived_at: float) -> JSON:
    """The record of a finished `remediation` (as the API server returned it), archived
    at `archived_at` (epoch seconds)."""
    meta = remediation.get("metadata") or {}
    spec = remediation.get("spec") or {}
    status = remediation.get("status") or {}
    node = str(spec.get("nodeName") or meta.get("name") or "")
    uid = str(meta.get("uid") or "")
    annotations = {
        str(k): str(v)
        for k, v in (meta.get("annotations") or {}).items()
        if str(k).startswith(names.ANNOTATION_PREFIX)
    }
    return {
        "apiVersion": names.API_VERSION,
        "kind": RECORD_KIND,
        "metadata": {
            "name": record_name(node, uid),
            "labels": {LABEL_NODE: node_label_value(node)},
        },
        "remediation": {
            "nodeName": node,
            "uid": uid,
            "createdAt": str(meta.get("creationTimestamp") or ""),
            "archivedAt": rfc3339(archived_at),
            "phase": str(status.get("phase") or ""),
            "annotations": annotations,
            "spec": spec,
            "status": status,
        },
    }


def record_uid(record: JSON) -> str:
    """The uid of the remediation a record archives."""
    return str((record.get("remediation") or {}).get("uid") or "")


def same_state(a: JSON, b: JSON) -> bool:
    """Whether two records hold the same state of one remediation (the archive time aside)."""

    def state(r: JSON) -> JSON:
        return {k: v for k, v in (r.get("remediation") or {}).items() if k != "archivedAt"}

    return state(a) == state(b)


def _newest_first_key(record: JSON) -> tuple[str, str, str]:
    rem = record.get("remediation") or {}
    name = str((record.get("metadata") or {}).get("name") or "")
    return (str(rem.get("createdAt") or ""), str(rem.get("archivedAt") or ""), name)


def newest_first(records: list[JSON]) -> list[JSON]:
    """`records` ordered newest remediation first (RFC 3339 UTC strings sort as times)."""
    return sorted(records, key=_newest_first_key, reverse=True)


def beyond_retention(records: list[JSON], keep: int) -> list[JSON]:
    """The records to delete so that the newest `keep` remain (keep >= 1)."""
    if keep < 1:
        raise ValueError("keep at least one record")
    return newest_first(records)[keep:]
