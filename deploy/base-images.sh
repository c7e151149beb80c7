#!/usr/bin/env bash
# Make sure the three images the stack starts from exist in the local Docker engine, and write
# their names to deploy/images.env (read by deploy-test.sh and by `docker compose --env-file`).
#
#   python  the official python:3.11-slim if it can be pulled; else a Debian 12 (bookworm) base
#           made here with debootstrap + `docker import` (Debian's python3 is 3.11)
#   redis   the official redis:7 if it can be pulled; else Debian's redis-server on that base
#   postgres the official postgres:15 if it can be pulled; else Debian's postgresql-15 on that base
#
# Images built here are reused on the next run (their tags carry the version of their recipe), so
# only the first run on a machine pays for debootstrap (~2 min) and the two apt installs.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-$(bash deploy/docker-engine.sh)}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LOCAL_BASE=funnelcast/debian-python:bookworm-1
LOCAL_REDIS=funnelcast/debian-redis:bookworm-1
LOCAL_POSTGRES=funnelcast/debian-postgres:bookworm-1
PULL_TIMEOUT=${PULL_TIMEOUT:-60}

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# An image that is here, or that a registry gives us within the time limit.
available() {
  have "$1" && return 0
  [ "${FUNNELCAST_NO_PULL:-}" = 1 ] && return 1
  timeout "$PULL_TIMEOUT" "$DOCKER" pull -q "$1" >/dev/null 2>&1
}

local_base() {
  have "$LOCAL_BASE" && return 0
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  local root
  root=$(mktemp -d /var/tmp/funnelcast-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  echo "building $LOCAL_BASE with debootstrap from $MIRROR (about 2 minutes)"
  # python3-venv: the Dockerfile builds a virtualenv; libgomp1: LightGBM; passwd: useradd
  debootstrap --variant=minbase \
    --include=python3,python3-venv,libgomp1,ca-certificates,passwd \
    bookworm "$root" "$MIRROR" >/var/tmp/funnelcast-debootstrap.log 2>&1 \
    || { tail -20 /var/tmp/funnelcast-debootstrap.log >&2; return 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
}

# A Debian-packaged server image on the local base, from deploy/<name>.Dockerfile.
local_server() {
  local tag=$1 recipe=$2
  have "$tag" && return 0
  echo "building $tag from Debian packages"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --build-arg "BASE_IMAGE=$LOCAL_BASE" \
    -f "deploy/$recipe.Dockerfile" -t "$tag" deploy >/dev/null
}

if available python:3.11-slim; then
  base=python:3.11-slim
else
  local_base
  base=$LOCAL_BASE
fi
if available redis:7; then
  redis=redis:7
else
  local_base
  local_server "$LOCAL_REDIS" redis
  redis=$LOCAL_REDIS
fi
if available postgres:15; then
  postgres=postgres:15
else
  local_base
  local_server "$LOCAL_POSTGRES" postgres
  postgres=$LOCAL_POSTGRES
fi

cat > deploy/images.env <<EOF
FUNNELCAST_BASE_IMAGE=$base
REDIS_IMAGE=$redis
POSTGRES_IMAGE=$postgres
EOF
echo "images: python base $base, redis $redis, postgres $postgres"
