"""The production WSGI entry: `gunicorn -c webhook/gunicorn.conf.py webhook.wsgi:app`.

Each gunicorn worker imports this module after it was forked, so each builds its own
app with its own watch-fed cache and background threads.

Once the app is built, every object alive (about 170,000: the imported modules, the
Kubernetes client, the policy) is moved out of the garbage collector's generations
(`gc.freeze`): they live as long as the worker, and a full collection would otherwise
walk them all again, about 0.1 s of a request's time whenever one runs."""

import gc

from webhook.entry import app_from_env

app = app_from_env()
gc.freeze()
