# funnelcast service image: multi-stage (build wheels, then a slim non-root runtime with a health check).
# Build: docker build -t funnelcast .   Run: docker compose up   (see docker-compose.yml)
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY funnelcast funnelcast
COPY features features
COPY training training
COPY service service
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 funnelcast
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER funnelcast
WORKDIR /home/funnelcast
# Data (feature tables, Feast registry and online store) and the MLflow store are mounted or remote:
ENV FUNNELCAST_DATA_DIR=/data \
    FUNNELCAST_SERVICE_HOST=0.0.0.0 \
    FUNNELCAST_SERVICE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["funnelcast", "serve"]
