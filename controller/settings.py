"""The controller's settings, read once from `NODEWARDEN_CONTROLLER_*` variables, and the
start-up check that refuses timings under which fencing could be unsafe.

The check and the worst case it states come from the shared timing model (core.timing),
fed with the controller's own settings and the agents' (`agent_config_file`, the agents'
config file that the chart mounts; without it, the agents' defaults). The agents publish
their own bound on their Node and the evidence rules use that, so a node whose agent runs
other settings is still judged by its own figures; the start-up check catches the
settings the controller must agree with (`silence_settle_s` against the agents'
`peer_api_timeout_s`, the order lifetime against their worst case).

Every timing below is a cluster duration; tests scale them all down together.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from core import names, timing
from core.settings import SettingsError, load_settings, read_config_file

ENV_PREFIX = "NODEWARDEN_CONTROLLER_"
TRUST_AGENT_WRITES = ("policy", "unverified", "never")
AGENT_WRITES_POLICY = names.AGENT_WRITES_POLICY  # the ValidatingAdmissionPolicy and its binding


@dataclass(frozen=True)
class ControllerSettings:
    # Kubernetes and identity.
    kubeconfig: str | None = None
    namespace: str = names.DEFAULT_NAMESPACE  # leader Lease and agent Leases live here
    event_namespace: str = "default"
    pause_configmap: str = "nodewarden-control"  # the operators' pause switch (data.paused: "true")
    identity: str | None = None  # leader-election identity; default host name + pid
    kube_request_timeout_s: float = 5.0
    # Keys and secrets (files).
    signing_key_file: str = "/etc/nodewarden/fence-order/private.pem"
    peer_secret_file: str = "/etc/nodewarden/peer/secret"
    peer_ca_file: str | None = None  # CA that signed the agents' certificates, for https peer endpoints
    # Leader election (client-go defaults).
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    # How long a kubelet Lease stays fresh; None: the Lease's own leaseDurationSeconds.
    node_lease_duration_s: float | None = None
    # The reconcile loop.
    workers: int = 16  # remediations handled in parallel
    resync_s: float = 2.0  # each active remediation is looked at least this often
    peer_timeout_s: float = 3.0
    peers_to_ask: int = 3
    # Fencing safety.
    safety_margin_s: float = 2.0  # added to every fence deadline (2 x watchdog already doubles its bound)
    silence_settle_s: float = 2.0  # > the agents' peer_api_timeout_s: a peer's live read in flight when the order was stored
    # Recovery waits until nodewarden's fencing taint has been on the node this long (plus
    # max_clock_skew_s): > the kubelets' Lease renew interval (a quarter of the node Lease
    # duration, 10 s), so that a kubelet that read its pods before the taint was there is
    # seen renewing its Lease first (controller/after_fence.py).
    fencing_taint_settle_s: float = 11.0
    max_clock_skew_s: float = 1.0  # between this controller's clock and any node's (nodes run NTP)
    order_ttl_s: float = 1800.0  # fence orders expire after this
    ack_timeout_s: float = 60.0  # an agent that reaches the API must acknowledge within this
    fence_timeout_s: float = 900.0  # give up on self-fencing evidence after this: escalate
    # Whether agents' own reports (status.agentReport) may count as evidence: "policy" (only
    # while the ValidatingAdmissionPolicy and binding nodewarden-agent-writes exist, checked
    # at start and every trust_check_interval_s), "unverified" (trusted without a check:
    # only where agents' writes are restricted some other way), "never".
    trust_agent_writes: str = "policy"
    trust_check_interval_s: float = 60.0
    # Escalation.
    fence_inventory_file: str = ""  # the policy file whose `fenceAgents` names each node's BMC
    fence_agent_command: str = ""  # e.g. "fence_ipmilan --ip {node}-bmc ... --action off"
    fence_agent_timeout_s: float = 60.0
    fence_agent_attempts: int = 3
    escalation_timeout_s: float = 3600.0  # operator confirmation must come within this
    # Other phases.
    confirm_timeout_s: float = 300.0
    # A person's request (operator API or kubectl) waits this long in Confirming before its
    # fence order, so that a cancel still has a chance.
    operator_grace_s: float = 5.0
    approval_timeout_s: float = 3600.0
    kubelet_restart_first: bool = False  # try restart-kubelet when the agent is reachable
    kubelet_restart_wait_s: float = 60.0
    recover_timeout_s: float = 120.0
    # Once the out-of-service taint is on a fenced node that is not Ready, force-delete its
    # terminating pods (pod GC's rule, controller/eviction.py) instead of waiting for pod
    # GC's next pass (every 20 s). Needs `list` and `delete` on pods (the chart grants them
    # when this is on).
    delete_pods_after_taint: bool = True
    # Kubernetes' pod GC period (fixed at 20 s): after the taint, the deletion looks again
    # once a second for as long for pods the taint-eviction controller had not marked yet.
    pod_gc_period_s: float = 20.0
    node_not_back_after_s: float = 1800.0  # AwaitingNodeReady longer than this: event + metric
    # The agents' config file (YAML, as the agents read it): their timings, for the start-up check.
    agent_config_file: str | None = None
    # Serving metrics.
    metrics_bind: str = "0.0.0.0:9103"
    log_level: str = "INFO"

    @property
    def identity_name(self) -> str:
        return self.identity or f"{socket.gethostname()}-{os.getpid()}"


def agent_timings(s: ControllerSettings) -> tuple[timing.AgentTimings, str]:
    """The agents' timings from `agent_config_file` (other keys ignored), and where they
    came from; the agents' defaults without one."""
    if not s.agent_config_file:
        return timing.AgentTimings(), "the agents' default settings (agent_config_file not set)"
    known = {f.name for f in dataclasses.fields(timing.AgentTimings)}
    values = {k: v for k, v in ((str(k).replace("-", "_"), v) for k, v in read_config_file(s.agent_config_file).items())
              if k in known}
    try:
        return load_settings(timing.AgentTimings, values), f"the agents' settings in {s.agent_config_file}"
    except SettingsError as exc:
        raise SettingsError("agent_config_file", f"{s.agent_config_file}: {exc}") from None


