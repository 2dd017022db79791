"""One timing model behind every number nodewarden states: the isolation-to-reset bound
the agent publishes, the fence deadline of each evidence rule the controller waits for,
and the expected recovery timeline, milestone by milestone, from the agent's, the
controller's, Kubernetes' and Prometheus/Alertmanager's settings.

`inputs` holds the settings it reads (shipped defaults), `model` the pure computations,
`report` the text the `what-if` command prints:

    python -m core.timing what-if --watchdog_timeout_s=10s --rule_evaluation_interval_s=30s

The agent's published bound, the controller's start-up check, the benchmark's predictions
and the docs' tables all come from here.
"""

from core.timing.inputs import (
    AgentTimings,
    AlertingTimings,
    ControllerTimings,
    KubernetesTimings,
    TimingInputs,
    from_object,
    with_overrides,
)
from core.timing.model import (
    ACKNOWLEDGED_WATCHDOG,
    AGENT_HEARTBEAT_STALE,
    MILESTONES,
    Prediction,
    Timeline,
    fence_deadline_s,
    isolation_detect_s,
    isolation_to_reset_s,
    predict,
    timeline,
    worst_case_fence_s,
)

__all__ = [
    "ACKNOWLEDGED_WATCHDOG", "AGENT_HEARTBEAT_STALE", "MILESTONES", "AgentTimings", "AlertingTimings",
    "ControllerTimings", "KubernetesTimings", "Prediction", "Timeline", "TimingInputs", "fence_deadline_s",
    "from_object", "isolation_detect_s", "isolation_to_reset_s", "predict", "timeline", "with_overrides",
    "worst_case_fence_s",
]
