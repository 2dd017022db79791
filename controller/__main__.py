"""`python -m controller`: the remediation controller of one webhook replica.

Reads `NODEWARDEN_CONTROLLER_*` (see docs/fencing-protocol.md), refuses unsafe timings
with the computed worst case, campaigns for the leader Lease and, while leading, drives
every NodeRemediation. Serves its metrics on `metrics_bind`. SIGTERM stops it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import signal
import sys
import threading

from controller.act import Actor
from controller.fence_agent import FenceAgents
from controller.kube import RealControllerKube
from controller.leader import LeaderElector, LeaderTiming
from controller.loop import Controller
from controller.metrics import ControllerMetrics, serve_health_and_metrics
from controller.settings import agent_timings, settings_from_env, unsafe_timings, worst_case_summary
from core import names
from core.clock import RealClock
from core.events import EventRecorder
from core.fence_inventory import InventoryError, load_inventory
from core.fence_order import load_private_key
from core.kube import load_kube
from core.peer_client import PeerClient
from core.settings import SettingsError, read_secret_file

log = logging.getLogger("nodewarden.controller")


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        print(f"nodewarden controller: bad setting {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(settings.log_level.upper())
    try:
        agent, agent_source = agent_timings(settings)
    except SettingsError as exc:
        print(f"nodewarden controller: bad setting {exc}", file=sys.stderr)
        return 2
    worst = worst_case_summary(settings, agent)
    problems = unsafe_timings(settings, agent)
    if problems:
        print("nodewarden controller: refusing to start, these settings could make fencing unsafe:",
              file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print(f"  with {agent_source}: {worst}", file=sys.stderr)
        return 2
    log.info("fence deadlines, with %s: %s", agent_source, worst)
    try:
        key = load_private_key(settings.signing_key_file)
        secret = read_secret_file(settings.peer_secret_file, "peer_secret_file").encode()
        kube = load_kube(settings.kubeconfig, settings.kube_request_timeout_s)
        inventory = load_inventory(settings.fence_inventory_file) if settings.fence_inventory_file else None
    except InventoryError as exc:
        print(f"nodewarden controller: bad fence inventory in {settings.fence_inventory_file}: {exc}",
              file=sys.stderr)
        return 2
    except (OSError, ValueError, SettingsError) as exc:
        print(f"nodewarden controller: cannot start: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # kubeconfig / in-cluster configuration errors
        print(f"nodewarden controller: no Kubernetes credentials: {exc}", file=sys.stderr)
        return 2
    clock = RealClock()
    metrics = ControllerMetrics()
    ckube = RealControllerKube(kube, settings.namespace, settings.pause_configmap)
    peers = PeerClient(secret, timeout_s=settings.peer_timeout_s, clock=clock,
                       verify=settings.peer_ca_file or True)
    elector = LeaderElector(
        ckube.lease_store(names.LEADER_LEASE_NAME), settings.identity_name,
        LeaderTiming(settings.lease_duration_s, settings.renew_deadline_s, settings.retry_period_s), clock,
        on_change=lambda leading: metrics.is_leader.set(1 if leading else 0))
    events = EventRecorder(ckube, clock, settings.event_namespace, settings.identity_name,
                           controller=names.CONTROLLER_COMPONENT)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="peers")
    actor = Actor(ckube, peers, key, order_ttl_s=settings.order_ttl_s, peer_timeout_s=settings.peer_timeout_s,
                  fence_agent_command=settings.fence_agent_command,
                  fence_agent_timeout_s=settings.fence_agent_timeout_s, metrics=metrics, pool=pool,
                  fence_agents=FenceAgents(inventory) if inventory and inventory.devices else None)
    if inventory is not None:
        log.info("fence inventory: %d device(s): %s", len(inventory.devices),
                 ", ".join(f"{d.name} ({d.agent}, {d.action})" for d in inventory.devices) or "none")
    controller = Controller(settings, ckube, actor, elector, clock, metrics, events, pool)
    host, _, port = settings.metrics_bind.rpartition(":")
    serve_health_and_metrics(host or "0.0.0.0", int(port), metrics.registry, controller)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    events.start()
    controller.start()
    log.info("controller %s started (namespace %s, metrics on %s)", settings.identity_name,
             settings.namespace, settings.metrics_bind)
    stop.wait()
    log.info("stopping")
    controller.stop()
    events.stop(join_s=2.0)
    peers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
