"""The docs' timing figures are the timing model's: the generated tables in
docs/fencing-protocol.md, and the worked figures quoted in docs/node-agent.md and
docs/results.md."""

from __future__ import annotations

import re
from pathlib import Path

from core import timing
from core.timing.inputs import AgentTimings, ControllerTimings
from core.timing.report import BEGIN, END, markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_fencing_protocols_tables_are_generated_from_the_model() -> None:
    text = (DOCS / "fencing-protocol.md").read_text()
    assert BEGIN in text and END in text, "docs/fencing-protocol.md lost its timing block"
    block = text[text.index(BEGIN):text.index(END) + len(END)]
    assert block == markdown(), "regenerate with `python -m core.timing docs`"


def test_the_agents_worked_example_is_the_models() -> None:
    a = AgentTimings()
    text = (DOCS / "node-agent.md").read_text()
    match = re.search(r"With the defaults: D = 3 x 5 \+ 4 \+ 10 \+ 5 = (\d+) s; reset within (\d+) \+ (\d+) = (\d+) s",
                      text)
    assert match, "docs/node-agent.md's worked example of D moved or changed form"
    d, d_again, w, reset = map(float, match.groups())
    assert d == d_again == timing.isolation_detect_s(a)
    assert w == a.watchdog_timeout_s and reset == timing.isolation_to_reset_s(a)


def test_the_results_quote_the_models_deadline() -> None:
    a, c = AgentTimings(), ControllerTimings()
    text = (DOCS / "results.md").read_text()
    match = re.search(r"`D \+ 2W \+ margin \+ skew` = (\d+) \+ (\d+) \+ (\d+) s", text)
    assert match, "docs/results.md's quoted deadline moved or changed form"
    d, two_w, rest = map(float, match.groups())
    assert d == timing.isolation_detect_s(a) and two_w == 2 * a.watchdog_timeout_s
    assert d + two_w + rest == timing.fence_deadline_s(timing.AGENT_HEARTBEAT_STALE, a, c)
