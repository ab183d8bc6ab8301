# backup-monitor: multi-stage build. The base is swappable: --build-arg BASE=...
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
# ".[s3]" adds object-storage targets (boto3, about 100 MB more); ".[age]" age decryption
# for decrypt_identity (pyrage, about 2 MB); ".[s3,age]" both.
ARG PACKAGE=.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY alerts ./alerts
# The dashboard ships in the wheel (backup-monitor dashboard renders it).
COPY grafana/dashboards ./grafana/dashboards
# Wheels of the program and everything it needs, for a clean runtime stage.
RUN python3 -m pip wheel --no-cache-dir --wheel-dir /wheels "${PACKAGE}"

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="backup-monitor" \
      org.opencontainers.image.description="Prometheus exporter and alerting monitor for backups" \
      org.opencontainers.image.source="https://github.com/backup-monitor/backup-monitor" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /wheels /tmp/wheels
RUN python3 -m venv /opt/backup-monitor \
 && /opt/backup-monitor/bin/pip install --no-cache-dir --no-index /tmp/wheels/*.whl \
 && /opt/backup-monitor/bin/pip uninstall --yes --quiet pip \
 && rm -rf /tmp/wheels \
 && groupadd --system --gid 10001 backup-monitor \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/backup-monitor \
      --shell /usr/sbin/nologin backup-monitor \
 && mkdir -p /var/lib/backup-monitor /etc/backup-monitor /backups \
 && chown 10001:10001 /var/lib/backup-monitor
COPY deploy/compose/backup-monitor.yml /etc/backup-monitor/config.yml
ENV PATH=/opt/backup-monitor/bin:$PATH \
    BACKUP_MONITOR_STATE_DIR=/var/lib/backup-monitor \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/backup-monitor"]
EXPOSE 19117
# The program checks itself: no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["backup-monitor", "health"]
ENTRYPOINT ["backup-monitor"]
CMD ["serve", "--config", "/etc/backup-monitor/config.yml"]
