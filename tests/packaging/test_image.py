"""The container image, checked without a container engine: the Dockerfile's base is pinned,
it copies paths that exist and that .dockerignore lets through, it installs requirements.txt
only, its final stage has no build tools and runs as non-root, everything the code imports
is in it, and the commands the chart runs exist in it."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import re
import shlex
import sys
from dataclasses import dataclass, field

import pytest

from tests.packaging.chart import ROOT, VALUE_SETS, render

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PRODUCT = ("core", "webhook", "controller", "node_agent")
FENCE_DEBS = {"fence-agents", "ipmitool"}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|cc|make|build-essential|python3?-dev|libc6-dev|cargo|rustc)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse() -> tuple[dict[str, str], list[Stage]]:
    """ARGs before the first FROM, and the stages with their instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            stages.append(Stage(base, parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def ignored(path: str) -> bool:
    """Docker's .dockerignore rules: the last matching pattern wins; `!` re-includes; a
    pattern matching a directory covers everything under it."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    result = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) and "/" not in prefix.replace(pattern, "", 1)
                      if "/" not in pattern else fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            result = not negate
    return result


def test_the_base_is_a_slim_python_3_11_pinned_by_tag_and_digest() -> None:
    _, stages = parse()
    assert len(stages) >= 2, "multi-stage: build, then a clean runtime"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", stage.base), stage.base
    assert len({s.base for s in stages}) == 1, "build and runtime on the same base"


def test_it_installs_the_pinned_runtime_requirements_only() -> None:
    _, stages = parse()
    copies = [rest for stage in stages for kw, rest in stage.instructions if kw == "COPY"]
    assert any(c.split()[0] == "requirements.txt" for c in copies)
    assert not any("requirements-dev" in c for c in copies)
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"not pinned: {line}"
    installs = [rest for stage in stages for kw, rest in stage.instructions if kw == "RUN" and "pip install" in rest]
    assert installs and all("--only-binary=:all:" in i and "requirements.txt" in i for i in installs)


def test_the_final_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    _, stages = parse()
    final = stages[-1]
    for keyword, rest in final.instructions:
        if keyword == "RUN":
            # Only the fence agents (run by the controller) come from Debian, and nothing else.
            debs = re.findall(r"apt-get install (?:-\S+ )*([\w.+\- ]+?)(?: &&|$)", rest)
            assert all(set(d.split()) <= FENCE_DEBS for d in debs), rest
            assert "pip install" not in rest, rest
            assert not BUILD_TOOLS.search(rest.replace("compileall", "")), rest
        if keyword == "COPY" and rest.startswith("--from="):
            assert rest.split()[1] == "/opt/nodewarden", "only the virtualenv comes from the build stage"
    (user,) = [rest for keyword, rest in final.instructions if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root user (runAsNonRoot can verify it)"
    assert str(find_webhook_uid()) == uid, "the chart's runAsUser is the image's user"


def find_webhook_uid() -> int:
    from tests.packaging.chart import find

    return int(find(render({}), "Deployment", "nodewarden-webhook")["spec"]["template"]["spec"]["securityContext"]["runAsUser"])


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    _, stages = parse()
    copied = []
    for stage in stages:
        for keyword, rest in stage.instructions:
            if keyword in ("COPY", "ADD") and not rest.startswith("--from="):
                assert keyword == "COPY", "ADD fetches and unpacks: use COPY"
                *sources, _ = shlex.split(rest)
                copied += sources
    assert copied
    for source in copied:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such path"
        assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
        if path.is_dir():
            for file in path.rglob("*.py"):
                assert not ignored(str(file.relative_to(ROOT))), f"{file} excluded by .dockerignore"
    for kept_out in ("tests", "sim", "bench", ".venv", ".git", "docs", "requirements-dev.txt", "helm"):
        assert ignored(kept_out), f".dockerignore lets {kept_out} into the build context"
    assert ignored("webhook/__pycache__/app.cpython-311.pyc")


def test_the_image_holds_every_module_the_code_imports() -> None:
    _, stages = parse()
    copied = {shlex.split(rest)[0].rstrip("/") for kw, rest in stages[-1].instructions
              if kw == "COPY" and not rest.startswith("--from=")}
    assert set(PRODUCT) <= copied, "the three packages"
    required = {normalized(re.split(r"[=<>\[]", line)[0])
                for line in (ROOT / "requirements.txt").read_text().splitlines() if line.split("#")[0].strip()}
    distributions = importlib.metadata.packages_distributions()
    for package in PRODUCT:
        for file in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                           else [])
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top == "__future__" or top in copied:
                        continue
                    dists = {normalized(d) for d in distributions.get(top, [])}
                    assert dists & required, f"{file.relative_to(ROOT)} imports {top}, not in requirements.txt"
                    assert top not in ("sim", "tests", "bench"), f"{file} imports {top}"


def normalized(distribution: str) -> str:
    """PEP 503's normalized distribution name."""
    return re.sub(r"[-_.]+", "-", distribution.strip()).lower()


@pytest.mark.parametrize("value_set", ["defaults", "everything-on"])
def test_the_commands_the_chart_runs_exist_in_the_image(value_set: str) -> None:
    _, stages = parse()
    final = stages[-1]
    (workdir,) = [rest for kw, rest in final.instructions if kw == "WORKDIR"]
    assert workdir == "/app"
    commands = []
    for doc in render(VALUE_SETS[value_set]):
        if doc["kind"] in ("Deployment", "DaemonSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                commands.append(container["command"] + container.get("args", []))
    (cmd,) = [rest for kw, rest in final.instructions if kw == "CMD"]
    commands.append(__import__("json").loads(cmd))
    for command in commands:
        program = command[0]
        assert program in ("gunicorn", "python"), command
        if program == "python":
            assert command[1] == "-m"
            module = command[2]
            assert (ROOT / module.replace(".", "/") / "__main__.py").is_file(), f"{module} has no __main__"
        else:
            config = command[command.index("-c") + 1]
            assert (ROOT / config).is_file(), config
            module, _, attribute = command[-1].partition(":")
            source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
            assert re.search(rf"^{attribute}\s*=", source, flags=re.M), f"{command[-1]} is not defined"
            assert (ROOT / "requirements.txt").read_text().count("gunicorn==") == 1


def test_the_exposed_ports_are_the_charts() -> None:
    _, stages = parse()
    (exposed,) = [rest for kw, rest in stages[-1].instructions if kw == "EXPOSE"]
    docs = render({})
    ports = {p["containerPort"] for d in docs if d["kind"] in ("Deployment", "DaemonSet")
             for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert {int(p) for p in exposed.split()} == ports


def test_python_files_are_compiled_at_build_time_for_the_read_only_filesystem() -> None:
    _, stages = parse()
    runs = [rest for kw, rest in stages[-1].instructions if kw == "RUN"]
    assert any("compileall" in r and "/app" in r for r in runs)
    index = {kw + " " + rest: i for i, (kw, rest) in enumerate(stages[-1].instructions)}
    compile_at = next(i for text, i in index.items() if "compileall" in text)
    assert all(i < compile_at for text, i in index.items() if text.startswith("COPY")), "compile after every COPY"


def test_the_image_ships_the_fence_agents_the_controller_runs() -> None:
    _, stages = parse()
    runs = " ".join(rest for keyword, rest in stages[-1].instructions if keyword == "RUN")
    assert re.search(r"apt-get install .*\bfence-agents\b", runs) and "ipmitool" in runs
    assert "rm -rf /var/lib/apt/lists" in runs, "no package lists left in the image"
