"""gunicorn settings for the webhook: `gunicorn -c webhook/gunicorn.conf.py webhook.wsgi:app`.

- Workers: `NODEWARDEN_WORKERS` (default 2) gthread workers with `NODEWARDEN_THREADS`
  (default 4) threads each; `NODEWARDEN_BIND` (default 0.0.0.0:8080).
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

import os
import shutil
import tempfile

bind = os.environ.get("NODEWARDEN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("NODEWARDEN_WORKERS", "2"))
threads = int(os.environ.get("NODEWARDEN_THREADS", "4"))
worker_class = "gthread"
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
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _created_dir:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)
