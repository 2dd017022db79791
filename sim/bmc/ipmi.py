"""IPMI 2.0 over LAN (RMCP+) for one simulated machine, on pyghmi's BMC server (as
virtualbmc builds on it), so `ipmitool -I lanplus` and `fence_ipmilan` drive it as they
drive a real BMC.

- `chassis power status` reports the machine's power; `off`, `on`, `cycle`, `reset`
  press the machine's buttons (`MachinePower`);
- the RAKP handshake checks the user and password (HMAC): a wrong password gets no
  session, as on a real BMC (ipmitool: "Unable to establish IPMI v2 / RMCP+ session");
- pyghmi offers cipher suite 3 only (HMAC-SHA1, AES-CBC-128): clients must ask for it
  (`ipmitool -C 3`, `fence_ipmilan --cipher 3`); ipmitool 1.8.19 defaults to 17;
- `reachable = False` drops every packet, like a BMC whose network is down.

All BMCs of a process share pyghmi's one socket loop (its I/O thread), whose packets one
daemon thread of ours hands to the BMCs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.private.session as pyghmi_session

from .power import MachinePower

log = logging.getLogger("sim.bmc.ipmi")

_loop_lock = threading.Lock()
_loop_started = False


def _serve_forever() -> None:
    while True:
        try:
            pyghmi_session.Session.wait_for_rsp(1)
        except Exception:  # one bad packet must not stop every BMC
            log.exception("IPMI socket loop error")


def _ensure_loop() -> None:
    global _loop_started
    with _loop_lock:
        if not _loop_started:
            # pyghmi wakes its I/O thread by sending to its first socket from the loopback
            # address: that socket must be a wildcard-bound client socket, not a BMC's
            # (bound to 127.78.x.y, it would never hear the wake-up, and new BMC sockets
            # would go unwatched for up to 300 s).
            pyghmi_session.Session._assignsocket()
            threading.Thread(target=_serve_forever, name="sim-ipmi", daemon=True).start()
            _loop_started = True


class IpmiBmc(pyghmi_bmc.Bmc):
    """One machine's BMC on host:port (UDP)."""

    def __init__(self, machine: str, power: MachinePower, users: dict[str, str], host: str, port: int) -> None:
        _ensure_loop()
        super().__init__(dict(users), port=port, address=host)
        self.machine = machine
        self.power = power
        self.host = host
        self.reachable = True
        self.commands: list[str] = []  # what was pressed, in order (for tests and the timeline)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> IpmiBmc:
        return self  # serving since construction: pyghmi's loop watches the socket

    def stop(self) -> None:
        # pyghmi's I/O thread selects on every socket in `iosockets`: a closed one left
        # there would stop it, and with it every other BMC of the process.
        sock = self.serversocket
        pyghmi_session.Session.bmc_handlers.pop(sock, None)
        if sock in pyghmi_session.iosockets:
            pyghmi_session.iosockets.remove(sock)
        try:
            sock.close()
        except OSError:
            pass

    # -- the network -----------------------------------------------------------------

    def sessionless_data(self, data: Any, sockaddr: Any) -> None:
        if self.reachable:
            super().sessionless_data(data, sockaddr)

    def handle_raw_request(self, request: Any, session: Any) -> None:
        if self.reachable:
            super().handle_raw_request(request, session)

    # -- the chassis -----------------------------------------------------------------

    def get_power_state(self) -> str:
        return "on" if self.power.is_on(self.machine) else "off"

    def power_off(self) -> int:
        self.commands.append("off")
        self.power.off(self.machine, "BMC (IPMI): chassis power off")
        return 0

    def power_shutdown(self) -> int:
        return self.power_off()  # no operating system to ask: a soft-off is an off here

    def power_on(self) -> int:
        self.commands.append("on")
        self.power.on(self.machine)
        return 0

    def power_reset(self) -> int:
        self.commands.append("reset")
        self.power.reset(self.machine, "BMC (IPMI): chassis power reset")
        return 0

    def power_cycle(self) -> int:
        self.commands.append("cycle")
        if self.power.is_on(self.machine):
            self.power.reset(self.machine, "BMC (IPMI): chassis power cycle")
        else:
            self.power.on(self.machine)
        return 0

    def cold_reset(self) -> int:
        return 0  # the BMC itself restarting: nothing to do for the machine
