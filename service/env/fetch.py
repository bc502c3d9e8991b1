"""The fetch boxes: ONE-SHOT boxes that receive only the (sanitized) manifest files and run the
package manager in a download-only mode that executes nothing from the packages:

- python: `pip download --only-binary=:all:` (wheels only; `--no-deps` for a lock's exact pins)
  into a scratch volume, in the env-python image (the python image has no pip);
- node: `npm ci --ignore-scripts` (after `npm install --package-lock-only --ignore-scripts` when
  there is no lockfile) straight into the env volume, in the env-node image: the fetched
  node_modules IS the environment, no package script ever runs;
- go: `go mod download` into the env volume's `gomod/` (a GOMODCACHE), in the go image itself,
  with the toolchain's default GOPROXY/GOSUMDB restored in this box only (the image sets
  GOPROXY=off for linting); the box prints the proxy it used.

Egress: the box joins an internal network whose only way out is the egress proxy (egress.py). The
machine's CA bundle travels in the input folder and is trusted through PIP_CERT,
NODE_EXTRA_CA_CERTS and SSL_CERT_FILE.
"""

from __future__ import annotations

import io
import re
import tarfile

from service.env.policy import Plan

INPUT = ".in"  # under /workspace
INPUT_DIR = "/workspace/.in"
CA_NAME = "ca.crt"
WHEELS = "/workspace/wheels"
PIP = "/opt/envpip/bin/pip"
SIZE_MARK = "DOCKYARD_ENV_KB="
GOPROXY_MARK = "DOCKYARD_GOPROXY="
SANDBOX_UID = 1000


def input_tar(files: dict[str, bytes], ca: bytes | None) -> bytes:
    """The box's input folder, owned by the sandbox user (the box writes next to it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo(INPUT)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.uid = d.gid = SANDBOX_UID
        tar.addfile(d)
        for name, data in sorted({**files, **({CA_NAME: ca} if ca else {})}.items()):
            info = tarfile.TarInfo(f"{INPUT}/{name}")
            info.size = len(data)
            info.mode = 0o644
            info.uid = info.gid = SANDBOX_UID
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def box_env(proxy_url: str, has_ca: bool) -> dict[str, str]:
    env = {
        "HOME": "/tmp",
        "HTTPS_PROXY": proxy_url,
        "HTTP_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "http_proxy": proxy_url,
        "npm_config_https_proxy": proxy_url,
        "npm_config_proxy": proxy_url,
    }
    if has_ca:
        ca = f"{INPUT_DIR}/{CA_NAME}"
        env |= {"PIP_CERT": ca, "NODE_EXTRA_CA_CERTS": ca, "SSL_CERT_FILE": ca}
    return env


def python_fetch_argv(plan: Plan) -> list[str]:
    argv = [PIP, "download", "--only-binary=:all:", "--dest", WHEELS, "--no-input", "--progress-bar", "off"]
    argv += ["-r", f"{INPUT_DIR}/requirements.txt"]
    if "constraints.txt" in plan.files:
        argv += ["-c", f"{INPUT_DIR}/constraints.txt"]
    if plan.lock:
        argv.append("--no-deps")
    return argv


NODE_FETCH = f"""set -eu
cd /workspace
for f in package.json package-lock.json npm-shrinkwrap.json; do
  if [ -f {INPUT}/$f ]; then cp {INPUT}/$f ./$f; fi
done
flags="--ignore-scripts --no-audit --no-fund --no-update-notifier --cache /workspace/.npm-cache"
if [ ! -f package-lock.json ] && [ ! -f npm-shrinkwrap.json ]; then
  npm install --package-lock-only $flags
fi
npm ci $flags
rm -rf /workspace/.npm-cache /workspace/{INPUT}
echo "{SIZE_MARK}$(du -sk /workspace | cut -f1)"
"""

GO_FETCH = f"""set -eu
mkdir -p /workspace/src
cp /workspace/{INPUT}/go.mod /workspace/src/go.mod
if [ -f /workspace/{INPUT}/go.sum ]; then cp /workspace/{INPUT}/go.sum /workspace/src/go.sum; fi
cd /workspace/src
unset GOPROXY GOSUMDB GONOSUMDB GONOPROXY GOPRIVATE GOINSECURE GOFLAGS
echo "{GOPROXY_MARK}$(go env GOPROXY)"
GOMODCACHE=/workspace/gomod GOFLAGS=-modcacherw go mod download
cd /
rm -rf /workspace/src /workspace/{INPUT}
echo "{SIZE_MARK}$(du -sk /workspace | cut -f1)"
"""


def node_fetch_argv() -> list[str]:
    return ["sh", "-c", NODE_FETCH]


def go_fetch_argv() -> list[str]:
    return ["sh", "-c", GO_FETCH]


def size_mb(stdout: bytes) -> float | None:
    m = re.search(rf"{SIZE_MARK}(\d+)", stdout.decode("utf-8", "replace"))
    return round(int(m.group(1)) / 1024, 2) if m else None


def goproxy(stdout: bytes) -> str | None:
    m = re.search(rf"{GOPROXY_MARK}(\S*)", stdout.decode("utf-8", "replace"))
    return m.group(1) if m else None


_NO_DIST = re.compile(r"No matching distribution found for (\S+)")


def failure_reason(ecosystem: str, stdout: bytes, stderr: bytes) -> str:
    """One line a user can act on, from a failed fetch or install."""
    text = stderr.decode("utf-8", "replace") + "\n" + stdout.decode("utf-8", "replace")
    if ecosystem == "python":
        m = _NO_DIST.search(text)
        if m:
            return (
                f"no wheel for {m.group(1)} on the configured index for this image's Python "
                "(sdists are never built: wheels only)"
            )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(SIZE_MARK)]
    errors = [ln for ln in lines if re.search(r"\b(error|ERR!|fatal|failed|denied|refused)\b", ln, re.I)]
    tail = (errors or lines or ["no output"])[-3:]
    return " | ".join(tail)[:600]
