"""`make demo`: a 5-node simulated cluster with a StatefulSet and a Deployment, shown the
way kubectl shows it, until Ctrl-C.

    python -m sim.demo [--nodes 5] [--time-scale 0.05]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .cluster import Cluster


def kubectl_view(kubeconfig: Path, cache: Path) -> str:
    if shutil.which("kubectl") is None:
        return "(kubectl not found: install it to see the cluster as kubectl shows it)\n"
    base = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache)]
    out = []
    for args in (["get", "nodes", "-o", "wide"], ["get", "pods", "-o", "wide"],
                 ["get", "pvc,volumeattachments"]):
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=30)
        out.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.demo", description=__doc__)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--once", action="store_true", help="show the cluster once and exit")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="nodewarden-demo-") as tmp:
        cluster = Cluster(nodes=args.nodes, time_scale=args.time_scale, workdir=Path(tmp) / "sim",
                          workloads=["db=statefulset:3", "web=deployment:2"])
        with cluster:
            kubeconfig = cluster.kubeconfig("admin")
            print(f"simulated cluster: {args.nodes} nodes at time scale {args.time_scale:g}, "
                  f"API server {cluster.url}")
            print(f"kubeconfig: {kubeconfig}  (kubectl --kubeconfig {kubeconfig} get nodes)\n", flush=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not stop.is_set():
                pods = cluster.list("pods", "default")
                if len(pods) == 5 and all((p.get("status") or {}).get("phase") == "Running" for p in pods):
                    break
                time.sleep(0.2)
            print(kubectl_view(kubeconfig, Path(tmp) / "kubectl-cache"), flush=True)
            if not args.once:
                print("The cluster keeps running; press Ctrl-C to stop it.", flush=True)
                stop.wait()
            report = cluster.invariants()
        print(f"stopped. invariant checks: {report['checked']}, violations: {len(report['violations'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
