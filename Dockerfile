# funnelcast service image: build a virtualenv in one stage, copy it into a non-root runtime.
# Build: DOCKER_BUILDKIT=1 docker build -t funnelcast .      Run: docker compose up (docker-compose.yml)
#
# BASE_IMAGE is any Python 3.11 image with `python3 -m venv`: the official one by default; where no
# registry can be reached, `make base-images` builds a Debian 12 one locally (deploy/base-images.sh).
# Both stages use the same base, so the virtualenv's interpreter path is the same in each.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN python3 -m venv /opt/funnelcast
# Dependencies first, from pyproject.toml alone, so a source change reuses this layer. A CA bundle
# for an intercepting proxy between the build and PyPI comes in as a BuildKit secret
# (`--secret id=pip_ca,src=...`): mounted for this one step, never stored in a layer. The cache
# mount keeps downloaded wheels between builds.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
    && /opt/funnelcast/bin/pip install --disable-pip-version-check -r /tmp/requirements.txt
COPY funnelcast funnelcast
COPY features features
COPY training training
COPY service service
# (pip keeps the compiled bytecode: the runtime user cannot write it, and every start would
# otherwise compile MLflow, Feast and pandas again.)
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    /opt/funnelcast/bin/pip install --disable-pip-version-check --no-deps .

FROM ${BASE_IMAGE} AS runtime
# LightGBM needs OpenMP; the official slim image lacks it, the local Debian base already has it.
RUN if ! ldconfig -p | grep -q 'libgomp.so.1'; then \
      apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --uid 10001 funnelcast \
    && mkdir -p /data /home/funnelcast/mlflow \
    && chown funnelcast:funnelcast /data /home/funnelcast/mlflow
COPY --from=build /opt/funnelcast /opt/funnelcast
ENV PATH=/opt/funnelcast/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GIT_PYTHON_REFRESH=quiet \
    FUNNELCAST_DATA_DIR=/data \
    FUNNELCAST_MLFLOW_TRACKING_URI=sqlite:////home/funnelcast/mlflow/mlflow.db \
    FUNNELCAST_MLFLOW_ARTIFACT_ROOT=/home/funnelcast/mlflow/artifacts \
    FUNNELCAST_SERVICE_HOST=0.0.0.0 \
    FUNNELCAST_SERVICE_PORT=8000
USER funnelcast
WORKDIR /home/funnelcast
# Data (feature tables, Feast registry) and the MLflow store are volumes or remote services.
VOLUME ["/data", "/home/funnelcast/mlflow"]
EXPOSE 8000
# Python, not curl: both bases have it, and the liveness probe needs nothing else installed.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["funnelcast", "serve"]
