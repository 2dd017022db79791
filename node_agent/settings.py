"""The agent's settings: read once at start, frozen, validated, passed down.

Sources, later wins: defaults, the config file (YAML), environment variables
(`NODEWARDEN_AGENT_<FIELD>`), command-line options. Durations are `*_s` fields and accept
numbers or strings such as "15s", "1m30s", "250ms". The defaults and why they were chosen
are listed in docs/node-agent.md; `isolation_detect_s` is the bound the agent publishes.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core import timing
from core.names import DEFAULT_NAMESPACE
from core.settings import SettingsError, load_settings

ENV_PREFIX = "NODEWARDEN_AGENT_"
REAL_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
POD_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # as kubelet mounts it
DEFAULT_FALLBACK_REBOOT = 'sh -c "echo b > /proc/sysrq-trigger; systemctl reboot"'


class TooFewPeers(enum.StrEnum):
    FENCE = "fence"  # cut off from the API with nobody to ask: treat as isolated
    STAY_UP = "stay-up"  # never self-fence without a peer's word (node not self-fence capable)


class OutageQuorum(enum.StrEnum):
    KNOWN_PEERS = "known-peers"  # outage only if more than half of ALL known peers say so
    ANSWERING_PEERS = "answering-peers"  # medik8s' rule: more than half of those answering


class ControlPlaneMode(enum.StrEnum):
    AUTO = "auto"  # from the node's node-role.kubernetes.io/control-plane label
    TRUE = "true"
    FALSE = "false"


@dataclass(frozen=True)
class AgentSettings:
    node_name: str
    kubeconfig: str | None = None
    service_account_dir: str = POD_SERVICE_ACCOUNT_DIR  # without kubeconfig
    namespace: str = DEFAULT_NAMESPACE

    # Watchdog.
    watchdog_path: str = "/dev/watchdog"
    watchdog_timeout_s: float = 15.0
    watchdog_feed_interval_s: float | None = None  # default: effective timeout / 3
    watchdog_failure_grace_s: float | None = None  # default: effective timeout
    reboot_fallback_enabled: bool = False
    reboot_fallback_command: str = DEFAULT_FALLBACK_REBOOT
    command_timeout_s: float = 30.0
    kubelet_restart_command: str = "systemctl restart kubelet"
    kubelet_restart_timeout_s: float = 60.0

    # API reachability.
    api_check_interval_s: float = 5.0
    api_check_timeout_s: float = 2.0
    api_failure_threshold: int = 3
    lease_duration_s: float | None = None  # default: threshold x check interval

    # Peers.
    peer_request_timeout_s: float = 2.0
    peer_api_timeout_s: float = 1.0
    isolation_timeout_s: float = 10.0
    peer_refresh_interval_s: float = 300.0
    peer_cache_file: str | None = "/var/lib/nodewarden/peers.json"  # "{node}": the node's name
    min_peers: int = 1
    too_few_peers_action: str = TooFewPeers.FENCE.value
    outage_quorum: str = OutageQuorum.KNOWN_PEERS.value
    control_plane: str = ControlPlaneMode.AUTO.value
    peers: list[str] = field(default_factory=list)  # static "name=url" entries

    # Orders and identity.
    order_public_keys_file: str = "/etc/nodewarden/order-keys/public.pem"
    peer_secret_file: str = "/etc/nodewarden/peer-secret/secret"
    max_clock_skew_s: float = 30.0
    boot_id_source: str = "file:" + REAL_BOOT_ID_PATH  # or "node-status"

    # Serving.
    listen: str = "0.0.0.0:9471"
    advertise_url: str | None = None
    metrics_listen: str | None = None  # None: /metrics on the peer listener
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    peer_ca_file: str | None = None  # CA to verify https peers; None: system CAs
    max_request_bytes: int = 16384
    max_concurrent_requests: int = 32
    request_read_timeout_s: float = 5.0

    loop_tick_s: float = 0.5
    log_level: str = "INFO"

    # Derived values ----------------------------------------------------------------

    @property
    def too_few_peers(self) -> TooFewPeers:
        return TooFewPeers(self.too_few_peers_action)

    @property
    def quorum(self) -> OutageQuorum:
        return OutageQuorum(self.outage_quorum)

    @property
    def control_plane_mode(self) -> ControlPlaneMode:
        return ControlPlaneMode(self.control_plane)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_host_port(self.listen, "listen")

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def boot_id_file(self) -> str | None:
        """The boot id file, or None when the boot id comes from the Node's status."""
        return self.boot_id_source[5:] if self.boot_id_source.startswith("file:") else None

    def feed_interval_s(self, effective_timeout_s: float) -> float:
        if self.watchdog_feed_interval_s is not None:
            return self.watchdog_feed_interval_s
        return effective_timeout_s / 3.0

    def failure_grace_s(self, effective_timeout_s: float) -> float:
        if self.watchdog_failure_grace_s is not None:
            return self.watchdog_failure_grace_s
        return effective_timeout_s

    @property
    def peer_cache_max_age_s(self) -> float:
        """A saved peer list older than this is not used at start."""
        return 12 * self.peer_refresh_interval_s

    @property
    def lease_duration(self) -> float:
        if self.lease_duration_s is not None:
            return self.lease_duration_s
        return self.api_failure_threshold * self.api_check_interval_s

    @property
    def check_duration_max_s(self) -> float:
        """One API check is two calls (read the NodeRemediation, renew the Lease)."""
        return 2 * self.api_check_timeout_s

    @property
    def feed_grant_s(self) -> float:
        """How long one decision lets the feeder go on feeding. A live loop renews the
        grant after every operation; a stuck loop stops the feeding by itself."""
        return max(self.check_duration_max_s, self.peer_request_timeout_s) + 2 * self.loop_tick_s

    @property
    def isolation_detect_s(self) -> float:
        """Worst case from the agent's last Lease renewal (or the moment a fence order
        was stored in the API, whichever is later) to its last watchdog feed, when it is
        cut off. Published on the Node; computed by the shared timing model
        (core.timing), derived in docs/node-agent.md."""
        return timing.isolation_detect_s(timing.from_object(timing.AgentTimings, self))


