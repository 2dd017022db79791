"""`python -m node_agent`: read the settings once, build the agent, run until SIGTERM.

    python -m node_agent --node-name NAME [--config FILE] [--kubeconfig PATH]
                         [--service-account-dir DIR]
                         [--watchdog PATH] [--listen HOST:PORT] [--advertise URL]

Environment variables `NODEWARDEN_AGENT_<SETTING>` override the config file; options
override both. Exit codes: 0 after a clean stop, 2 for bad settings or unreadable key
and secret files.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from kubernetes.config.config_exception import ConfigException
from prometheus_client import CollectorRegistry

from core.clock import RealClock
from core.fence_order import VERIFIER_SELF_TEST, load_public_keys
from core.peer_client import PeerClient
from core.settings import SettingsError, read_config_file, read_secret_file
from node_agent.boot import boot_identity_from_source
from node_agent.commands import run_command
from node_agent.kube import KubeAgentApi, connect
from node_agent.runtime import Runtime, Seams, watchdog_opener
from node_agent.settings import REAL_BOOT_ID_PATH, AgentSettings, load_agent_settings

log = logging.getLogger("node_agent")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m node_agent",
        description="nodewarden node agent: owns the node's watchdog and fences it when told or cut off.",
    )
    parser.add_argument("--node-name", help="this node's name (env NODEWARDEN_AGENT_NODE_NAME)")
    parser.add_argument("--config", help="YAML settings file")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, else in-cluster)")
    parser.add_argument("--service-account-dir",
                        help="in-cluster credentials: token and ca.crt (default: the pod's mount)")
    parser.add_argument("--watchdog", help="watchdog device (default /dev/watchdog)")
    parser.add_argument("--listen", help="HOST:PORT of the peer endpoint (default 0.0.0.0:9471)")
    parser.add_argument("--advertise", help="URL peers use to reach this agent")
    return parser.parse_args(argv)


def load(argv: Sequence[str] | None, env: dict[str, str]) -> AgentSettings:
    args = parse_args(argv)
    cli = {
        "node_name": args.node_name,
        "kubeconfig": args.kubeconfig,
        "service_account_dir": args.service_account_dir,
        "watchdog_path": args.watchdog,
        "listen": args.listen,
        "advertise_url": args.advertise,
    }
    return load_agent_settings(read_config_file(args.config), env, cli)


def check_order_verifier() -> None:
    """Orders are verified with `cryptography`, which the agent imports at its first order,
    not before (it is a sixth of the agent's memory). Prove now, in a child process, that
    it loads and verifies RFC 8032's first test vector, so that a broken installation
    stops the start instead of the first fence. RuntimeError when it does not."""
    try:
        result = subprocess.run([sys.executable, "-c", VERIFIER_SELF_TEST], capture_output=True,
                                text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot check the order signature verifier: {exc}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"fence orders could not be verified: the Ed25519 self-test failed: {last}")


def build(settings: AgentSettings) -> Runtime:
    secret = read_secret_file(settings.peer_secret_file, "peer_secret_file").encode()
    try:
        keys = load_public_keys(settings.order_public_keys_file)
    except (OSError, ValueError) as exc:
        raise SettingsError("order_public_keys_file", str(exc)) from None
    check_order_verifier()
    try:
        boot = boot_identity_from_source(settings.boot_id_source, REAL_BOOT_ID_PATH)
    except RuntimeError as exc:
        raise SettingsError("boot_id_source", str(exc)) from None
    clock = RealClock()
    try:
        api_configuration = connect(settings.kubeconfig, settings.service_account_dir)
    except ConfigException as exc:
        raise SettingsError("kubeconfig", str(exc)) from None
    verify: bool | str = settings.peer_ca_file or True
    seams = Seams(
        clock=clock,
        api=KubeAgentApi(api_configuration, clock, tuple(key.fingerprint() for key in keys)),
        opener=watchdog_opener(settings, settings.reboot_fallback_enabled),
        peer_client=PeerClient(
            secret, timeout_s=settings.peer_request_timeout_s, clock=clock, verify=verify
        ),
        runner=run_command,
        boot=boot,
        public_keys=keys,
        secret=secret,
        registry=CollectorRegistry(),
    )
    return Runtime(settings, seams)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(argv, dict(os.environ))
    except SettingsError as exc:
        print(f"node_agent: bad setting {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s nodewarden-agent[{settings.node_name}] %(name)s: %(message)s",
    )
    try:
        runtime = build(settings)
    except SettingsError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except (OSError, RuntimeError) as exc:  # listen address taken, TLS files unreadable, ...
        log.error("cannot start: %s", exc)
        return 2

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        runtime.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime.start(run_loop_in_thread=False)
    try:
        runtime.run_loop()
    finally:
        runtime.stop()
    return 0
