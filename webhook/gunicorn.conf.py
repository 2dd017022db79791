"""gunicorn settings for the webhook: `gunicorn -c webhook/gunicorn.conf.py webhook.wsgi:app`.

- Workers: `NODEWARDEN_WORKERS` (default 2) gevent workers (`webhook.server.WebhookWorker`:
  a slow client costs a greenlet, never a worker; read deadlines and the connection bound
  are described there); `NODEWARDEN_BIND` (default 0.0.0.0:8080).
- The standard library is monkey-patched for gevent here, first, in the master: the
  master imports the webhook to validate it and the workers inherit those modules through
  fork, and a module such as urllib3 imported before the patch would keep unpatched
  classes (an `ssl.SSLContext` RecursionError in every API call).
- Prometheus multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` is created (a fresh temporary
  directory unless set) and emptied before workers start, set in the environment so the
  workers inherit it before they import prometheus_client, and a dead worker's live
  gauges are dropped (`child_exit`).
- Settings, secrets and the policy file are validated once in the master (`on_starting`),
  so a bad configuration stops the server with one line naming the field instead of
  crash-looping workers.
- TLS / mTLS: pass gunicorn's own options, e.g.
  `GUNICORN_CMD_ARGS="--certfile=/tls/tls.crt --keyfile=/tls/tls.key --ca-certs=/tls/ca.crt --cert-reqs=2"`
  (docs/webhook.md).
"""

from gevent import monkey

monkey.patch_all()  # before anything else is imported: see the module docstring

import glob  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

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


_LIVE_GAUGES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")


def on_starting(server):
    # Imported only now: prometheus_client must first see PROMETHEUS_MULTIPROC_DIR.
    from webhook.entry import validate

    try:
        validate()
    except BaseException:
        on_exit(server)
        raise
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
