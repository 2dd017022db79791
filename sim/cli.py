"""Command line of the simulator.

    python -m sim serve --nodes N --port P --kubeconfig-out PATH [--kubeconfig-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from .server import ADMIN, WEBHOOK, ApiServer, agent_identity, node_object


def _serve(args: argparse.Namespace) -> int:
    server = ApiServer(host=args.host, port=args.port, use_tls=not args.insecure_http)
    nodes = server.resource("nodes")
    for i in range(1, args.nodes + 1):
        name = f"node-{i}"
        server.registry.create(nodes, "", node_object(name, i, time.time()))
        server.add_identity(agent_identity(name), node=name)
    server.start()
    if args.kubeconfig_out:
        server.write_kubeconfig(args.kubeconfig_out, ADMIN)
    if args.kubeconfig_dir:
        directory = Path(args.kubeconfig_dir)
        server.write_kubeconfig(directory / "admin.kubeconfig", ADMIN)
        server.write_kubeconfig(directory / "webhook.kubeconfig", WEBHOOK)
        for i in range(1, args.nodes + 1):
            server.write_kubeconfig(directory / f"agent-node-{i}.kubeconfig",
                                    agent_identity(f"node-{i}"))
    print(f"sim: API server on {server.url} (port {server.port})", flush=True)
    if args.kubeconfig_out:
        print(f"sim: kubeconfig written to {args.kubeconfig_out}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    print("sim: stopped", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description="A simulated Kubernetes cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the emulated API server")
    serve.add_argument("--nodes", type=int, default=5, help="number of nodes (default 5)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port and prints it")
    serve.add_argument("--kubeconfig-out", help="write the admin kubeconfig here")
    serve.add_argument("--kubeconfig-dir", help="write one kubeconfig per identity into this folder")
    serve.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP (kubectl then sends no token: admin only via Python)")
    serve.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "serve":
        return _serve(args)
    return 2
