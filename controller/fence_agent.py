"""Running ClusterLabs fence agents (fence_ipmilan, fence_redfish, ...) against the BMCs of
the fence inventory (`core.fence_inventory`), and what their results mean.

    agents = FenceAgents(inventory, run=run_agent, sleep=time.sleep, clock=time.time)
    result = agents.fence(device, "node-1")      # action off|reboot, with retries
    result.outcome                               # Outcome.POWERED_OFF, CREDENTIALS_REFUSED, ...
    agents.check(device, "node-1")               # the `status` action: are the credentials good?

A fence counts only when it is confirmed:
- `off`: the agent exits 0 (the fence library itself polls the power status until Off)
  AND a following `status` run reports Off. A machine that is On again by then
  (POWERED_ON_AGAIN) is not fenced: someone or something powered it back on.
- `reboot`: the agent exits 0: it saw the machine Off before powering it on again; the
  machine then runs a new boot.
Anything else is no evidence. A refused login is not retried (a BMC may lock the account);
an unreachable BMC, a timeout or another failure is retried `retries` times,
`retry_interval_s` apart. Classification reads the agent's verbose output: ipmitool -v's
"RAKP 2 HMAC is invalid" and Redfish's HTTP 401/403 are refusals (ipmitool's final
"Unable to establish IPMI v2 / RMCP+ session" is the same for both, so it decides nothing);
refused, reset or timed-out connections mean unreachable.

The password goes to the agent on stdin; everything the agent printed passes through
`redact` before it is returned, so no credential reaches a status, an Event or a log.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.fence_inventory import CredentialsError, FenceDevice, FenceInventory, redact

log = logging.getLogger("nodewarden.controller.fence_agent")

OUTPUT_LIMIT = 1500


class Outcome(enum.StrEnum):
    POWERED_OFF = "PoweredOff"  # off, confirmed by a status run
    REBOOTED = "Rebooted"  # reboot completed: off was seen, then on
    STATUS_ON = "On"  # a status check: the machine is powered
    STATUS_OFF = "Off"
    POWERED_ON_AGAIN = "PoweredOnAgain"  # off succeeded, but the machine was On again right after
    CREDENTIALS_REFUSED = "CredentialsRefused"
    UNREACHABLE = "Unreachable"
    TIMED_OUT = "TimedOut"
    FAILED = "Failed"
    CREDENTIALS_MISSING = "CredentialsMissing"
    AGENT_MISSING = "AgentMissing"


FENCED = (Outcome.POWERED_OFF, Outcome.REBOOTED)
USABLE = (Outcome.STATUS_ON, Outcome.STATUS_OFF)
_NO_RETRY = (Outcome.CREDENTIALS_REFUSED, Outcome.CREDENTIALS_MISSING, Outcome.AGENT_MISSING,
             Outcome.POWERED_ON_AGAIN)

# Read from the agents' verbose output (verbose=1, verbose_level=2: ipmitool runs with -v).
_REFUSED = re.compile(r"RAKP \d+ HMAC is invalid|RAKP \d+ message indicates an error|Unauthorized name"
                      r"|Invalid user name|HTTP/1\.[01]\" (401|403) |[Aa]uthentication (failed|error)"
                      r"|Login failed|Unable to login|invalid (username|password|credentials)")
_UNREACHABLE = re.compile(r"Get Auth Capabilities error|Connection timed out|Connection refused"
                          r"|Failed to establish a new connection|Max retries exceeded|No route to host"
                          r"|Name or service not known|Network is unreachable|Unable to connect|Connection reset"
                          r"|Temporary failure in name resolution|Failed to connect")


@dataclass(frozen=True)
class RawRun:
    exit_code: int  # -1: timed out (killed), -2: could not start
    output: str


RunFn = Callable[[list[str], str, float, dict[str, str]], RawRun]


def run_agent(argv: list[str], stdin: str, timeout_s: float, env: dict[str, str]) -> RawRun:
    """Run one agent process; options on stdin; killed after `timeout_s`."""
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, **env})
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        return RawRun(-1, f"{text}\n(killed after {timeout_s:g}s)")
    except OSError as exc:
        return RawRun(-2, f"could not run {argv[0]}: {exc.strerror}")
    return RawRun(proc.returncode, proc.stdout + proc.stderr)


def classify(action: str, raw: RawRun) -> Outcome:
    """What one run of the agent means (pure)."""
    if raw.exit_code == -1:
        return Outcome.TIMED_OUT
    if raw.exit_code == -2:
        return Outcome.AGENT_MISSING
    if action == "status":
        # fence agents: 0 = on, 2 = off, 1 = failure
        if raw.exit_code == 0 and re.search(r"Status: ON", raw.output):
            return Outcome.STATUS_ON
        if raw.exit_code == 2 or re.search(r"Status: OFF", raw.output):
            return Outcome.STATUS_OFF
    elif raw.exit_code == 0:
        return Outcome.REBOOTED if action == "reboot" else Outcome.POWERED_OFF
    if _REFUSED.search(raw.output):
        return Outcome.CREDENTIALS_REFUSED
    if _UNREACHABLE.search(raw.output):
        return Outcome.UNREACHABLE
    return Outcome.FAILED


def _tidy(output: str) -> str:
    lines = [line for line in output.splitlines()
             if line.strip() and "DeprecationWarning" not in line and "from pipes import" not in line]
    return "\n".join(lines)[-OUTPUT_LIMIT:]


@dataclass(frozen=True)
class AgentResult:
    outcome: Outcome
    agent: str
    device: str
    action: str
    attempts: int
    exit_code: int
    output: str  # redacted, trimmed
    started_at: float
    finished_at: float
    power_confirmed_at: float | None = None  # when a status run confirmed Off
    runs: tuple[str, ...] = field(default_factory=tuple)  # outcome of every run, in order

    @property
    def fenced(self) -> bool:
        return self.outcome in FENCED

    def describe(self) -> str:
        what = {
            Outcome.POWERED_OFF: "powered the node off (confirmed Off by a status check)",
            Outcome.REBOOTED: "power-cycled the node (it was seen Off, then powered on)",
            Outcome.POWERED_ON_AGAIN: "powered the node off, but it was powered On again right after: "
                                      "the power-off did not hold",
            Outcome.CREDENTIALS_REFUSED: "was REFUSED by the BMC: wrong username or password",
            Outcome.UNREACHABLE: "could not reach the BMC",
            Outcome.TIMED_OUT: "timed out",
            Outcome.FAILED: "failed",
            Outcome.CREDENTIALS_MISSING: "has no readable credentials (is the Secret mounted?)",
            Outcome.AGENT_MISSING: "is not installed",
            Outcome.STATUS_ON: "reports the node powered On",
            Outcome.STATUS_OFF: "reports the node powered Off",
        }[self.outcome]
        return f"{self.agent} (device {self.device}) {what} after {self.attempts} run(s)"


class FenceAgents:
    def __init__(self, inventory: FenceInventory, *, run: RunFn = run_agent,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.inventory = inventory
        self.run = run
        self.sleep = sleep
        self.clock = clock

    def device_for(self, node: str, labels: dict[str, str] | None = None) -> FenceDevice | None:
        return self.inventory.device_for(node, labels)

    def _once(self, device: FenceDevice, node: str, action: str,
              credentials: tuple[str, str]) -> tuple[Outcome, RawRun]:
        username, password = credentials  # the username is no secret; the password is
        stdin = device.agent_input(node, action, username, password) + "verbose=1\nverbose_level=2\n"
        env = {"REQUESTS_CA_BUNDLE": device.ca_bundle} if device.ca_bundle else {}
        raw = run_agent_safely(self.run, [device.agent], stdin, device.timeout_s, env)
        outcome = classify(action, raw)  # on the whole output; what is kept is trimmed
        return outcome, RawRun(raw.exit_code, _tidy(redact(raw.output, [password])))

    def fence(self, device: FenceDevice, node: str) -> AgentResult:
        """Run the device's action with retries; confirm an `off` with `status`."""
        started = self.clock()
        try:
            credentials = self.inventory.read_credentials(device)
        except CredentialsError as exc:
            return AgentResult(Outcome.CREDENTIALS_MISSING, device.agent, device.name, device.action, 0, -3,
                               str(exc), started, self.clock())
        runs: list[str] = []
        outcome, raw = Outcome.FAILED, RawRun(-3, "")
        confirmed_at = None
        for attempt in range(1, device.retries + 2):
            if attempt > 1:
                self.sleep(device.retry_interval_s)
            outcome, raw = self._once(device, node, device.action, credentials)
            runs.append(str(outcome))
            if outcome is Outcome.POWERED_OFF:
                status, status_raw = self._once(device, node, "status", credentials)
                runs.append(f"status:{status}")
                if status is Outcome.STATUS_OFF:
                    confirmed_at = self.clock()
                elif status is Outcome.STATUS_ON:
                    outcome = Outcome.POWERED_ON_AGAIN
                    raw = RawRun(raw.exit_code, f"{raw.output}\n{status_raw.output}"[-OUTPUT_LIMIT:])
                else:  # the off went through but could not be confirmed: not evidence; run again
                    outcome, raw = status, status_raw
            if outcome in FENCED or outcome in _NO_RETRY:
                break
            log.warning("fence agent %s for %s: %s (run %d of %d)", device.agent, node, outcome, attempt,
                        device.retries + 1)
        result = AgentResult(outcome, device.agent, device.name, device.action, len([r for r in runs if
                             not r.startswith("status:")]), raw.exit_code, raw.output, started, self.clock(),
                             confirmed_at, tuple(runs))
        log.warning("fence agent for %s: %s", node, result.describe())
        return result

    def check(self, device: FenceDevice, node: str) -> AgentResult:
        """One `status` run: can the BMC be reached, and does it accept the credentials?"""
        started = self.clock()
        try:
            credentials = self.inventory.read_credentials(device)
        except CredentialsError as exc:
            return AgentResult(Outcome.CREDENTIALS_MISSING, device.agent, device.name, "status", 0, -3, str(exc),
                               started, self.clock())
        outcome, raw = self._once(device, node, "status", credentials)
        return AgentResult(outcome, device.agent, device.name, "status", 1, raw.exit_code, raw.output, started,
                           self.clock(), runs=(str(outcome),))


def run_agent_safely(run: RunFn, argv: list[str], stdin: str, timeout_s: float, env: dict[str, str]) -> RawRun:
    try:
        return run(argv, stdin, timeout_s, env)
    except Exception as exc:  # a broken runner must not take the controller down
        return RawRun(-2, f"could not run {argv[0]}: {type(exc).__name__}")
