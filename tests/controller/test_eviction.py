"""Which pods the controller deletes after the out-of-service taint: exactly those pod GC
would (`gcTerminating`): the terminating ones; the node's side is the decision's."""

from __future__ import annotations

from controller.eviction import terminating


def test_only_terminating_pods_are_force_deleted() -> None:
    assert terminating({"metadata": {"name": "db-0", "deletionTimestamp": "2027-01-15T08:00:00Z"}, "spec": {}})
    # Not terminating: a pod that tolerates the node's NoExecute taints (the taint-eviction
    # controller left it), or one it has not reached yet: pod GC would leave it too.
    assert not terminating({"metadata": {"name": "agent-x"}, "spec": {"tolerations": [{"operator": "Exists"}]}})
    assert not terminating({"metadata": {"name": "bare"}})
    assert not terminating({})
