"""Known, fixed bugs put back into one test world, to prove the chaos tools on a product
known to be broken (the minimizer's proof: `make chaos MINIMIZE=19
REINTRODUCE=forged-report-trusted`, docs/results.md). Nothing
here touches a product code path active by default: each bug is a test world built the
way the product was before its fix, inside the process that runs the world.

    with reintroduced("forged-report-trusted") as controller_overrides:
        run_schedule(schedule, out, controller_overrides=controller_overrides)

Bugs (BUGS):

- `forged-report-trusted` (issue 13, fencing trust): agents' writes are not restricted
  to their own node (the chart's ValidatingAdmissionPolicy `nodewarden-agent-writes` is
  left out of the world) and the controller counts an agent's report as evidence without
  checking that they are (`trust_agent_writes=unverified`), as before the fix. Another
  node's agent credential can then write `agentReport.lastFeedAt` for a node whose agent
  is stopped and whose kubelet is stopped: the controller proves AcknowledgedWatchdog at
  once and taints a machine that still runs its pods (chaos seeds 3 and 19 on the code
  before the fix; `test_another_node_s_credential_forging_an_agent_report_gets_no_taint`
  in tests/chaos/test_found.py is the hand-minimized scenario).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import harness.world
from harness.chart import ADMISSION_KINDS, apply_security

BUGS = ("forged-report-trusted",)


def _security_without_admission(api: Any, policy_doc: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's RBAC as it is, without its admission policy."""
    docs = apply_security(api, policy_doc)
    for doc in docs:
        if doc["kind"] in ADMISSION_KINDS:
            rt = api.types.by_kind(doc["apiVersion"], doc["kind"])
            api.registry.delete(rt, doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
    return [d for d in docs if d["kind"] not in ADMISSION_KINDS]


@contextmanager
def reintroduced(bug: str) -> Iterator[dict[str, str]]:
    """Within the block, worlds started in this process carry `bug`; yields the controller
    settings to start their controllers with."""
    if bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r}: one of {', '.join(BUGS)}")
    saved = harness.world.apply_security
    harness.world.apply_security = _security_without_admission
    try:
        yield {"TRUST_AGENT_WRITES": "unverified"}
    finally:
        harness.world.apply_security = saved
