"""gunicorn settings for the webhook: `gunicorn -c webhook/gunicorn.conf.py webhook.wsgi:app`.

- Workers: `NODEWARDEN_WORKERS` (default 2) gevent workers (`webhook.server.WebhookWorker`:
  a slow client costs a greenlet, never a worker; read deadlines and the connection bound
  are described there); `NODEWARDEN_BIND` (default 0.0.0.0:8080).
- The master imports nothing of the webhook, the Kubernetes client or prometheus_client:
  a worker monkey-patches the standard library for gevent when it starts, and a module
  such as urllib3 imported before that (inherited through fork) keeps unpatched classes
  (an `ssl.SSLContext` RecursionError). So the master validates the configuration in a
  child process and drops a dead worker's live gauges itself.
- Prometheus multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` is created (a fresh temporary
  directory unless set) and emptied before workers start, set in the environment so the
  workers inherit it before they import prometheus_client, and a dead worker's live
  gauges are dropped (`child_exit`).
- Settings, secrets and the policy file are validated once before workers start
  (`on_starting`, in a child process), so a bad configuration stops the server with one
  line naming the field instead of crash-looping workers.
- TLS / mTLS: pass gunicorn's own options, e.g.
  `GUNICORN_CMD_ARGS="--certfile=/tls/tls.crt --keyfile=/tls/tls.key --ca-certs=/tls/ca.crt --cert-reqs=2"`
  (docs/webhook.md).
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

bind = os.environ.get("NODEWARDEN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("NODEWARDEN_WORKERS", "2"))
worker_class = "webhook.server.WebhookWorker"
worker_connections = int(os.environ.get("NODEWARDEN_WORKER_CONNECTIONS", "1000"))
timeout = 30
graceful_timeout = 10
keepalive = 5
preload_app = False  # each worker builds its own app (watch threads do not survive fork)
accesslog = None
errorlog = "-"

_multiproc_dir: str = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or ""
_created_dir = not _multiproc_dir
if _created_dir:
    _multiproc_dir = tempfile.mkdtemp(prefix="nodewarden-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_multiproc_dir}"]


_VALIDATE = "from webhook.entry import validate; validate()"
_LIVE_GAUGES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")


def on_starting(server):
    # In a child process: see the module docstring. Its one line names what to fix.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    check = subprocess.run(
        [sys.executable, "-c", _VALIDATE], cwd=here, capture_output=True, text=True
    )
    if check.returncode != 0:
        on_exit(server)
        lines = (check.stderr or check.stdout).strip().splitlines()
        raise SystemExit(lines[-1] if lines else "nodewarden-webhook: cannot start")
    os.makedirs(_multiproc_dir, exist_ok=True)
    for entry in os.listdir(_multiproc_dir):
        path = os.path.join(_multiproc_dir, entry)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def child_exit(server, worker):
    # prometheus_client.multiprocess.mark_process_dead, without importing it here.
    for mode in _LIVE_GAUGES:
        for path in glob.glob(os.path.join(_multiproc_dir, f"gauge_{mode}_{worker.pid}.db")):
            os.remove(path)


def on_exit(server):
    if _created_dir:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)
