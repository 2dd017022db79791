"""`make playground` as a new user drives it: source env.sh, kubectl, the fault command,
the kubectl plugin, the operator API with curl's request, then Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from harness import playground

ROOT = Path(__file__).resolve().parents[2]


def _sourced(env_sh: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"source {shlex.quote(str(env_sh))} && env -0"], check=True,
                         capture_output=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.mark.skipif(not any((Path(p) / "kubectl").exists() for p in os.environ.get("PATH", "").split(":")),
                    reason="kubectl not installed (scripts/ensure-tools)")
def test_the_playground_runs_until_stopped_and_answers_what_its_cheat_sheet_offers(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pg"
    ready, stop = threading.Event(), threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(playground.run(folder, 0.05, 3, False, ready, stop)))
    runner.start()
    try:
        assert ready.wait(120), "the playground never became ready"
        sheet = capsys.readouterr().out
        assert f"source {folder / 'env.sh'}" in sheet
        env = _sourced(folder / "env.sh")
        assert Path(env["KUBECONFIG"]).is_file()
        nodes = subprocess.run(["kubectl", "get", "nodes", "-o", "name"], env=env, capture_output=True, text=True,
                               timeout=60)
        assert nodes.returncode == 0, nodes.stderr
        assert sorted(nodes.stdout.split()) == ["node/node-1", "node/node-2", "node/node-3"]
        # the fault command exactly as the cheat sheet prints it
        line = next(x.strip() for x in sheet.splitlines() if " power-off " in x)
        fault = subprocess.run(["bash", "-c", line], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert fault.returncode == 0, fault.stderr
        assert json.loads(fault.stdout)  # the simulator's answer
        # the kubectl plugin, exactly as the cheat sheet prints it, on the PATH env.sh sets
        line = next(x.strip() for x in sheet.splitlines() if x.strip() == "kubectl nodewarden status")
        plugin = subprocess.run(["bash", "-c", line], env=env, cwd="/", capture_output=True, text=True, timeout=120)
        assert plugin.returncode == 0, plugin.stderr
        assert plugin.stdout.startswith("Pause switch: off")
        # the operator API, with the token and address from env.sh
        req = urllib.request.Request(env["WEBHOOK"] + "/api/v1/remediations",
                                     headers={"Authorization": f"Bearer {env['OP_TOKEN']}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    finally:
        stop.set()
        runner.join(120)
    assert not runner.is_alive()
    assert result == [0], "the playground reports invariant violations"
    assert "playground: stopped" in capsys.readouterr().out


def test_bad_arguments_are_refused_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        playground.main(["--time-scale", "5"])
    assert exc.value.code == 2
    assert "--time-scale must be between" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        playground.main(["--nodes", "1"])
    assert "--nodes must be between" in capsys.readouterr().err


def test_the_module_runs_as_a_program() -> None:
    out = subprocess.run([sys.executable, "-m", "harness.playground", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--time-scale" in out.stdout
