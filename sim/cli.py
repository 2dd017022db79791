"""Command line of the simulator.

    python -m sim serve --nodes N --port P --kubeconfig-out PATH [--time-scale F]
                        [--workload web=deployment:4 ...] [--agent-cmd TEMPLATE] ...
    python -m sim fault --kubeconfig PATH ACTION [NODE] [--from api|peers|all]
                        [--duration S] [--mode unavailable|drop] [--restart-after S]
                        [--delay S] [--retry-after N] [--fraction F]
    python -m sim invariants --kubeconfig PATH
    python -m sim timeline --kubeconfig PATH [--since UNIX]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .world.cluster import Cluster
from .world.faults import ACTIONS


def _serve(args: argparse.Namespace) -> int:
    try:
        cluster = Cluster(
            nodes=args.nodes, time_scale=args.time_scale, host=args.host, port=args.port,
            workdir=args.workdir, workloads=args.workload or [], agent_cmd=args.agent_cmd,
            watchdogs=True if args.watchdogs else None, control_plane_nodes=args.control_plane_nodes,
            partition_mode=args.partition_mode, use_tls=not args.insecure_http,
            node_age_s=args.node_age, zones=args.zones)
    except ValueError as exc:
        print(f"sim: {exc}", file=sys.stderr)
        return 2
    cluster.start()
    if args.kubeconfig_out:
        Path(args.kubeconfig_out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cluster.kubeconfig("admin"), args.kubeconfig_out)
    if args.kubeconfig_dir:
        directory = Path(args.kubeconfig_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for path in (cluster.workdir / "kubeconfigs").iterdir():
            shutil.copy(path, directory / path.name)
    print(f"sim: API server on {cluster.url} (port {cluster.api.port}), {args.nodes} nodes, "
          f"time scale {args.time_scale:g}", flush=True)
    if args.kubeconfig_out:
        print(f"sim: kubeconfig written to {args.kubeconfig_out}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    report = cluster.invariants()
    cluster.stop()
    print(f"sim: stopped; invariants checked {report['checked']} times, "
          f"{len(report['violations'])} violation(s)", flush=True)
    for v in report["violations"]:
        print(f"sim: VIOLATION {v['kind']} {v['object']} on {v['node']}: {v['detail']}", flush=True)
    return 1 if report["violations"] else 0


def _client(kubeconfig: str) -> tuple[str, dict[str, str], ssl.SSLContext | None]:
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    ctx_name = doc["current-context"]
    context = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])
    ssl_ctx = None
    if cluster.get("certificate-authority-data"):
        ssl_ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    return cluster["server"], {"Authorization": f"Bearer {user['token']}"}, ssl_ctx


def _request(kubeconfig: str, method: str, path: str, body: Any = None) -> Any:
    server, headers, ctx = _client(kubeconfig)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(server + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        try:
            detail = json.loads(detail).get("message", detail)
        except ValueError:
            pass
        raise SystemExit(f"sim: {err.code}: {detail}") from None


def _fault(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"action": args.action, "node": args.node or ""}
    if args.from_:
        body["from"] = args.from_
    if args.duration is not None:
        body["duration"] = args.duration
    if args.mode:
        body["mode"] = args.mode
    if args.restart_after is not None:
        body["restartAfter"] = args.restart_after
    if args.delay is not None:
        body["delay"] = args.delay
    if args.retry_after is not None:
        body["retryAfter"] = args.retry_after
    if args.fraction is not None:
        body["fraction"] = args.fraction
    result = _request(args.kubeconfig, "POST", "/sim/v1/faults", body)
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description="A simulated Kubernetes cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a simulated cluster")
    serve.add_argument("--nodes", type=int, default=5, help="number of nodes (default 5)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port and prints it")
    serve.add_argument("--kubeconfig-out", help="write the admin kubeconfig here")
    serve.add_argument("--kubeconfig-dir", help="write one kubeconfig per identity into this folder")
    serve.add_argument("--time-scale", type=float, default=1.0,
                       help="multiply every duration by F (0.05: 50 s grace period in 2.5 s)")
    serve.add_argument("--workload", action="append", metavar="NAME=KIND:N",
                       help="e.g. web=deployment:4 or db=statefulset:3 (repeatable)")
    serve.add_argument("--agent-cmd", metavar="TEMPLATE",
                       help="one process per node: {node} {kubeconfig} {watchdog} {address} {workdir}")
    serve.add_argument("--watchdogs", action="store_true", help="create watchdog devices without --agent-cmd")
    serve.add_argument("--control-plane-nodes", type=int, default=0, help="the first K nodes are control-plane nodes")
    serve.add_argument("--partition-mode", choices=["drop", "refuse"], default="drop",
                       help="partitioned traffic is held unanswered (drop) or reset (refuse)")
    serve.add_argument("--node-age", type=float, default=0.0,
                       help="the nodes joined this many seconds ago (real, not scaled; default 0)")
    serve.add_argument("--zones", type=int, default=0,
                       help="label the nodes topology.kubernetes.io/zone=zone-a, zone-b, ... round robin")
    serve.add_argument("--workdir", help="folder for kubeconfigs, devices and logs (default: a temporary one)")
    serve.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP (kubectl then sends no token)")
    serve.add_argument("-v", "--verbose", action="store_true")

    fault = sub.add_parser("fault", help="inject a fault into a running simulated cluster")
    fault.add_argument("--kubeconfig", required=True, help="the admin kubeconfig")
    fault.add_argument("action", choices=ACTIONS)
    fault.add_argument("node", nargs="?", help="the node (partition-group: NODE,NODE,...; none for "
                       "api-outage, api-slow, api-throttle, controller-manager-restart, csi-stall; optional for heal)")
    fault.add_argument("--from", dest="from_", choices=["api", "peers", "all"], help="partition scope")
    fault.add_argument("--duration", type=float, help="api-outage, api-slow, api-throttle, csi-stall: length in cluster seconds (scaled)")
    fault.add_argument("--mode", choices=["unavailable", "drop"], help="api-outage: 503 or no answer")
    fault.add_argument("--restart-after", type=float, help="agent-kill: restart delay in cluster seconds")
    fault.add_argument("--delay", type=float, help="api-slow: answer delay in cluster seconds")
    fault.add_argument("--retry-after", type=int, help="api-throttle: Retry-After header, wall seconds (default 1)")
    fault.add_argument("--fraction", type=float, help="api-throttle: share of requests answered 429 (default 1)")

    for name, help_text in (("invariants", "print the invariant monitor's report"),
                            ("timeline", "print the timeline")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--kubeconfig", required=True)
        if name == "timeline":
            p.add_argument("--since", type=float)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "serve":
        if args.workdir is None:
            with tempfile.TemporaryDirectory(prefix="nodewarden-sim-") as tmp:
                args.workdir = tmp
                return _serve(args)
        return _serve(args)
    if args.command == "fault":
        return _fault(args)
    if args.command == "invariants":
        report = _request(args.kubeconfig, "GET", "/sim/v1/invariants")
        print(json.dumps(report, indent=2))
        return 1 if report["violations"] else 0
    if args.command == "timeline":
        query = f"?since={args.since}" if args.since else ""
        for event in _request(args.kubeconfig, "GET", "/sim/v1/timeline" + query)["events"]:
            print(f"{event['at']:.3f} {event['kind']:<20} {event['node']:<10} {event['object']:<30} {event['detail']}")
        return 0
    return 2