def parse_host_port(value: str, field_name: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(field_name, f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def load_agent_settings(
    file_values: Mapping[str, object],
    env: Mapping[str, str],
    cli_values: Mapping[str, object],
) -> AgentSettings:
    """Defaults < file < environment < command line; then validated."""
    fields = {f.name for f in dataclasses.fields(AgentSettings)}
    cli = {k: v for k, v in cli_values.items() if v is not None}
    shadowed = {ENV_PREFIX + k.upper() for k in cli if k in fields}
    env_left = {k: v for k, v in env.items() if k not in shadowed}
    settings = load_settings(AgentSettings, {**file_values, **cli}, env_left, ENV_PREFIX)
    validate(settings)
    return settings


def validate(s: AgentSettings) -> None:
    """Raise SettingsError naming the first field that makes no sense."""
    if not s.node_name:
        raise SettingsError("node_name", "required (--node-name or NODEWARDEN_AGENT_NODE_NAME)")
    _enum(s.too_few_peers_action, TooFewPeers, "too_few_peers_action")
    _enum(s.outage_quorum, OutageQuorum, "outage_quorum")
    _enum(s.control_plane, ControlPlaneMode, "control_plane")
    positive = (
        "watchdog_timeout_s",
        "api_check_interval_s",
        "api_check_timeout_s",
        "peer_request_timeout_s",
        "peer_api_timeout_s",
        "isolation_timeout_s",
        "peer_refresh_interval_s",
        "command_timeout_s",
        "kubelet_restart_timeout_s",
        "request_read_timeout_s",
        "loop_tick_s",
    )
    for name in positive:
        value = getattr(s, name)
        if not (value > 0 and math.isfinite(value)):
            raise SettingsError(name, f"must be a positive duration, got {value!r}")
    if s.api_failure_threshold < 1:
        raise SettingsError("api_failure_threshold", "must be at least 1")
    if s.min_peers < 0:
        raise SettingsError("min_peers", "must not be negative")
    if s.watchdog_feed_interval_s is not None and not (
        0 < s.watchdog_feed_interval_s <= s.watchdog_timeout_s / 2
    ):
        raise SettingsError(
            "watchdog_feed_interval_s",
            f"must be above 0 and at most half the watchdog timeout ({s.watchdog_timeout_s}s)",
        )
    if s.peer_api_timeout_s >= s.peer_request_timeout_s:
        raise SettingsError(
            "peer_api_timeout_s",
            "must be shorter than peer_request_timeout_s (a peer answers after its API read)",
        )
    if s.lease_duration_s is not None and s.lease_duration_s < s.api_check_interval_s:
        raise SettingsError("lease_duration_s", "must be at least api_check_interval_s")
    if s.max_request_bytes < 1024 or s.max_concurrent_requests < 1:
        raise SettingsError("max_request_bytes", "request limits too small")
    parse_host_port(s.listen, "listen")
    if s.metrics_listen:
        parse_host_port(s.metrics_listen, "metrics_listen")
    if s.advertise_url is not None:
        parts = urlsplit(s.advertise_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError("advertise_url", f"expected http(s)://host:port, got {s.advertise_url!r}")
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise SettingsError("tls_cert_file", "tls_cert_file and tls_key_file go together")
    if s.boot_id_source != "node-status" and not (
        s.boot_id_source.startswith("file:") and len(s.boot_id_source) > 5
    ):
        raise SettingsError("boot_id_source", f"expected file:<path> or node-status, got {s.boot_id_source!r}")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError("log_level", f"expected DEBUG, INFO, WARNING or ERROR, got {s.log_level!r}")
    for entry in s.peers:
        name, sep, url = entry.partition("=")
        if not sep or not name or urlsplit(url).scheme not in ("http", "https"):
            raise SettingsError("peers", f"expected name=http(s)://host:port, got {entry!r}")


def _enum(value: str, enum_type: type[enum.StrEnum], field_name: str) -> None:
    allowed = [e.value for e in enum_type]
    if value not in allowed:
        raise SettingsError(field_name, f"expected one of {', '.join(allowed)}, got {value!r}")
