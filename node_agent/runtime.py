"""Wiring: every component of the agent is built and started here, and only here.

`build_runtime` takes the settings and the seams (clock, API, watchdog opener, peer
client, command runner, metrics registry) so tests can build a whole agent with fakes
and a real HTTP server on 127.0.0.1:0. `Runtime.start()` starts the server, the
publisher, the feeder and the decision loop; `Runtime.stop()` stops them in reverse and
closes the watchdog, disarming it only if `Agent.may_disarm`.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from core.clock import Clock
from core.fence_order import OrderKey
from core.peer_client import PeerClient
from node_agent import __version__
from node_agent.agent import Agent
from node_agent.apicheck import ApiChecker
from node_agent.boot import BootIdentity
from node_agent.commands import CommandRunner
from node_agent.commitment import Commitment
from node_agent.feeder import FeederThread, WatchdogKeeper, WatchdogOpener
from node_agent.fencing import FallbackSettings, Fencer
from node_agent.isolation import OrderSource
from node_agent.kube import AgentApi, NodeFacts
from node_agent.metrics import AgentMetrics
from node_agent.orders import OrderDesk, refused
from node_agent.peer_cache import PeerCache
from node_agent.peers import NodeViewClient, PeerDirectory, PeerPoll
from node_agent.publisher import Publisher
from node_agent.server import PeerServer, ServerSettings
from node_agent.service import PeerService, ServiceSettings
from node_agent.settings import AgentSettings, parse_host_port
from node_agent.watchdog import LinuxWatchdog

log = logging.getLogger(__name__)
_ANY_HOST = ("", "0.0.0.0", "::")


def watchdog_opener(settings: AgentSettings, fallback_enabled: bool) -> WatchdogOpener | None:
    """The opener for the configured device, or None (reported loudly) when it is absent."""
    path = settings.watchdog_path
    if not Path(path).exists():
        log.critical(
            "NO WATCHDOG at %s: this node is published as NOT self-fence capable; %s",
            path,
            "fences use the software reboot fallback"
            if fallback_enabled
            else "it cannot fence itself (reboot fallback disabled)",
        )
        return None
    timeout = settings.watchdog_timeout_s
    return lambda: LinuxWatchdog.open(path, timeout)


def agent_state_dir(s: AgentSettings) -> Path | None:
    """The agent's state directory on the node's disk: the folder of `peer_cache_file`,
    with `{node}` replaced by the node's name as the peer cache does (agents that share a
    disk, as in the simulator, each get their own replay state and self-fence markers)."""
    if not s.peer_cache_file:
        return None
    return Path(s.peer_cache_file.replace("{node}", s.node_name)).parent


@dataclass
class Seams:
    clock: Clock
    api: AgentApi
    opener: WatchdogOpener | None
    peer_client: PeerClient
    runner: CommandRunner
    boot: BootIdentity
    public_keys: list[OrderKey]
    secret: bytes
    registry: CollectorRegistry
    poll_client: NodeViewClient | None = None  # who the poll asks; default: peer_client


class Runtime:
    def __init__(self, settings: AgentSettings, seams: Seams) -> None:
        s = settings
        self.settings = s
        self.seams = seams
        clock = seams.clock
        self.started_at = clock.now()
        self.metrics = metrics = AgentMetrics(seams.registry)
        metrics.info.info({"version": __version__, "node": s.node_name})
        self.keeper = WatchdogKeeper(seams.opener, clock, metrics, s.watchdog_timeout_s)
        self.fencer = Fencer(
            node=s.node_name,
            keeper=self.keeper,
            clock=clock,
            metrics=metrics,
            fallback=FallbackSettings(
                s.reboot_fallback_enabled, s.reboot_fallback_command, s.command_timeout_s, s.failure_grace_s
            ),
            runner=seams.runner,
            boot_id=lambda: seams.boot.boot_id,
        )
        self.desk = OrderDesk(
            node=s.node_name,
            public_keys=seams.public_keys,
            boot=seams.boot,
            clock=clock,
            fencer=self.fencer,
            metrics=metrics,
            max_clock_skew_s=s.max_clock_skew_s,
            runner=seams.runner,
            kubelet_restart_command=s.kubelet_restart_command,
            kubelet_restart_timeout_s=s.kubelet_restart_timeout_s,
        )
        self.checker = ApiChecker(
            api=seams.api,
            node=s.node_name,
            namespace=s.namespace,
            clock=clock,
            metrics=metrics,
            timeout_s=s.api_check_timeout_s,
            lease_duration_s=s.lease_duration,
        )
        cache = (
            PeerCache(s.peer_cache_file, s.node_name, clock, s.peer_cache_max_age_s)
            if s.peer_cache_file
            else None
        )
        self.directory = PeerDirectory(s.node_name, s.peers, cache)
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="peer-ask")
        self.poll = PeerPoll(
            node=s.node_name,
            client=seams.poll_client or seams.peer_client,
            directory=self.directory,
            clock=clock,
            metrics=metrics,
            executor=self.executor,
            request_timeout_s=s.peer_request_timeout_s,
            on_order=self._relayed_order,
            collect_s=s.loop_tick_s,
        )
        self.service = PeerService(
            settings=ServiceSettings(
                node=s.node_name,
                version=__version__,
                peer_api_timeout_s=s.peer_api_timeout_s,
                peer_request_timeout_s=s.peer_request_timeout_s,
                max_clock_skew_s=s.max_clock_skew_s,
            ),
            api=seams.api,
            checker=self.checker,
            desk=self.desk,
            directory=self.directory,
            client=seams.peer_client,
            public_keys=seams.public_keys,
            clock=clock,
            boot_id=lambda: seams.boot.boot_id,
            fencing=lambda: self.fencer.record is not None,
            self_fence_capable=lambda: self.publisher.self_fence_capable(),
        )
        host, port = s.listen_host_port
        state_dir = agent_state_dir(s)
        self.server = PeerServer(
            (host, port),
            service=self.service,
            settings=ServerSettings(
                secret=seams.secret,
                max_clock_skew_s=s.max_clock_skew_s,
                max_request_bytes=s.max_request_bytes,
                max_concurrent_requests=s.max_concurrent_requests,
                read_timeout_s=s.request_read_timeout_s,
                serve_peer_api=True,
                node=s.node_name,
                replay_file=str(state_dir / "peer-replay.json") if state_dir else None,
            ),
            clock=clock,
            metrics=metrics,
            registry=seams.registry if s.metrics_listen is None else None,
            tls=_server_tls(s),
            known_clients=self.directory.hosts,
        )
        self.commitment = Commitment(state_dir, lambda: seams.boot.boot_id)
        self.publisher = Publisher(
            settings=s,
            api=seams.api,
            checker=self.checker,
            boot=seams.boot,
            keeper=self.keeper,
            fencer=self.fencer,
            directory=self.directory,
            clock=clock,
            metrics=metrics,
            advertise_url=self.advertise_url,
            version=__version__,
            started_at=self.started_at,
            commitment=self.commitment,
        )
        self.agent = Agent(
            settings=s,
            clock=clock,
            metrics=metrics,
            checker=self.checker,
            desk=self.desk,
            fencer=self.fencer,
            keeper=self.keeper,
            directory=self.directory,
            poll=self.poll,
            control_plane=self.publisher.control_plane,
            committed=self.commitment.committed,
        )
        self.metrics_server: PeerServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._feeder: FeederThread | None = None

    def _relayed_order(self, token: str) -> bool:
        """Submit an order a peer relayed; True if this agent refused it."""
        return refused(self.desk.submit(token, OrderSource.PEER))

    def advertise_url(self, facts: NodeFacts | None) -> str | None:
        if self.settings.advertise_url:
            return self.settings.advertise_url
        host, _ = self.settings.listen_host_port
        if host in _ANY_HOST:
            if facts is None or not facts.internal_ip:
                return None
            host = facts.internal_ip
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.settings.tls_enabled else "http"
        return f"{scheme}://{host}:{self.server.port}"

    # Lifecycle ---------------------------------------------------------------------------

    def start(self, run_loop_in_thread: bool = True) -> None:
        self._threads.append(self.server.start())
        if self.settings.metrics_listen:
            self.metrics_server = _metrics_server(self)
            self._threads.append(self.metrics_server.start())
        self._spawn("publisher", self.publisher.run)
        self._feeder = FeederThread(
            self.keeper,
            lambda: self.settings.feed_interval_s(self.keeper.timeout_s or self.settings.watchdog_timeout_s),
        )
        self._feeder.start()
        if run_loop_in_thread:
            self._spawn("decision-loop", self.agent.run)
        log.info(
            "agent %s started on %s (node %s); isolation detect bound %.1fs",
            __version__,
            self.settings.listen,
            self.settings.node_name,
            self.settings.isolation_detect_s,
        )

    def run_loop(self) -> None:
        self.agent.run(self._stop)

    def request_stop(self) -> None:
        self._stop.set()

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._feeder is not None:
            self._feeder.stop()
        self.server.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        for thread in self._threads:
            thread.join(timeout=self.settings.api_check_timeout_s * 2 + 1)
        disarm = self.agent.may_disarm
        if disarm and self.keeper.is_open and not self.publisher.withdraw_capability():
            disarm = False  # the remediator may still count on us: stay armed
        if not disarm and self.keeper.is_open:
            log.warning(
                "stopping without disarming the watchdog (fence begun: %s, last decision: %s)",
                self.fencer.record is not None,
                self.agent.decision,
            )
        self.keeper.shutdown(disarm=disarm)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.seams.peer_client.close()
        log.info("agent stopped")


def _server_tls(s: AgentSettings) -> ssl.SSLContext | None:
    if not s.tls_enabled:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(s.tls_cert_file), str(s.tls_key_file))
    return context


def _metrics_server(rt: Runtime) -> PeerServer:
    """A second listener that serves only /metrics and /healthz."""
    host, port = parse_host_port(str(rt.settings.metrics_listen), "metrics_listen")
    return PeerServer(
        (host, port),
        service=rt.service,
        settings=ServerSettings(
            secret=rt.seams.secret,
            max_clock_skew_s=rt.settings.max_clock_skew_s,
            max_request_bytes=1024,
            max_concurrent_requests=4,
            read_timeout_s=rt.settings.request_read_timeout_s,
            serve_peer_api=False,
            node=rt.settings.node_name,
            max_connections=16,
            max_connections_per_client=4,
        ),
        clock=rt.seams.clock,
        metrics=rt.metrics,
        registry=rt.seams.registry,
    )
