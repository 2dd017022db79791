"""kubeconfig files for the emulated cluster, one per identity."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def render(server: str, token: str, user: str, ca_pem: bytes | None,
           cluster: str = "nodewarden-sim") -> str:
    cluster_entry: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    context = f"{user}@{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: str | Path, server: str, token: str, user: str, ca_pem: bytes | None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(server, token, user, ca_pem))
    p.chmod(0o600)
    return p
