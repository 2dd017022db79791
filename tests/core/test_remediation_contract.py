"""core owns the NodeRemediation contract: the shapes match the CRD's status schema field
for field, the table of who writes what matches docs/noderemediation.md, and no module
outside core spells a phase name."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

from core.remediation import WRITERS, Phase, Writer
from core.remediation_status import status_fields

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "helm/nodewarden/crds/noderemediations.yaml"
DOC = ROOT / "docs/noderemediation.md"
# Product packages that must spell phases through core.remediation.Phase.
PRODUCT = ("controller", "webhook", "node_agent", "kubectl_plugin")
# Files another change owns this round (the controller's machine and loop are being split);
# each is listed with the phase literals it still holds, so a new one fails the test.
NOT_YET = {"controller/loop.py": 2}


def _status_schema() -> dict[str, Any]:
    doc = yaml.safe_load(CRD.read_text())
    version = doc["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]


def _schema_fields(schema: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, sub in (schema.get("properties") or {}).items():
        path = prefix + key
        kind = sub.get("format") if sub.get("format") == "date-time" else sub.get("type")
        out[path] = kind
        if sub.get("type") == "object" and not sub.get("x-kubernetes-preserve-unknown-fields"):
            out.update(_schema_fields(sub, path + "."))
        elif sub.get("type") == "array" and (sub.get("items") or {}).get("type") == "object":
            out.update(_schema_fields(sub["items"], path + "[]."))
    return out


def test_the_crd_declares_every_field_the_shapes_write_and_nothing_else() -> None:
    declared = _schema_fields(_status_schema())
    shaped = dict(status_fields())
    assert sorted(set(shaped) - set(declared)) == [], "written but not in the CRD's status schema"
    assert sorted(set(declared) - set(shaped)) == [], "in the CRD's status schema but no shape reads it"
    assert {p: k for p, k in shaped.items() if declared[p] != k} == {}, "kinds differ"


def test_the_crd_lists_every_phase() -> None:
    assert _status_schema()["properties"]["phase"]["enum"] == [str(p) for p in Phase]


def _doc_table(after: str, prefix: str) -> dict[str, frozenset[Writer]]:
    """The `| field | writer | meaning |` table that follows `after` in the doc."""
    text = DOC.read_text().split(after, 1)[1]
    table = text[text.index("| field | writer |"):].split("\n\n", 1)[0]
    rows: dict[str, frozenset[Writer]] = {}
    previous: frozenset[Writer] = frozenset()
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        field = cells[0].strip("`").removesuffix("[]")
        who = previous if cells[1] == "same" else frozenset(w for w in Writer if w.value in cells[1])
        rows[prefix + field] = previous = who
    return rows


def test_the_docs_table_of_writers_is_the_one_in_core() -> None:
    status = _doc_table("## `status`", "status.")
    outside = _doc_table("Outside `status`", "")
    assert status and outside, "docs/noderemediation.md lacks a table of writers"
    assert {**status, **outside} == WRITERS


def test_every_status_part_has_a_writer_and_every_writer_entry_a_shape() -> None:
    shaped = {"status." + re.sub(r"\[\]", "", p) for p, _ in status_fields()}
    in_core = {k for k in WRITERS if k.startswith("status.")}
    top = {p for p in shaped if p.count(".") == 1}
    assert top <= in_core, "a status part without a writer in core.remediation.WRITERS"
    assert in_core <= shaped, "a writer entry for a field no shape has"


def test_people_write_only_the_spec_and_annotations() -> None:
    for path, writers in WRITERS.items():
        if Writer.PERSON in writers:
            assert path == "spec" or path.startswith("metadata.annotations."), path
    assert not any(Writer.AGENT in w for p, w in WRITERS.items() if p != "status.agentReport")


def _enum_member_values(tree: ast.AST) -> set[int]:
    """ids of the constants that are members of an enum class (another vocabulary that
    happens to share a word with a phase: a reason, an order outcome)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(b) for b in node.bases):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


def phase_literals(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    members = _enum_member_values(tree)
    phases = {str(p) for p in Phase}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in phases and id(node) not in members]


def test_no_module_outside_core_spells_a_phase_name() -> None:
    found: dict[str, list[int]] = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = phase_literals(path)
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    assert {p: len(lines) for p, lines in found.items()} == NOT_YET, found


def test_the_phase_check_finds_a_phase_spelled_as_a_string(tmp_path: Path) -> None:
    spelled = tmp_path / "m.py"
    spelled.write_text('import enum\n\nclass R(enum.StrEnum):\n    FENCED = "Fenced"\n\n'
                       'def f(s):\n    return s == "Fenced" or s in ("Pending",)\n')
    assert phase_literals(spelled) == [7, 7]
