"""`dockyard serve` as a process, as ops see it: the lines it prints, how fast SIGTERM stops it
(idle, with an event stream open, with a long request in flight), a port already taken, and
`audit export` into a pipe closed early — each without a traceback."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PROMPT_S = 5.0  # an idle service (or one with only event streams open) stops within this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _git_repo(root: Path, files: dict[str, str]) -> str:
    work = root / "src"
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t.invalid",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
    bare = root / "git" / "slow.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    return bare.as_uri()


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    url: str
    token: str
    state_dir: Path
    stdout: Path
    stderr: Path

    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def out(self) -> str:
        return self.stdout.read_text()

    def err(self) -> str:
        return self.stderr.read_text()

    def terminate(self) -> float:
        """SIGTERM; seconds until the process is gone."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        return time.monotonic() - t0


def _start(tmp: Path, **env: str) -> Serve:
    token = "dy_" + secrets.token_hex(20)
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    full = {
        **clean,
        "DOCKYARD_API_TOKENS": f"{token}:bot",
        "DOCKYARD_STATE_DIR": str(tmp / "state"),
        "DOCKYARD_PORT": str(port),
        "DOCKYARD_CLONE_FILE_ROOTS": str(tmp / "git"),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    stdout, stderr = tmp / "stdout.txt", tmp / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"], cwd=ROOT, env=full, stdout=out, stderr=err, text=True
        )
    serve = Serve(proc, f"http://127.0.0.1:{port}", token, tmp / "state", stdout, stderr)
    deadline = time.monotonic() + 30
    while "listening on" not in serve.out():
        assert proc.poll() is None, f"serve exited {proc.returncode}:\n{serve.err()}"
        assert time.monotonic() < deadline, f"no 'listening on' line:\n{serve.out()}\n{serve.err()}"
        time.sleep(0.1)
    return serve


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    s = _start(tmp_path)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


def _job(s: Serve, url: str) -> str:
    r = requests.post(f"{s.url}/v1/jobs", json={"clone_url": url, "ref": "main"}, headers=s.h(), timeout=120)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _delete_after_restart(tmp: Path, job_id: str) -> None:
    """The box outlives a stopped service by design: start again and delete the job."""
    s = _start(tmp)
    try:
        requests.delete(f"{s.url}/v1/jobs/{job_id}", headers=s.h(), timeout=60)
    finally:
        s.terminate()


def test_serve_says_where_it_listens_and_never_the_token(serve: Serve) -> None:
    out = serve.out()
    assert f"listening on {serve.url}" in out
    assert f"state dir  {serve.state_dir.resolve()}" in out
    assert "tokens     1 bot (from DOCKYARD_API_TOKENS)" in out
    assert serve.token not in out + serve.err()
    assert requests.get(f"{serve.url}/healthz", timeout=10).status_code == 200


def test_idle_sigterm_is_prompt_and_says_so(serve: Serve) -> None:
    requests.get(f"{serve.url}/healthz", timeout=10)  # a keep-alive client about
    took = serve.terminate()
    assert took < PROMPT_S, f"SIGTERM took {took:.1f} s"
    assert serve.proc.returncode == 0
    lines = serve.out().splitlines()
    assert lines[-2] == "dockyard: SIGTERM received, shutting down…" and lines[-1] == "dockyard: stopped"
    assert "Traceback" not in serve.err()


def test_sigterm_ends_open_event_streams_promptly(serve: Serve, tmp_path: Path) -> None:
    job_id = _job(serve, _git_repo(tmp_path, {"README.md": "# hi\n"}))
    ended: list[str] = []

    def follow() -> None:
        with requests.get(
            f"{serve.url}/v1/jobs/{job_id}/events", headers=serve.h(), stream=True, timeout=120
        ) as r:
            for _ in r.iter_lines():
                pass
            ended.append("clean end")  # the chunked stream was closed properly, no error

    streams = [threading.Thread(target=follow, daemon=True) for _ in range(2)]
    for t in streams:
        t.start()
    time.sleep(1.0)
    took = serve.terminate()
    for t in streams:
        t.join(timeout=10)
    assert took < PROMPT_S, f"SIGTERM with event streams open took {took:.1f} s"
    assert ended == ["clean end", "clean end"]
    assert serve.out().rstrip().endswith("dockyard: stopped")
    assert "Traceback" not in serve.err()
    _delete_after_restart(tmp_path, job_id)


def test_sigterm_lets_a_request_in_flight_finish(serve: Serve, tmp_path: Path) -> None:
    url = _git_repo(
        tmp_path,
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n",
            "tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(4)\n",
        },
    )
    job_id = _job(serve, url)
    answer: dict[str, Any] = {}

    def run_tests() -> None:
        r = requests.post(f"{serve.url}/v1/jobs/{job_id}/test", json={}, headers=serve.h(), timeout=120)
        answer.update(status=r.status_code, body=r.json())

    caller = threading.Thread(target=run_tests)
    caller.start()
    time.sleep(1.5)  # the test box is running now
    took = serve.terminate()
    caller.join(timeout=60)
    assert answer.get("status") == 200, answer
    assert answer["body"]["status"] == "passed" and answer["body"]["counts"]["passed"] == 1
    assert took > 2, "the service did not wait for the request in flight"
    assert serve.proc.returncode == 0 and serve.out().rstrip().endswith("dockyard: stopped")
    assert "Traceback" not in serve.err()
    _delete_after_restart(tmp_path, job_id)


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
        r = subprocess.run(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env={
                **clean,
                "DOCKYARD_API_TOKENS": "dy_" + "a" * 32 + ":bot",
                "DOCKYARD_STATE_DIR": str(tmp_path / "state"),
                "DOCKYARD_PORT": str(port),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert f"dockyard: cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_audit_export_into_a_closed_pipe(serve: Serve, tmp_path: Path) -> None:
    job_id = _job(serve, _git_repo(tmp_path, {"README.md": "# hi\n"}))
    requests.delete(f"{serve.url}/v1/jobs/{job_id}", headers=serve.h(), timeout=60)
    serve.terminate()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "audit", "export"],
        cwd=ROOT,
        env={**clean, "DOCKYARD_STATE_DIR": str(serve.state_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head` does once it has read enough
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert err.strip() == "dockyard: output closed before the end (broken pipe)"
