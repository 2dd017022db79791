"""The krew archive: reproducible, holding what the manifest names, and runnable on its own
(extracted alone, its executable runs the plugin)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("krew_package", ROOT / "scripts" / "krew_package.py")
assert spec and spec.loader
krew = importlib.util.module_from_spec(spec)
spec.loader.exec_module(krew)


def test_the_archive_is_reproducible_and_holds_what_the_manifest_installs(tmp_path: Path) -> None:
    data = krew.archive_bytes()
    assert data == krew.archive_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        assert tar.getmember("bin/kubectl-nodewarden").mode == 0o755
        tar.extractall(tmp_path, filter="data")
    manifest = yaml.safe_load((ROOT / "plugins" / "nodewarden.yaml").read_text())
    assert (manifest["kind"], manifest["metadata"]["name"]) == ("Plugin", "nodewarden")
    (platform,) = manifest["spec"]["platforms"]
    assert platform["bin"] == "bin/kubectl-nodewarden"
    for entry in platform["files"]:
        assert entry["from"] in names or any(n.startswith(entry["from"] + "/") for n in names), entry
    stamped = krew.stamped((ROOT / "plugins" / "nodewarden.yaml").read_text(), "ab" * 32)
    assert yaml.safe_load(stamped)["spec"]["platforms"][0]["sha256"] == "ab" * 32
    # Extracted alone, away from the checkout, it runs.
    out = subprocess.run([sys.executable, str(tmp_path / "bin" / "kubectl-nodewarden"), "what-if"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "settings" in out.stdout
