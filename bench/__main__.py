"""`python -m bench [NAME ...]`: run the benchmarks, record JSON per benchmark under
bench/results/ and a Markdown summary (bench/results/README.md)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import RESULTS

BENCHMARKS = {
    "sim_api": "API emulator: GET/PATCH throughput and memory",
    "sim_scale": "5,000-node simulated cluster at time scale 1",
    "agent": "Node agent process: steady-state RSS and CPU at default intervals",
    "controller": "Remediation controller: fence-to-taint latencies and 50 failures in parallel",
    "recovery": "Time to recovery against Kubernetes alone and medik8s' defaults",
    "bmc": "Power-off to replacement Running: BMC fence (real fence_ipmilan) vs the watchdog path",
    "webhook": "Webhook: repeated-alert throughput against bare Flask, a 1,000-alert storm, latency at 200/s",
}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, sub, out)
    else:
        out[prefix] = value


def summarize() -> str:
    lines = ["# Benchmark results", "",
             "Recorded by `make bench` (`python -m bench`); each JSON file here holds one run. "
             "What each figure means and how to reproduce it: docs/results.md.", "",
             "![time to recovery](recovery.svg)", ""]
    for name, title in BENCHMARKS.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        lines += [f"## {title} (`{name}`)", "", f"Recorded {data['recorded_at']} on {data['machine']['cpus']} CPUs, Python "
                  f"{data['machine']['python']}, {data['machine']['machine']}.", "",
                  "| measure | value |", "|---|---|"]
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key not in ("benchmark", "recorded_at", "machine", "targets", "met"):
                _flatten(key, value, flat)
        for key, value in flat.items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            lines.append(f"| {key} | {shown} |")
        if data.get("targets"):
            lines += ["", "| target | wanted | met |", "|---|---|---|"]
            for key, wanted in data["targets"].items():
                lines.append(f"| {key} | {wanted} | {'yes' if data.get('met', {}).get(key) else 'NO'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== {name}: {BENCHMARKS[name]}", flush=True)
        start = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        result = module.run()
        met = result.get("met", {})
        print(json.dumps(result, indent=2))
        print(f"== {name}: {time.monotonic() - start:.0f}s, targets "
              f"{'met' if all(met.values()) else 'NOT met: ' + ', '.join(k for k, v in met.items() if not v)}",
              flush=True)
        if not all(met.values()):
            failed.append(name)
    (RESULTS / "README.md").write_text(summarize())
    if (RESULTS / "recovery.json").exists():
        from .chart import recovery_chart

        (RESULTS / "recovery.svg").write_text(recovery_chart(json.loads((RESULTS / "recovery.json").read_text())))
    print(f"results: {Path(RESULTS).relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":  # importing `summarize` must not run the benchmarks
    raise SystemExit(main(sys.argv[1:]))
