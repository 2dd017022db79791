"""The loops one kube-controller-manager process runs: a fresh set of controllers (empty
memories) and the period of each, built from a `ControllerConfig`. `ControllerManager`
calls this every time the process (re)starts, so a restart forgets every timer.
"""

from __future__ import annotations

from .attachdetach import AttachDetachController
from .controller_config import ControllerConfig
from .controller_manager import Loop
from .disruption import DisruptionController
from .nodelifecycle import NodeLifecycleController
from .podgc import PodGCController
from .serviceaccounts import ServiceAccountsController
from .statefulset import StatefulSetController
from .tainteviction import TaintEvictionController
from .workloads import WorkloadControllers


def controller_manager_loops(cfg: ControllerConfig) -> tuple[list[Loop], dict[str, object]]:
    """A fresh kube-controller-manager process: new controllers, empty memories."""
    t = cfg.timings
    lifecycle, eviction, gc = NodeLifecycleController(cfg), TaintEvictionController(cfg), PodGCController(cfg)
    adc, sts, workloads = AttachDetachController(cfg), StatefulSetController(cfg), WorkloadControllers(cfg)
    disruption, accounts = DisruptionController(cfg), ServiceAccountsController(cfg)
    loops: list[Loop] = [
        (t.node_monitor_period_s, lifecycle.run), (t.controller_period_s, lifecycle.tainting_pass),
        (t.controller_period_s, eviction.run), (t.pod_gc_period_s, gc.run), (t.controller_period_s, adc.run),
        (t.controller_period_s, sts.run), (t.controller_period_s, workloads.run),
        (t.controller_period_s, disruption.run), (t.controller_period_s, accounts.run)]
    return loops, {"nodelifecycle": lifecycle, "tainteviction": eviction, "podgc": gc, "attachdetach": adc,
                   "statefulset": sts, "workloads": workloads, "disruption": disruption,
                   "serviceaccounts": accounts}
