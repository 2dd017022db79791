"""`python -m core.timing what-if [--SETTING=VALUE ...]`: the bounds and the expected
recovery timeline the given settings give (everything else at the shipped defaults).
`python -m core.timing docs`: the tables docs/fencing-protocol.md embeds.

SETTING is a setting's name as in its own configuration (`watchdog_timeout_s`,
`safety_margin_s`, `pod_gc_period_s`, `rule_evaluation_interval_s`, ...), prefixed with
its group (`agent.`, `controller.`, `kubernetes.`, `alerting.`) when ambiguous;
`--strategy=ResourceDeletion` models the controller deleting the pods itself. Exit code
2 names a setting it does not know.
"""

from __future__ import annotations

import sys

from core.settings import SettingsError
from core.timing.inputs import TimingInputs, with_overrides
from core.timing.report import markdown, render

USAGE = "usage: python -m core.timing what-if [--SETTING=VALUE ...] | docs"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["docs"]:
        print(markdown())
        return 0
    if not args or args[0] != "what-if":
        print(USAGE, file=sys.stderr)
        return 2
    changed: dict[str, str] = {}
    for arg in args[1:]:
        name, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep:
            print(f"expected --SETTING=VALUE, got {arg!r}\n{USAGE}", file=sys.stderr)
            return 2
        changed[name] = value
    try:
        inputs = with_overrides(TimingInputs(), changed)
    except (SettingsError, ValueError) as exc:
        print(f"bad setting {exc}", file=sys.stderr)
        return 2
    print(render(inputs, changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
