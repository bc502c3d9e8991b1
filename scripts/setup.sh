#!/usr/bin/env bash
# dockyard setup: idempotent, quick on a second run.
#   1. a Docker engine that answers (on Debian as root: installs docker.io and starts dockerd),
#      and docker-compose for the compose e2e test
#   2. the Python package (`dockyard` command) with its test extras, and Debian's chromium for the
#      console's headless browser test
#   3. the base image debian:bookworm-slim (pulled; where no registry answers, bootstrapped
#      locally with debootstrap and imported under that name)
#   4. the sandbox images, built only where their content hash has no image yet
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
BASE_IMAGE="${DOCKYARD_SETUP_BASE_IMAGE:-debian:bookworm-slim}"
DOCKERD_LOG="${DOCKYARD_DOCKERD_LOG:-/tmp/dockyard-dockerd.log}"

is_root_debian() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then log "Docker engine answers"; return; fi
  if ! is_root_debian; then
    log "no Docker engine answers and this is not root on Debian: start one (DOCKER_HOST) and rerun"
    exit 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    apt_install docker.io
  fi
  command -v docker >/dev/null 2>&1 || apt_install docker.io
  log "starting dockerd (log: $DOCKERD_LOG)"
  # Close our stdio in the daemon so callers waiting on this script's output are not held.
  setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then log "Docker engine answers"; return; fi
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; its log:"; tail -n 30 "$DOCKERD_LOG" >&2; exit 1
}

ensure_python() {
  # Checked from / so the current folder cannot stand in for an installed package.
  local probe='import service, bot, dockyard_client, githubkit, anthropic, pytest, pytest_docker, prometheus_client, ruff, mypy, schemathesis, aiohttp_jinja2, playwright, hatchling, yaml, os
print(os.path.dirname(service.__file__))'
  if [ "$(cd / && python3 -c "$probe" 2>/dev/null)" = "$PWD/service" ] \
     && command -v dockyard >/dev/null 2>&1 && command -v dockyard-bot >/dev/null 2>&1; then
    log "python package installed"
    return
  fi
  log "installing the python packages (pip install -e .[test,bot] -e ./sdk)"
  python3 -m pip install -q --disable-pip-version-check -e '.[test,bot]' -e ./sdk
}

ensure_chromium() {
  # tests/integration/test_console.py drives /usr/bin/chromium through Playwright (no browser download).
  if command -v chromium >/dev/null 2>&1; then log "chromium present"; return; fi
  if is_root_debian; then log "installing chromium"; apt_install chromium; return; fi
  log "chromium missing and not root on Debian: the console's browser test will be skipped"
}

ensure_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then log "base image $BASE_IMAGE present"; return; fi
  if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then log "pulled $BASE_IMAGE"; return; fi
  is_root_debian || { log "cannot pull $BASE_IMAGE and cannot bootstrap it (needs root on Debian)"; exit 1; }
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local dir; dir="$(mktemp -d /tmp/dockyard-rootfs.XXXXXX)"
  log "no registry: bootstrapping $BASE_IMAGE with debootstrap (about 30 s)"
  debootstrap --variant=minbase bookworm "$dir" >/tmp/dockyard-debootstrap.log 2>&1 \
    || { tail -n 20 /tmp/dockyard-debootstrap.log >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import --change 'LABEL dockyard.bootstrapped=debootstrap' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  log "imported $BASE_IMAGE (a local debootstrap stand-in)"
}

ensure_compose() {
  # The compose end-to-end test (tests/e2e) runs `docker-compose` (Debian's 1.29; no Compose v2 there).
  if command -v docker-compose >/dev/null 2>&1; then log "docker-compose present"; return; fi
  if is_root_debian; then log "installing docker-compose"; apt_install docker-compose; return; fi
  log "docker-compose missing and not root on Debian: the compose e2e test will be skipped"
}

build_images() {
  if [ -z "${DOCKYARD_BUILD_EXTRA_CA:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export DOCKYARD_BUILD_EXTRA_CA=/etc/ssl/certs/ca-certificates.crt
  fi
  python3 -m service images build
}

ensure_engine
ensure_compose
ensure_chromium
ensure_python
ensure_base_image
build_images
log "ready"
