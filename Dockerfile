# The orchestrator worker image (also runs every other `orchestrator` command: topics, deploy, produce).
#   docker build -t journey-orchestrator .
#   docker run --rm -e ORCH_BOOTSTRAP_SERVERS=kafka:9092 -p 6066:6066 journey-orchestrator worker
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/orchestrator orchestrator
COPY --from=build /install /usr/local
COPY journeys /opt/orchestrator/journeys
COPY templates /opt/orchestrator/templates
WORKDIR /opt/orchestrator
# Listen on every interface inside the container; keep RocksDB in the orchestrator user's home;
# one JSON object per log line for the log shipper.
ENV ORCH_WEB_HOST=0.0.0.0 \
    ORCH_WEB_PORT=6066 \
    ORCH_DATA_DIR=/var/lib/orchestrator \
    ORCH_LOG_JSON=true \
    PYTHONUNBUFFERED=1
USER orchestrator
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['ORCH_WEB_PORT'], timeout=3)"
ENTRYPOINT ["orchestrator"]
CMD ["worker"]
