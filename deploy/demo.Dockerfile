# The image of the simulator (`python -m goldenkey.demo`) for docker-compose.yml's `demo` profile:
# it plays a hall day against the compose stack's services, so Grafana's dashboards fill with a
# live day, and leaves its report in /report. Build context: the repository root.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
WORKDIR /build
COPY constraints.txt ./
COPY shared/ shared/
COPY demo/ demo/
RUN /opt/venv/bin/pip install -c constraints.txt ./shared ./demo \
 && /opt/venv/bin/python -c "import goldenkey.demo.__main__"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 goldenkey \
 && useradd --system --uid 10001 --gid goldenkey --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin goldenkey \
 && mkdir -p /report /var/cache/matplotlib && chown 10001:10001 /report \
 && chmod 1777 /var/cache/matplotlib
COPY --from=builder /opt/venv /opt/venv
# The dashboards whose every panel the books check against Prometheus.
COPY deploy/grafana/dashboards/ /opt/goldenkey/dashboards/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/var/cache/matplotlib \
    GOLDENKEY_DASHBOARDS=/opt/goldenkey/dashboards
LABEL org.opencontainers.image.title="goldenkey-demo" \
      org.opencontainers.image.description="Golden Key Hall: a simulated hall day through the services' HTTP APIs"
USER 10001:10001
WORKDIR /report
ENTRYPOINT ["python", "-m", "goldenkey.demo"]
