"""Benchmark (not a test): a pytest run through dockyard vs the same command natively in the image.

On a fixture repository (FILES test modules, one test of which the change breaks, plus one that
fails at base too): the wall time of `POST /v1/jobs/{id}/test` against `docker run --rm` of the
python image running the same pytest command on a bind-mounted copy of the same files (no
hardening, no copy, no base run). Measured twice: cold (a new job: the run, the run at base_sha, the
re-run of the new failure) and with the base run cached (same job, called again: the run and the
re-run). Prints medians, the ratio and the overhead in ms.

Needs: `bash scripts/setup.sh` done (images built). Run: `python bench/tests.py [--n 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
FILES = 10
PYTEST = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
          "--junitxml=/tmp/report.xml"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", *args], check=True,
                   stdout=subprocess.DEVNULL)


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    for i in range(FILES):
        (repo / "tests" / f"test_m{i}.py").write_text(
            "from calc import add\n\n\n" + "".join(f"def test_{j}():\n    assert add({j}, 1) == {j + 1}\n\n\n"
                                                   for j in range(30))
        )
    (repo / "tests" / "test_old.py").write_text("def test_old_broken():\n    assert False\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    return repo


def image_tag(name: str) -> str:
    sys.path.insert(0, str(ROOT))
    from service.images import resolve_images
    from service.settings import Settings, load_images_config

    settings = Settings(api_tokens="x" * 16 + ":bot")
    cfg = load_images_config(settings.images_config)
    return resolve_images(cfg, settings.images_config, settings)[name].tag


def ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-tests-"))
    repo = make_repo(tmp)
    broken = "def add(a, b):\n    return a + b if a != 3 else 0\n"  # breaks test_3 of every module
    native_copy = tmp / "native"
    subprocess.run(["cp", "-a", str(repo), str(native_copy)], check=True)
    (native_copy / "calc.py").write_text(broken)
    tag = image_tag("python")

    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "DOCKYARD_API_TOKENS": f"{token}:bot", "DOCKYARD_STATE_DIR": str(tmp / "state"),
           "DOCKYARD_PORT": str(port), "DOCKYARD_CLONE_FILE_ROOTS": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env,
                            stderr=(tmp / "service.log").open("wb"))
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    jobs: list[str] = []
    try:
        for _ in range(100):
            try:
                if http.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"the service did not become healthy; log: {tmp / 'service.log'}")

        def new_job() -> str:
            r = http.post(f"{base}/v1/jobs", json={"clone_url": repo.as_uri(), "language": "python"}, timeout=300)
            assert r.status_code == 201, r.text
            job_id = str(r.json()["id"])
            jobs.append(job_id)
            w = http.post(f"{base}/v1/jobs/{job_id}/tools/write_file", json={"path": "calc.py", "content": broken},
                          timeout=60)
            assert w.status_code == 200, w.text
            return job_id

        def via_api(job_id: str) -> dict[str, object]:
            r = http.post(f"{base}/v1/jobs/{job_id}/test", json={}, timeout=900)
            assert r.status_code == 200, r.text
            out: dict[str, object] = r.json()
            assert out["status"] == "failed", out
            return out

        def natively() -> None:
            subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{native_copy}:/w", "-w", "/w",
                            tag, *PYTEST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        natively()  # warm-up
        cold, cached, native = [], [], []
        for _ in range(args.n):
            job_id = new_job()
            t0 = time.perf_counter()
            via_api(job_id)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            via_api(job_id)
            cached.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            natively()
            native.append(time.perf_counter() - t0)
            http.delete(f"{base}/v1/jobs/{job_id}", timeout=60)
            jobs.remove(job_id)
        result = {
            "tests": FILES * 30 + 1,
            "native_ms": ms(native),
            "api_cold_ms": ms(cold),
            "api_base_cached_ms": ms(cached),
            "ratio_cold": round(statistics.median(cold) / statistics.median(native), 2),
            "ratio_base_cached": round(statistics.median(cached) / statistics.median(native), 2),
            "overhead_cold_ms": round(ms(cold) - ms(native), 1),
            "overhead_base_cached_ms": round(ms(cached) - ms(native), 1),
            "runs": args.n,
        }
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for job_id in jobs:
            http.delete(f"{base}/v1/jobs/{job_id}", timeout=60)
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
