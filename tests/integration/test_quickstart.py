"""The README's quickstart, run as written: every ```sh quickstart block of README.md, in a fresh
folder, on a free port, against the real engine. `dockyard` is this checkout's `python -m
service` (a shim first on PATH), so the README keeps showing `dockyard`.

Each line of the block is one step; the test checks the answer of each step a newcomer would
look at (the job is created, the file is read, lint and the tests answer, the diff shows the fix,
the job is deleted, the service says it listens and that it stopped). Edit the README and this
test reads the new text; drop a step and it fails naming it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```sh quickstart\n(.*?)^```$", re.S | re.M)
MARK = "@@quickstart-step"


def quickstart_steps(text: str) -> list[str]:
    """The commands of the README's quickstart blocks, one per line (comments and blanks dropped)."""
    blocks = FENCE.findall(text)
    assert blocks, "README.md has no ```sh quickstart block"
    steps = []
    for block in blocks:
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                steps.append(line)
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(steps: list[str]) -> str:
    """The steps as one bash script printing a marker before each step's output."""
    out = ["set -eu", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]  # no service left behind
    for i, step in enumerate(steps):
        out.append(f"echo {MARK} {i}")
        out.append(step)
        out.append("echo")  # a curl answer has no newline of its own
    return "\n".join(out) + "\n"


def _outputs(stdout: str, n: int) -> list[str]:
    parts = re.split(rf"^{MARK} (\d+)$", stdout, flags=re.M)
    got = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    return [got.get(i, "").strip() for i in range(n)]


def _step(steps: list[str], outputs: list[str], needle: str) -> str:
    hits = [out for step, out in zip(steps, outputs, strict=True) if needle in step]
    assert hits, f"the README quickstart has no step with {needle!r}: {steps}"
    return hits[0]


def _json_answer(text: str) -> dict[str, object]:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise AssertionError(f"no JSON answer in {text!r}")


def test_readme_marks_its_quickstart() -> None:
    steps = quickstart_steps(README.read_text())
    joined = "\n".join(steps)
    for needed in ("dockyard demo-repo", "dockyard token new", "dockyard serve", "/v1/jobs"):
        assert needed in joined
    assert "../shared/" not in README.read_text(), "the README links a document outside the repository"


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    steps = quickstart_steps(README.read_text())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dockyard"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m service "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "fresh"
    work.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DOCKYARD_PORT=str(port),
    )
    r = subprocess.run(
        ["bash", "-c", _script(steps)], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    log = work / ".dockyard" / "serve.log"
    context = (
        f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}\nserve log:\n{log.read_text() if log.exists() else ''}"
    )
    assert r.returncode == 0, context
    out = _outputs(r.stdout, len(steps))
    assert "Traceback" not in r.stderr + (log.read_text() if log.exists() else ""), context

    # The demo repository, the token, the service's own lines.
    assert (work / ".dockyard-demo" / "calc.git" / "HEAD").is_file()
    tokens = work / ".dockyard" / "tokens"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert f"listening on http://127.0.0.1:{port}" in r.stdout, context
    assert "tokens     1 bot" in r.stdout and tokens.read_text().split(":")[0] not in r.stdout, context
    assert "shutting down" in r.stdout and r.stdout.rstrip().endswith("dockyard: stopped"), context

    # Each step's answer.
    read = _json_answer(_step(steps, out, "tools/read_file"))
    assert read["path"] == "calc.py" and "def divide" in str(read["content"]), context
    lint = _json_answer(_step(steps, out, "/lint"))
    found = [d for linter in lint["linters"] for d in linter["diagnostics"]]  # type: ignore[attr-defined]
    assert any(d["code"] == "F401" and d["path"] == "calc.py" for d in found), lint
    tests = _json_answer(_step(steps, out, "/test"))
    assert [f["id"] for f in tests["failures"]] == ["tests/test_calc.py::test_divide"], tests  # type: ignore[attr-defined]
    replaced = _json_answer(_step(steps, out, "tools/replace_in_file"))
    assert replaced["replacements"] == 1, replaced
    diff = _json_answer(_step(steps, out, "/diff"))
    assert "+    return a / b" in str(diff["patch"]), diff
    assert _step(steps, out, "-X DELETE").splitlines()[-1] == "204", context


SERVE_FENCE = re.compile(r"^```sh quickstart-serve\n(.*?)^```$", re.S | re.M)


def test_readme_first_command_serves_with_a_token_it_showed(tmp_path: Path) -> None:
    """The "run the service" command as written, in a fresh folder; `scripts/setup.sh` there is a
    stand-in (the real one installs packages and runs in CI: .ci/run)."""
    (command,) = SERVE_FENCE.findall(README.read_text())
    assert "dockyard serve" in command and "dockyard token new" in command
    work = tmp_path / "fresh"
    (work / "scripts").mkdir(parents=True)
    (work / "scripts" / "setup.sh").write_text("exit 0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dockyard"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m service "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT), DOCKYARD_PORT=str(port)
    )
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        # its own process group: Ctrl-C in a terminal signals the whole foreground group
        proc = subprocess.Popen(
            ["bash", "-c", command], cwd=work, env=env, stdout=out, stderr=err, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in out_path.read_text():
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text() + err_path.read_text()
            time.sleep(0.1)
        token = out_path.read_text().splitlines()[0]
        assert (work / ".dockyard" / "tokens").read_text() == f"{token}:bot\n"
        assert f"listening on http://127.0.0.1:{port}" in out_path.read_text()
        r = requests.get(
            f"http://127.0.0.1:{port}/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert r.status_code == 200, r.text
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert out_path.read_text().rstrip().endswith("dockyard: stopped")
    assert "Traceback" not in err_path.read_text()
