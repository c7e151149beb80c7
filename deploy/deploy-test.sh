#!/usr/bin/env bash
# `make deploy-test`: the documented deployment, built and run here, end to end.
#
#  1. a Docker engine (installed and started when absent, as root), the base images (official or
#     built locally from Debian packages), the service image (BuildKit; the CA bundle a proxy to
#     PyPI needs comes in as a build secret, never a layer)
#  2. Redis + PostgreSQL from docker-compose.yml, a small world prepared inside the service image
#     (world, features, `features apply` to the SQL registry, materialise to Redis, training), then the service
#  3. /readyz ready; `features materialize` to Redis writes every entity; a lead of a known company
#     is scored (features from Redis) and assigned; an outcome is stored; an unknown account is 404
#  4. the service container restarts; the assignment is still there (converted releases capacity;
#     re-routing excludes the remembered rep)
#
# Exit 0 on success, 1 on a failed check, 3 (after saying why) when Docker cannot be run here.
# KEEP_STACK=1 leaves the stack up afterwards; DEPLOY_TEST_SCALE sets the world's size.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { echo "deploy-test [$(($(date +%s) - t0))s] $*"; }

DOCKER=$(bash deploy/docker-engine.sh) || exit $?
export DOCKER
if command -v docker-compose >/dev/null 2>&1; then COMPOSE=(docker-compose); else COMPOSE=("$DOCKER" compose); fi

step "base images"
bash deploy/base-images.sh
set -a
# shellcheck source=/dev/null
. deploy/images.env
set +a

step "service image"
bash deploy/build-image.sh

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export FUNNELCAST_PORT="127.0.0.1:$port" FUNNELCAST_IMAGE=funnelcast:local
compose=("${COMPOSE[@]}" -p funnelcast-deploytest -f docker-compose.yml -f deploy/compose.test.yml)
url="http://127.0.0.1:$port"
cleanup() {
  if [ "${KEEP_STACK:-}" = 1 ]; then
    echo "deploy-test: stack left up on $url (${compose[*]} down -v to remove it)"
  else
    "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  rm -f deploy/.smoke-state.json
}
trap cleanup EXIT
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true  # a stack left by an earlier run

step "starting redis and postgres"
"${compose[@]}" up -d --no-build redis postgres >/dev/null
for _ in $(seq 1 60); do
  healthy=$("$DOCKER" inspect --format '{{.State.Health.Status}}' \
    funnelcast-deploytest_redis_1 funnelcast-deploytest_postgres_1 2>/dev/null | sort -u | tr '\n' ' ')
  [ "$healthy" = "healthy " ] && break
  sleep 1
done
[ "${healthy:-}" = "healthy " ] || { echo "redis/postgres not healthy: $healthy"; "${compose[@]}" logs --tail 20; exit 1; }

# The service starts only once the online store holds the features and the serving directory
# (reps, open deals, renewals) that `features materialize` publishes: a replica reads no data folder.
step "preparing a small world inside the image (world, features, apply, materialise to redis, train)"
"${compose[@]}" run --rm --no-deps -T funnelcast sh -ec "
  funnelcast world generate --scale ${DEPLOY_TEST_SCALE:-0.06} >/dev/null
  funnelcast features build >/dev/null
  funnelcast features apply >/dev/null
  funnelcast features materialize >/dev/null
  funnelcast train all >/dev/null" 2>/var/tmp/funnelcast-deploy-prepare.log \
  || { tail -30 /var/tmp/funnelcast-deploy-prepare.log; echo "preparing the world in the container failed"; exit 1; }

step "starting the service on $url"
"${compose[@]}" up -d --no-build funnelcast >/dev/null
python3 deploy/smoke.py wait "$url" 240 || { "${compose[@]}" logs --tail 40 funnelcast; exit 1; }

step "materialising to redis again (incremental: every entity already online)"
"${compose[@]}" exec -T funnelcast funnelcast features materialize 2>/var/tmp/funnelcast-materialize.err \
  | tail -14 || { tail -30 /var/tmp/funnelcast-materialize.err; exit 1; }
company=$("${compose[@]}" exec -T funnelcast python3 -c \
  "import pandas as pd; print(pd.read_parquet('/data/features/company_firmographics.parquet').company_id.iloc[0])" \
  | tr -d '\r')

step "scoring a lead of $company and posting an outcome"
python3 deploy/smoke.py before "$url" "$company"

step "restarting the service container"
"${compose[@]}" restart funnelcast >/dev/null
python3 deploy/smoke.py wait "$url" 240 || { "${compose[@]}" logs --tail 40 funnelcast; exit 1; }
python3 deploy/smoke.py after "$url"

step "passed"