def controller_timings(s: ControllerSettings) -> timing.ControllerTimings:
    return timing.from_object(timing.ControllerTimings, s)


def worst_case_summary(s: ControllerSettings, agent: timing.AgentTimings) -> str:
    """The fence deadlines these settings give, as the start-up log and refusals state them."""
    c = controller_timings(s)
    d = timing.isolation_detect_s(agent)
    return (f"an unacknowledged fence is proven {timing.fence_deadline_s(timing.AGENT_HEARTBEAT_STALE, agent, c):g} s "
            f"after the agent's last heartbeat (D={d:g} + 2 x W={agent.watchdog_timeout_s:g} + "
            f"margin={c.safety_margin_s:g} + skew={c.max_clock_skew_s:g}); an acknowledged one "
            f"{timing.fence_deadline_s(timing.ACKNOWLEDGED_WATCHDOG, agent, c):g} s after the last feed; "
            f"an isolated node is reset within {timing.isolation_to_reset_s(agent):g} s of its last heartbeat")


def unsafe_timings(s: ControllerSettings, agent: timing.AgentTimings | None = None) -> list[str]:
    """Why these settings could make fencing unsafe (empty when they are sound), judged
    with the agents' timings `agent` (default: the agents' defaults)."""
    agent = agent or timing.AgentTimings()
    worst = timing.worst_case_fence_s(agent, controller_timings(s))
    problems = []
    if s.safety_margin_s <= 0:
        problems.append(f"safety_margin_s must be above 0 (got {s.safety_margin_s:g}): it absorbs a "
                        "watchdog that fires late and the time between our observations")
    if s.max_clock_skew_s <= 0:
        problems.append(f"max_clock_skew_s must be above 0 (got {s.max_clock_skew_s:g}): no two clocks "
                        "agree exactly, and every agent-side time is compared with ours")
    if s.silence_settle_s <= agent.peer_api_timeout_s:
        problems.append(
            f"silence_settle_s={s.silence_settle_s:g}s must exceed the agents' peer_api_timeout_s="
            f"{agent.peer_api_timeout_s:g}s: a peer's live read that began before the order was stored "
            "may still end in \"no order for you\" that long after, and peer silence would count it out")
    renew = 0.25 * (s.node_lease_duration_s or 40.0)
    if s.fencing_taint_settle_s <= renew:
        problems.append(
            f"fencing_taint_settle_s={s.fencing_taint_settle_s:g}s must exceed the kubelets' Lease renew interval, "
            f"{renew:g}s (a quarter of the node Lease duration): a kubelet that came back on a new boot and read "
            "its pods just before the fencing taint was added may not have renewed its Lease yet, and recovery "
            "would let its old pods' replacements start while it starts them again")
    if not s.retry_period_s < s.renew_deadline_s < s.lease_duration_s:
        problems.append(
            "leader election needs retry_period_s < renew_deadline_s < lease_duration_s "
            f"(got {s.retry_period_s:g} < {s.renew_deadline_s:g} < {s.lease_duration_s:g}); "
            "otherwise two replicas can act at once")
    elif s.lease_duration_s - s.renew_deadline_s < s.retry_period_s:
        problems.append(
            f"a leader that fails to renew stops acting after renew_deadline_s={s.renew_deadline_s:g}s and a "
            f"standby may take over after lease_duration_s={s.lease_duration_s:g}s (by its own monotonic "
            f"clock); the gap must be at least retry_period_s={s.retry_period_s:g}s")
    if s.order_ttl_s <= s.fence_timeout_s:
        problems.append(
            f"order_ttl_s={s.order_ttl_s:g}s must exceed fence_timeout_s={s.fence_timeout_s:g}s: an "
            "order that expires while its fence deadline is still being awaited could leave a cut-off "
            "agent that never learned it running while the controller counts on it having fenced")
    if s.order_ttl_s <= worst:
        problems.append(
            f"order_ttl_s={s.order_ttl_s:g}s must exceed the worst-case fence deadline, {worst:g}s: a "
            "cut-off agent may need the order that long after it was stored")
    return problems


def settings_from_env(env: Mapping[str, str] | None = None) -> ControllerSettings:
    source = os.environ if env is None else env
    settings = load_settings(ControllerSettings, env=source, env_prefix=ENV_PREFIX)
    if settings.workers < 1:
        raise SettingsError("workers", "must be at least 1")
    if settings.fence_agent_attempts < 1:
        raise SettingsError("fence_agent_attempts", "must be at least 1")
    if settings.trust_agent_writes not in TRUST_AGENT_WRITES:
        raise SettingsError("trust_agent_writes", f"expected one of {', '.join(TRUST_AGENT_WRITES)}, "
                            f"got {settings.trust_agent_writes!r}")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError("log_level", f"expected DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}")
    return settings
