# dockyard control service: the aiohttp API in a container that drives the HOST's Docker engine
# through its socket (see compose.yaml and the README's "Running it with docker-compose").
#
# DOCKYARD_EXTRAS: the package's extras to install too, comma-separated ("bot": the code-fix bot,
# `dockyard-bot serve`, for compose's `bot` profile). Empty by default: the service only.
#
# BASE_IMAGE: python:3.11-slim-bookworm by default. Any Debian bookworm image works: where the
# base has no python3 (debian:bookworm-slim, e.g. the debootstrap stand-in scripts/setup.sh
# imports when no registry answers) it is installed with apt.
#
# pip may need to trust an intercepting proxy: put its CA bundle at ./dockyard-extra-ca.crt
# (git-ignored) before building. As in the sandbox images, it is used in the builder stage only
# and never reaches the final image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- builder: a venv at /opt/dockyard with the package and its dependencies ----------------------
FROM ${BASE_IMAGE} AS builder
ARG DOCKYARD_EXTRAS=""
USER root
RUN set -eux; \
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
        export DEBIAN_FRONTEND=noninteractive; \
        apt-get update; \
        apt-get install -y --no-install-recommends python3 python3-venv; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/dockyard
# The wildcard makes the CA optional: no file, nothing copied.
COPY pyproject.toml dockyard-extra-ca.cr[t] /src/
# The client SDK (its own distribution, dockyard-client): the bot extra depends on it, so it is
# installed from here with the dependencies whenever an extra asks for it.
COPY sdk /src/sdk
# Dependencies first (a layer that changes only with pyproject.toml and sdk/), then the package itself.
RUN set -eux; \
    if [ -s /src/dockyard-extra-ca.crt ]; then export PIP_CERT=/src/dockyard-extra-ca.crt; fi; \
    export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore; \
    /opt/dockyard/bin/python -c 'import os, tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; extras = [e for e in os.environ["DOCKYARD_EXTRAS"].split(",") if e]; print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))' > /src/requirements.txt; \
    sdk=""; if grep -q '^dockyard-client' /src/requirements.txt; then sdk=/src/sdk; fi; \
    /opt/dockyard/bin/pip install "$(/opt/dockyard/bin/python -c 'import tomllib; print(tomllib.load(open("/src/pyproject.toml", "rb"))["build-system"]["requires"][0])')" -r /src/requirements.txt $sdk
# The wheel carries sandbox-images (as service/sandbox_images). bot/ is in it too; it runs only
# where its extra's dependencies were installed (DOCKYARD_EXTRAS=bot).
COPY README.md LICENSE /src/
COPY service /src/service
COPY bot /src/bot
COPY sandbox-images /src/sandbox-images
RUN set -eux; \
    /opt/dockyard/bin/pip install --no-deps --no-build-isolation --no-cache-dir /src; \
    /opt/dockyard/bin/pip uninstall -y pip setuptools hatchling pathspec pluggy trove-classifiers; \
    /opt/dockyard/bin/python -m compileall -q /opt/dockyard

# ---- final ----------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
USER root
# git clones on the service side; util-linux's setpriv drops root in the entrypoint.
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    pkgs="git ca-certificates"; \
    if ! command -v python3 >/dev/null; then pkgs="$pkgs python3"; fi; \
    apt-get install -y --no-install-recommends $pkgs; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log; \
    groupadd --system --gid 10001 dockyard; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dockyard --no-create-home \
        --shell /usr/sbin/nologin dockyard; \
    mkdir -p /var/lib/dockyard; \
    chown dockyard:dockyard /var/lib/dockyard; \
    chmod 0700 /var/lib/dockyard
COPY --from=builder /opt/dockyard /opt/dockyard
# A copy of the ops file and image contexts (compose mounts the live ones over it): the service
# tags sandbox images by a hash of these files, so they must match what built the host's images.
COPY sandbox-images /etc/dockyard/sandbox-images

ENV PATH=/opt/dockyard/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DOCKYARD_HOST=0.0.0.0 \
    DOCKYARD_PORT=8080 \
    DOCKYARD_STATE_DIR=/var/lib/dockyard \
    DOCKYARD_IMAGES_CONFIG=/etc/dockyard/sandbox-images/images.toml

WORKDIR /var/lib/dockyard
EXPOSE 8080
VOLUME ["/var/lib/dockyard"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# Started as root only to join the Docker socket's group (whatever its gid on this host), then
# runs as uid 10001 with no capabilities. Without the socket (DOCKER_HOST=tcp://…) no group is added.
ENTRYPOINT ["/bin/sh", "-c", "set -e; if [ \"$(id -u)\" = 0 ]; then groups=10001; sock=${DOCKER_HOST:-unix:///var/run/docker.sock}; sock=${sock#unix://}; if [ -S \"$sock\" ]; then groups=\"10001,$(stat -c %g \"$sock\")\"; fi; exec setpriv --reuid=10001 --regid=10001 --groups=\"$groups\" --inh-caps=-all -- \"$@\"; fi; exec \"$@\"", "dockyard-entrypoint"]
CMD ["dockyard", "serve"]
