# syntax=docker/dockerfile:1
# nodewarden: one image for every component.
#   webhook     gunicorn -c webhook/gunicorn.conf.py webhook.wsgi:app   (the default command)
#   controller  python -m controller
#   node agent  python -m node_agent --node-name NAME --config FILE
# Build: docker build -t nodewarden:0.1.0 .
#
# The base is pinned by tag and by the digest of its multi-architecture index; update both
# together (e.g. with Renovate) after checking the new image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# -- build: the runtime dependencies in a virtualenv, from wheels only ------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/nodewarden
COPY requirements.txt /tmp/requirements.txt
# Wheels only: nothing is compiled, so no compiler is needed here either.
RUN /opt/nodewarden/bin/pip install --only-binary=:all: --requirement /tmp/requirements.txt \
 && find /opt/nodewarden -name '__pycache__' -prune -exec rm -rf {} +

# -- runtime: the slim base, the virtualenv and the code; no build tools ----------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="nodewarden" \
      org.opencontainers.image.description="Recovers Kubernetes workloads from dead or cut-off nodes" \
      org.opencontainers.image.version="0.1.0"
ENV PATH=/opt/nodewarden/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# The account the webhook and the controller run as (the chart runs the agent as root: it
# needs the watchdog device).
# ClusterLabs' fence agents (fence_ipmilan with ipmitool, fence_redfish, ...), which the
# controller runs to power nodes off through their BMCs. They run on Debian's python3.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fence-agents ipmitool \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 65532 nodewarden \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin nodewarden
COPY --from=build /opt/nodewarden /opt/nodewarden
WORKDIR /app
COPY core/ core/
COPY webhook/ webhook/
COPY controller/ controller/
COPY node_agent/ node_agent/
# The default policy (the chart mounts its own at NODEWARDEN_POLICY_FILE).
COPY rules/remediation.yaml rules/remediation.yaml
# Compiled now: the root filesystem is read-only at run time.
RUN python -m compileall -q /app /opt/nodewarden
USER 65532:65532
# webhook, controller metrics, agent peer endpoint
EXPOSE 8080 9103 9471
CMD ["gunicorn", "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"]
