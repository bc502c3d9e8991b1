"""The benchmarks' service: `python -m service serve` of this checkout as a subprocess on a free
port, with a fresh state dir under `tmp` and the settings a benchmark adds; stopped (SIGTERM) and
`tmp` removed on exit."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_service(tmp: Path, token: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a healthy service whose only token is `token` (role bot)."""
    port = free_port()
    full = {
        **os.environ,
        "DOCKYARD_API_TOKENS": f"{token}:bot",
        "DOCKYARD_STATE_DIR": str(tmp / "state"),
        "DOCKYARD_PORT": str(port),
        "DOCKYARD_CLONE_FILE_ROOTS": str(tmp),
        **(env or {}),
    }
    base = f"http://127.0.0.1:{port}"
    log = (tmp / "service.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=full, stderr=log)
    try:
        for _ in range(150):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"the service did not become healthy; log: {tmp / 'service.log'}")
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
