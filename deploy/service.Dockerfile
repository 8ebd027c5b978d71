# The image of one Golden Key Hall service; the four services share this recipe.
# Build context: the repository root. Build arguments: SERVICE (queue | concierge | parking | feedback)
# and PORT (its HTTP port: 8001 | 8002 | 8003 | 8004), e.g.
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=queue --build-arg PORT=8001 -t goldenkey/queue .
# docker-compose.yml builds all four this way.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: a virtualenv holding goldenkey-shared, the service and their pinned dependencies ---
FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build argument SERVICE is required" >&2; exit 1; }
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
WORKDIR /build
COPY constraints.txt ./
COPY shared/ shared/
COPY services/${SERVICE}/ services/${SERVICE}/
# Regular (non-editable) installs: the runtime stage gets the venv and nothing of the sources.
RUN /opt/venv/bin/pip install -c constraints.txt ./shared "./services/${SERVICE}" \
 && /opt/venv/bin/python -c "import importlib; importlib.import_module('goldenkey.${SERVICE}.__main__')"

# --- runtime: the interpreter and the venv, run as an unprivileged user ---
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG PORT
RUN { [ -n "${SERVICE}" ] && [ -n "${PORT}" ]; } || { echo "build arguments SERVICE and PORT are required" >&2; exit 1; } \
 && groupadd --system --gid 10001 goldenkey \
 && useradd --system --uid 10001 --gid goldenkey --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin goldenkey
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GOLDENKEY_SERVICE=${SERVICE} \
    GOLDENKEY_HTTP_HOST=0.0.0.0 \
    GOLDENKEY_HTTP_PORT=${PORT}
LABEL org.opencontainers.image.title="goldenkey-${SERVICE}" \
      org.opencontainers.image.description="Golden Key Hall: the ${SERVICE} service"
# Numeric, so orchestrators can verify runAsNonRoot.
USER 10001:10001
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ['GOLDENKEY_HTTP_PORT'], timeout=4)"]
# SIGTERM drains and exits within 10 s (DESIGN §7.6); `exec` makes python PID 1 so it gets the signal.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec python -m \"goldenkey.${GOLDENKEY_SERVICE}\""]
