#!/usr/bin/env bash
# Build the service image funnelcast:local on the base named in deploy/images.env (base-images.sh).
#
# pip inside the build may need this machine's CA bundle (a proxy in front of PyPI): it is passed
# as a BuildKit secret, mounted only while pip runs and never stored in a layer of the image.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-$(bash deploy/docker-engine.sh)}
[ -f deploy/images.env ] || bash deploy/base-images.sh
set -a
# shellcheck source=/dev/null
. deploy/images.env
set +a

# pip's own setting first, then the environment's, then Debian's bundle
ca=$(python3 -m pip config get global.cert 2>/dev/null || true)
ca=${PIP_CERT:-${ca:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
secret=()
[ -s "$ca" ] && secret=(--secret "id=pip_ca,src=$ca")
echo "building funnelcast:local on $FUNNELCAST_BASE_IMAGE"
DOCKER_BUILDKIT=1 "$DOCKER" build -q "${secret[@]}" --build-arg "BASE_IMAGE=$FUNNELCAST_BASE_IMAGE" \
  -t "${FUNNELCAST_IMAGE:-funnelcast:local}" . >/dev/null
