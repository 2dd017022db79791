"""Running the agent's few external commands (the software reboot fallback, the kubelet
restart) with a timeout, and a fake runner beside the real one."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
OUTPUT_TAIL = 500


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None: it did not finish (timeout) or could not start
    timed_out: bool = False
    output: str = ""  # tail of stdout+stderr
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.timed_out:
            return f"{self.command!r} timed out"
        if self.exit_code is None:
            return f"{self.command!r} could not run: {self.error}"
        return f"{self.command!r} exited {self.exit_code}: {self.output.strip()[-200:]}"


CommandRunner = Callable[[str, float], CommandResult]


def run_command(command: str, timeout_s: float) -> CommandResult:
    """Run `command` (split like a shell would, without a shell) with a timeout."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return CommandResult(command, None, error=f"cannot parse: {exc}")
    if not argv:
        return CommandResult(command, None, error="empty command")
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
        return CommandResult(command, None, timed_out=True, output=out[-OUTPUT_TAIL:])
    except OSError as exc:
        return CommandResult(command, None, error=exc.strerror or str(exc))
    return CommandResult(command, proc.returncode, output=proc.stdout.decode(errors="replace")[-OUTPUT_TAIL:])


class FakeRunner:
    """Records commands; answers with `exit_code`."""

    def __init__(self, exit_code: int | None = 0) -> None:
        self.exit_code = exit_code
        self.calls: list[tuple[str, float]] = []

    def __call__(self, command: str, timeout_s: float) -> CommandResult:
        self.calls.append((command, timeout_s))
        return CommandResult(command, self.exit_code, timed_out=self.exit_code is None)
