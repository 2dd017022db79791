"""The BMCs of a simulated cluster: for each machine an IPMI BMC (UDP) and a Redfish BMC
(HTTPS), each on its own loopback address 127.78.x.y, with the machine's BMC users.

    fleet = BmcFleet(power, workdir, BmcOptions(users={"admin": "secret"}), call_later)
    fleet.start(["node-1", "node-2"])
    fleet.ipmi["node-1"].address      # "127.78.0.2:40123" for fence_ipmilan --ip/--ipport
    fleet.redfish["node-1"].address   # for fence_redfish --ip/--ipport (CA: fleet.ca_file)
    fleet.set_reachable("node-1", False)   # the BMC's network is down

A machine can be made to power itself on again (a "power on after AC loss" policy, a
person pressing the button): `fleet.powers_on_again.add("node-1")` powers it on right
after its BMC has once reported it Off following an off through the BMC. That is how
tests show that a power-off that did not hold is not trusted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..apiserver import tls
from .power import MachinePower

if TYPE_CHECKING:  # imported when started: pyghmi and sushy-tools are heavy and global
    from .ipmi import IpmiBmc
    from .redfish import RedfishBmc

PROTOCOLS = ("ipmi", "redfish")


@dataclass(frozen=True)
class BmcOptions:
    users: dict[str, str] = field(default_factory=lambda: {"admin": "password"})
    protocols: tuple[str, ...] = PROTOCOLS
    machines: tuple[str, ...] | None = None  # None: every machine has a BMC


def bmc_host(index: int) -> str:
    return f"127.78.{index // 250}.{index % 250 + 1}"


def free_port(host: str, kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BmcFleet:
    def __init__(self, power: MachinePower, workdir: Path, options: BmcOptions,
                 call_later: Callable[[float, Callable[[], None]], object]) -> None:
        unknown = set(options.protocols) - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"unknown BMC protocol(s): {', '.join(sorted(unknown))}")
        self.options = options
        self.workdir = workdir
        self.call_later = call_later
        self.powers_on_again: set[str] = set()
        self._off_by_bmc: set[str] = set()
        self.power = MachinePower(is_on=self._is_on(power), off=self._off(power), on=power.on, reset=power.reset)
        self.ipmi: dict[str, IpmiBmc] = {}
        self.redfish: dict[str, RedfishBmc] = {}
        self.ca_file = workdir / "ca.crt"

    def _off(self, power: MachinePower) -> Callable[[str, str], None]:
        def off(machine: str, reason: str) -> None:
            power.off(machine, reason)
            if machine in self.powers_on_again:
                self._off_by_bmc.add(machine)

        return off

    def _is_on(self, power: MachinePower) -> Callable[[str], bool]:
        def is_on(machine: str) -> bool:
            on = power.is_on(machine)
            if not on and machine in self._off_by_bmc:
                self._off_by_bmc.discard(machine)
                self.call_later(0.0, lambda: power.on(machine))
            return on

        return is_on

    def start(self, machines: list[str]) -> BmcFleet:
        from .ipmi import IpmiBmc
        from .redfish import RedfishBmc

        self.workdir.mkdir(parents=True, exist_ok=True)
        server_tls = tls.generate(("127.0.0.1", "localhost", *(bmc_host(i) for i in range(1, len(machines) + 1))))
        self.ca_file.write_bytes(server_tls.ca_pem)
        context = server_tls.context(self.workdir / "tls") if "redfish" in self.options.protocols else None
        wanted = self.options.machines
        for index, machine in enumerate(machines, start=1):
            if wanted is not None and machine not in wanted:
                continue
            host = bmc_host(index)
            if "ipmi" in self.options.protocols:
                self.ipmi[machine] = IpmiBmc(machine, self.power, self.options.users, host,
                                             free_port(host, socket.SOCK_DGRAM)).start()
            if context is not None:
                self.redfish[machine] = RedfishBmc(machine, self.power, self.options.users, host, 0, context,
                                                   self.workdir / "redfish").start()
        return self

    def stop(self) -> None:
        for bmc in self.ipmi.values():
            bmc.stop()
        for rf in self.redfish.values():
            rf.close()

    def set_reachable(self, machine: str, reachable: bool) -> None:
        if machine in self.ipmi:
            self.ipmi[machine].reachable = reachable
        if machine in self.redfish:
            self.redfish[machine].reachable = reachable

    def addresses(self) -> dict[str, dict[str, str]]:
        """{"ipmi": {machine: "host:port"}, "redfish": {...}}"""
        return {"ipmi": {m: b.address for m, b in self.ipmi.items()},
                "redfish": {m: b.address for m, b in self.redfish.items()}}
