"""`make playground`: the whole product running on a simulated cluster, for you to drive.

The same chain as `make demo` (simulated cluster -> Prometheus with the shipped rules ->
Alertmanager -> the webhook -> the controller -> the node agents), but nothing is
scripted: it starts, writes an environment file and a kubeconfig, prints what you can
do, and runs until Ctrl-C. Break nodes with the simulator's fault command, watch
NodeRemediations with kubectl, drive remediations with the `kubectl nodewarden` plugin
(env.sh puts it on PATH) or the operator API with curl, and read the metrics Grafana would
show.

    python -m harness.playground [--time-scale 1.0] [--dir .playground] [--nodes 5]
                                 [--no-alerts]

Time runs at the real cluster's pace by default (a dead node is noticed after about 40 s
and recovered after about 100 s); `--time-scale 0.2` makes every duration five times
shorter. `--no-alerts` leaves Prometheus and Alertmanager out (remediations then come
only from you). The folder given with `--dir` is emptied at start; it holds the logs of
every process afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from harness.chain import Chain, alert_chain
from harness.waits import wait_running
from harness.world import ALERTMANAGER_TOKEN, OPERATOR_TOKEN, ROOT, World, nodewarden_world

WORKLOADS = ("db=statefulset:3", "web=deployment:2")


def environment(world: World, chain: Chain | None, folder: Path) -> dict[str, str]:
    """The variables an operator's shell needs, by name."""
    env = {
        "KUBECONFIG": str(folder / "kubeconfig"),
        "WEBHOOK": world.webhook_url,
        "OP_TOKEN": OPERATOR_TOKEN,
        "AM_TOKEN": ALERTMANAGER_TOKEN,
    }
    if chain is not None:
        env["PROMETHEUS"] = chain.prometheus_url
        env["ALERTMANAGER"] = chain.alertmanager_url
    return env


def cheat_sheet(env: dict[str, str], nodes: list[str], folder: Path) -> str:
    python = shlex.quote(sys.executable)
    victim = nodes[1] if len(nodes) > 1 else nodes[0]
    fault = f"{python} -m sim fault --kubeconfig \"$KUBECONFIG\""
    lines = [
        "",
        "nodewarden playground: running. In another shell:",
        "",
        f"  source {folder / 'env.sh'}",
        "",
        "Look around:",
        "  kubectl get nodes -o wide",
        "  kubectl get pods -o wide",
        "  kubectl get noderemediations -w",
        "",
        "Break a node (actions: power-off, power-on, partition, heal, kubelet-stop, kubelet-start, ...):",
        f"  {fault} power-off {victim}",
        f"  {fault} partition {victim} --from api",
        f"  {fault} heal {victim}",
        "",
        "Drive remediations with the kubectl plugin (your kubeconfig: the cluster admin):",
        "  kubectl nodewarden status",
        f"  kubectl nodewarden request {victim} --reason 'trying it out'",
        f"  kubectl nodewarden explain {victim}            # why it is in this phase, what comes next",
        f"  kubectl nodewarden cancel {victim} --reason 'changed my mind'",
        f"  kubectl nodewarden history {victim}            # every past remediation, with its timeline",
        "  kubectl nodewarden pause --reason 'maintenance'   |   kubectl nodewarden resume",
        "  kubectl nodewarden what-if --watchdog_timeout_s=30s",
        "",
        "Ask for a remediation by hand (the operator API), list and approve:",
        '  curl -sS -X POST "$WEBHOOK/api/v1/remediations" -H "Authorization: Bearer $OP_TOKEN" \\',
        f"       -H 'Content-Type: application/json' -d '{{\"node\": \"{victim}\", \"reason\": \"trying it out\"}}'",
        '  curl -sS "$WEBHOOK/api/v1/remediations" -H "Authorization: Bearer $OP_TOKEN"',
        "",
        "Metrics: curl -sS \"$WEBHOOK/metrics\" | grep ^nodewarden_",
    ]
    if "PROMETHEUS" in env:
        lines += [
            "Alerts:  open $PROMETHEUS/alerts (rules) and $ALERTMANAGER (what reaches the webhook)",
        ]
    lines += [
        f"Ground truth and safety: {python} -m sim invariants --kubeconfig \"$KUBECONFIG\"",
        f"Logs of every process: {folder}/",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def write_env(env: dict[str, str], path: Path) -> None:
    """The variables, and PATH with the kubectl plugin and this Python (its interpreter) first."""
    plugin_path = f"{shlex.quote(str(ROOT / 'bin'))}:{shlex.quote(str(Path(sys.executable).parent))}"
    path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
                    + f'export PATH={plugin_path}:"$PATH"\n')


@contextlib.contextmanager
def _maybe_chain(world: World, folder: Path, alerts: bool) -> Iterator[Chain | None]:
    if not alerts:
        yield None
        return
    with alert_chain(world, folder / "chain", list(world.controller_metrics.values())) as chain:
        yield chain


def run(folder: Path, scale: float, nodes: int, alerts: bool, ready: threading.Event | None = None,
        stop: threading.Event | None = None) -> int:
    """Start everything, print the cheat sheet, wait for `stop` (or Ctrl-C), stop everything."""
    stop = stop or threading.Event()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with (nodewarden_world(folder / "world", nodes=nodes, time_scale=scale, workloads=WORKLOADS) as w,
          _maybe_chain(w, folder, alerts) as chain):
        c = w.cluster
        wait_running(c, ["db-0", "db-1", "db-2"], timeout=max(60.0, 120 * scale))
        shutil.copy(c.kubeconfig("admin"), folder / "kubeconfig")
        env = environment(w, chain, folder)
        write_env(env, folder / "env.sh")
        names = sorted(n["metadata"]["name"] for n in c.list("nodes"))
        print(cheat_sheet(env, names, folder), flush=True)
        if ready is not None:
            ready.set()
        stop.wait()
        report = c.invariants()
    print(f"playground: stopped; invariants checked {report['checked']} times, "
          f"{len(report['violations'])} violation(s)", flush=True)
    for v in report["violations"]:
        print(f"playground: VIOLATION {v['kind']} {v['object']} on {v['node']}: {v['detail']}", flush=True)
    return 1 if report["violations"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.playground", description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every duration by this (default 1: a real cluster's pace)")
    parser.add_argument("--dir", type=Path, default=Path(".playground"),
                        help="folder for the kubeconfig, env.sh and every log (emptied at start)")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--no-alerts", action="store_true", help="run without Prometheus and Alertmanager")
    args = parser.parse_args(argv)
    if not 0.01 <= args.time_scale <= 1.0:
        parser.error("--time-scale must be between 0.01 and 1")
    if not 2 <= args.nodes <= 50:
        parser.error("--nodes must be between 2 and 50")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return run(args.dir.resolve(), args.time_scale, args.nodes, not args.no_alerts, stop=stop)


if __name__ == "__main__":
    sys.exit(main())
