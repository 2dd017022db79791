"""Per-node processes (the node agent): started when the node boots, killed when it
loses power, each with its own kubeconfig identity, listen address, watchdog device and
peer proxy. The command is a template: {node} {kubeconfig} {watchdog} {address}, plus
any extra values the cluster was given."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from pathlib import Path

log = logging.getLogger("sim.processes")


class NodeProcess:
    def __init__(self, node: str, template: str, values: dict[str, str], env: dict[str, str],
                 log_path: Path) -> None:
        self.node = node
        self.template = template
        self.values = values
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def command(self) -> list[str]:
        return shlex.split(self.template.format(**self.values))

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        out.write(f"--- start #{self.starts + 1}: {' '.join(self.command)}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
                                     start_new_session=True)
        out.close()
        self.starts += 1
        log.info("started %s on %s (pid %d)", self.command[0], self.node, self.proc.pid)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc else None

    def kill(self) -> None:
        """Power loss: no chance to clean up."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def terminate(self, timeout: float = 5.0) -> None:
        """Orderly shutdown (the simulator stopping): SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()
        self.proc = None
