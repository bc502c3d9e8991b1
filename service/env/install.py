"""The install box: where laying an environment out runs code, with network `none`.

Only Python needs one: `python3 -m venv /env/venv` (the env-python image's /usr/bin/python3 is
the python image's, so the venv runs in the job box) and `pip install --no-index --find-links`
over the fetched wheels — installing a wheel unpacks it and runs nothing from it; no sdist is ever
built. Node needs none: `npm ci --ignore-scripts` already laid node_modules out and package
scripts stay disabled (a package that needs its install script to work will not work). Go needs
none: the module cache is the layout.
"""

from __future__ import annotations

from service.env.fetch import INPUT_DIR, SIZE_MARK, WHEELS
from service.env.policy import Plan

ENV_ROOT = "/env"

PYTHON_INSTALL = f"""set -eu
/usr/bin/python3 -m venv {ENV_ROOT}/venv
{ENV_ROOT}/venv/bin/pip install --no-index --find-links {WHEELS} --only-binary=:all: --no-input \\
  --disable-pip-version-check --progress-bar off "$@"
echo "{SIZE_MARK}$(du -sk {ENV_ROOT} | cut -f1)"
"""


def python_install_argv(plan: Plan) -> list[str]:
    args = ["-r", f"{INPUT_DIR}/requirements.txt"]
    if "constraints.txt" in plan.files:
        args += ["-c", f"{INPUT_DIR}/constraints.txt"]
    if plan.lock:
        args.append("--no-deps")
    return ["sh", "-c", PYTHON_INSTALL, "install", *args]
