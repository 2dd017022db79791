"""docs/operations.md lists every controller setting with the default the code has, and
nothing the code does not have."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from controller.settings import ControllerSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \|", re.M)


def documented() -> dict[str, str]:
    text = DOC.read_text()
    section = text[text.index("## Controller settings"):]
    section = section[:section.index("\n## ", 1)]
    return {name: default.strip() for name, default in ROW.findall(section)}


def shown(value: object) -> str | None:
    """How the table writes a default; None where it describes one in words."""
    if value is None:
        return None
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def test_every_setting_is_documented_with_its_default() -> None:
    docs = documented()
    fields = {f.name: f.default for f in dataclasses.fields(ControllerSettings)}
    assert sorted(docs) == sorted(fields), "docs/operations.md 'Controller settings' is out of date"
    for name, default in fields.items():
        expected = shown(default)
        if expected is not None and expected != "``":
            assert docs[name] == expected, f"{name}: the docs say {docs[name]}, the code {expected}"
        else:
            assert not docs[name].startswith("`"), f"{name} has no default in code; the docs say {docs[name]}"
