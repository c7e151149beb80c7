#!/usr/bin/env bash
# Make a Docker engine and the tools deploy-test needs available, or say why not.
#
# Prints the docker CLI to use on its last line of stdout and exits 0; or prints the reason on
# stderr and exits 3 (the caller skips the deployment test and says so). As root, it installs
# Debian's docker.io, docker-compose (v1) and debootstrap when they are missing and starts dockerd
# in the background when nothing answers on the socket (machines without systemd).
set -uo pipefail

say() { echo "docker-engine: $*" >&2; }
cannot() { say "cannot run the Docker stack: $*"; exit 3; }

# A CLI that can build with BuildKit secrets: one with the buildx plugin, or Debian's 20.10 CLI,
# whose builder has BuildKit inside. (A newer CLI without buildx only has the legacy builder.)
pick_cli() {
  local cli
  for cli in docker /usr/bin/docker; do
    command -v "$cli" >/dev/null 2>&1 || continue
    if "$cli" buildx version >/dev/null 2>&1; then echo "$cli"; return 0; fi
    case "$("$cli" version --format '{{.Client.Version}}' 2>/dev/null)" in
      20.10.*|23.*) echo "$cli"; return 0 ;;
    esac
  done
  return 1
}

need_install=()
command -v dockerd >/dev/null 2>&1 || need_install+=(docker.io)
pick_cli >/dev/null || need_install+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need_install+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need_install+=(debootstrap)
if [ ${#need_install[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || cannot "missing ${need_install[*]} and not root to install them"
  command -v apt-get >/dev/null 2>&1 || cannot "missing ${need_install[*]} and no apt-get"
  say "installing ${need_install[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q "${need_install[@]}"; } >/var/tmp/funnelcast-apt.log 2>&1 \
    || cannot "apt-get install ${need_install[*]} failed (see /var/tmp/funnelcast-apt.log)"
fi

cli=$(pick_cli) || cannot "no docker CLI that can build with BuildKit"

if ! "$cli" info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || cannot "no Docker engine answers and not root to start one"
  command -v dockerd >/dev/null 2>&1 || cannot "dockerd is not installed"
  say "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    "$cli" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$cli" info >/dev/null 2>&1 || cannot "dockerd did not start within 60 s: $(tail -3 /var/log/dockerd.log | tr '\n' ' ')"
fi
echo "$cli"
