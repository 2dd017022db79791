"""Build the krew archive of `kubectl nodewarden` and stamp its sha256 into the manifest.

    python scripts/krew_package.py [--out dist] [--check]

The archive `kubectl-nodewarden.tar.gz` holds `bin/kubectl-nodewarden`, the
`kubectl_plugin` and `core` packages and `requirements.txt`: what the executable imports
and what its Python needs. It is reproducible (sorted names,
fixed owner and times, gzip without a timestamp), so the same sources give the same
sha256 on any machine. The manifest `plugins/nodewarden.yaml` names that sha256;
`--check` only says whether it still matches (exit 1 if not: run without `--check` before
a release, and upload the archive to the release the manifest's `uri` names).

Install from a checkout without a release:
`kubectl krew install --manifest=plugins/nodewarden.yaml --archive=dist/kubectl-nodewarden.tar.gz`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "plugins" / "nodewarden.yaml"
ARCHIVE = "kubectl-nodewarden.tar.gz"
PACKAGES = ("kubectl_plugin", "core")
FILES = ("bin/kubectl-nodewarden", "requirements.txt")


def members(root: Path = ROOT) -> list[Path]:
    out = [root / f for f in FILES]
    for pkg in PACKAGES:
        out += [p for p in (root / pkg).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def archive_bytes(root: Path = ROOT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in members(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0, 0, "", ""
            info.mode = 0o755 if path.parent.name == "bin" else 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def stamped(manifest: str, sha256: str) -> str:
    return re.sub(r"(?m)^(\s*sha256:\s*)\S+$", lambda m: m.group(1) + sha256, manifest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    p.add_argument("--check", action="store_true", help="only check the manifest's sha256")
    args = p.parse_args(argv)
    data = archive_bytes()
    sha = hashlib.sha256(data).hexdigest()
    manifest = MANIFEST.read_text()
    if args.check:
        if stamped(manifest, sha) != manifest:
            print(f"{MANIFEST.name}: sha256 is stale; the archive's is {sha}", file=sys.stderr)
            return 1
        print(f"{MANIFEST.name}: sha256 {sha} matches")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ARCHIVE).write_bytes(data)
    MANIFEST.write_text(stamped(manifest, sha))
    print(f"{args.out / ARCHIVE}: sha256 {sha} (written into {MANIFEST.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
