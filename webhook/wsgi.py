"""The production WSGI entry: `gunicorn -c webhook/gunicorn.conf.py webhook.wsgi:app`.

Each gunicorn worker imports this module after it was forked, so each builds its own
app with its own watch-fed cache and background threads."""

from webhook.entry import app_from_env

app = app_from_env()
