"""nodewarden's webhook: Alertmanager intake, policy, the operator API and the durable
`NodeRemediation` records they produce.

Entry points: `webhook.wsgi:app` (gunicorn, `webhook/gunicorn.conf.py`) and
`python -m webhook` (development server). `webhook.app.create_app` wires everything.
"""
