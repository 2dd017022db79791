"""`python -m harness.agent_clock OFFSETS NODE -- <node_agent arguments>`: a node agent
whose wall clock is wrong, a fault of the test worlds.

The simulator's machines all share the host's clock, so "node X's clock is 60 s behind"
is played by running X's agent with a `Clock` whose `now()` adds X's offset from the
JSON file OFFSETS (`{"node-2": -60}`; nodes not in it run on the host's clock). The
monotonic clock is untouched, as on a real machine whose wall clock is off. Everything
else is the real agent.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from node_agent.lean import skip_kubernetes_package_init

skip_kubernetes_package_init()

import node_agent.cli as cli  # noqa: E402 - after the lean import set-up
from core.clock import RealClock  # noqa: E402


class OffsetClock(RealClock):
    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        return super().now() + self.offset_s


def main(argv: Sequence[str]) -> int:
    offsets_file, node, *rest = argv
    if rest[:1] == ["--"]:
        rest = rest[1:]
    offset = float(json.loads(Path(offsets_file).read_text()).get(node, 0.0))
    cli.RealClock = lambda: OffsetClock(offset)  # type: ignore[assignment,misc]
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
