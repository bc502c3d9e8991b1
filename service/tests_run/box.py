"""The test box's own script: copy the workspace (or the tree at base_sha) into the box's /tmp and
run there, so nothing a test writes reaches the job's workspace (mounted read-only anyway).

The dependency environment, when mounted at /env, is put on the runner's paths: the env's own
pytest when it has one (else the image's pytest importing the env's packages), its node_modules
linked into the copy, its Go module cache. The first stderr line says which (`DOCKYARD_TOOL=`).
A runner that writes a report file ($DOCKYARD_REPORT) has its own output moved to stderr and the
report printed on stdout once it ends.
"""

from __future__ import annotations

WORKDIR = "/tmp/ws"
BASEDIR = "/tmp/base"
TOOL_MARK = "DOCKYARD_TOOL="
COPY_FAILED = 125

SCRIPT = r"""
set -u
src="$1"; shift
if [ "$src" = workspace ]; then dir=/tmp/ws; else dir=/tmp/base; fi
mkdir -p "$dir" /tmp/.dockyard
if [ "$src" = workspace ]; then
  tar -C /workspace --exclude=./.git -cf - . | tar -xf - -C "$dir" \
    || { echo "dockyard: copying the workspace failed (disk_mb too small?)" >&2; exit 125; }
else
  git -C /workspace archive --format=tar "$src" | tar -xf - -C "$dir" \
    || { echo "dockyard: extracting the tree at base_sha failed" >&2; exit 125; }
fi
cd "$dir"
tool=image
if [ -d /env/venv ]; then
  if /env/venv/bin/python -c 'import pytest' 2>/dev/null; then
    PATH=/env/venv/bin:$PATH; export PATH; tool=env
  else
    PYTHONPATH=$(/env/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    export PYTHONPATH; tool=image+env
  fi
fi
if [ -d /env/node_modules ]; then
  [ -e node_modules ] || ln -s /env/node_modules node_modules
  PATH=/env/node_modules/.bin:$PATH; export PATH; tool=image+env
fi
if [ -d /env/gomod ]; then
  GOMODCACHE=/env/gomod; GOFLAGS=-mod=mod; export GOMODCACHE GOFLAGS; tool=image+env
fi
echo "DOCKYARD_TOOL=$tool" >&2
if [ -n "${DOCKYARD_REPORT:-}" ]; then
  "$@" 1>&2
  rc=$?
  cat "$DOCKYARD_REPORT" 2>/dev/null
  exit $rc
fi
exec "$@"
"""


def argv(source: str, command: list[str]) -> list[str]:
    """`source` is "workspace" or the base commit's sha; the runner's argv starts at index 5."""
    return ["sh", "-c", SCRIPT, "dockyard-test", source, *command]


def split_tool(stderr: str) -> tuple[str, str]:
    """(tool source, stderr without the marker line)."""
    first, _, rest = stderr.partition("\n")
    if first.startswith(TOOL_MARK):
        return first[len(TOOL_MARK) :].strip(), rest
    return "image", stderr
