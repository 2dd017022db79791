"""Development server: `python -m webhook` (Werkzeug, threaded, one process).

Same settings as production (`NODEWARDEN_*`, `KUBECONFIG`); listens on
`NODEWARDEN_BIND` (default 0.0.0.0:8080). Use gunicorn in production."""

from __future__ import annotations

from webhook.entry import app_from_env, validate


def main() -> None:
    settings = validate()
    host, _, port = settings.bind.rpartition(":")
    app = app_from_env()
    app.run(host=host or "127.0.0.1", port=int(port), threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
