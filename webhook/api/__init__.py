"""HTTP blueprints, one per area: `alerts` (Alertmanager intake), `remediations` (the
operator API) and `ops` (health, readiness, metrics, the OpenAPI document). Shared
request helpers live in `webhook.api.common`."""
