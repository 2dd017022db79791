"""What a BMC sees of its machine: the power state, and the buttons.

A BMC is wired to the chassis, not to the operating system: it reads whether the machine
is powered, and can power it off, on, or reset it. Nothing else of the simulated world is
handed to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MachinePower:
    is_on: Callable[[str], bool]  # powered (booting or running)
    off: Callable[[str, str], None]  # (machine, reason)
    on: Callable[[str], None]
    reset: Callable[[str, str], None]  # hard reset: off, then on after the reboot delay
