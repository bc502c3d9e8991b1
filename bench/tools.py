"""Benchmark (not a test): the cost of going through dockyard.

1. read_file through the HTTP API vs a raw docker-py `exec_run(["cat", …])` on the SAME container:
   p50/p95 of each and their ratio (target: API p50 at most 1.3x raw).
2. job-ready (POST /v1/jobs → 201 ready) vs `git clone` + `docker run -d` of the same repository
   with the same image (target: at most 0.3 s more at the median).

Both baselines are measured in the same run, on the same machine, interleaved with the subject.
Run: `python bench/tools.py [--n 50] [--jobs 7]` after `bash scripts/setup.sh`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import requests

ROOT = Path(__file__).resolve().parent.parent


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return (xs[lo] + (xs[hi] - xs[lo]) * (k - lo)) * 1000


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(40):
        (repo / "src" / f"mod_{i}.py").write_text("".join(f"def f{j}():\n    return {j}\n" for j in range(100)))
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    return repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="read_file calls (and raw execs)")
    ap.add_argument("--jobs", type=int, default=7, help="job creations (and clone+run baselines)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    repo = make_repo(tmp)
    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "DOCKYARD_API_TOKENS": f"{token}:bot", "DOCKYARD_STATE_DIR": str(tmp / "state"),
           "DOCKYARD_PORT": str(port), "DOCKYARD_CLONE_FILE_ROOTS": str(tmp)}
    log = (tmp / "service.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env, stderr=log)
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    client = docker.from_env()
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
        create = {"clone_url": f"file://{repo}", "ref": "main"}

        # --- 1. read_file vs raw exec ---------------------------------------------------------
        job = http.post(f"{base}/v1/jobs", json=create, timeout=120).json()
        jobs.append(job["id"])
        container = client.containers.get(job["container_id"])
        image = job["image"]
        api_t: list[float] = []
        raw_t: list[float] = []
        body = {"path": "src/mod_7.py"}
        for i in range(args.n + 5):
            t0 = time.perf_counter()
            r = http.post(f"{base}/v1/jobs/{job['id']}/tools/read_file", json=body, timeout=60)
            t1 = time.perf_counter()
            out = container.exec_run(["cat", "/workspace/src/mod_7.py"])
            t2 = time.perf_counter()
            assert r.status_code == 200 and r.json()["content"].encode() == out.output
            if i >= 5:  # warm-up
                api_t.append(t1 - t0)
                raw_t.append(t2 - t1)

        # --- 2. job-ready vs git clone + docker run -------------------------------------------
        ready_t: list[float] = []
        base_t: list[float] = []
        for i in range(args.jobs):
            t0 = time.perf_counter()
            r = http.post(f"{base}/v1/jobs", json=create, timeout=120)
            t1 = time.perf_counter()
            assert r.status_code == 201, r.text
            jobs.append(r.json()["id"])
            dest = tmp / f"clone-{i}"
            t2 = time.perf_counter()
            subprocess.run(["git", "clone", "-q", "--depth", "1", "-b", "main", f"file://{repo}", str(dest)], check=True)
            c = client.containers.run(
                image, ["sleep", "infinity"], detach=True, network_mode="none", user="1000:1000",
                volumes={str(dest): {"bind": "/workspace", "mode": "rw"}},
            )
            t3 = time.perf_counter()
            c.remove(force=True)
            shutil.rmtree(dest)
            ready_t.append(t1 - t0)
            base_t.append(t3 - t2)
            http.delete(f"{base}/v1/jobs/{jobs.pop()}", timeout=60)

        print(f"read_file via API   p50 {pct(api_t, .5):7.1f} ms  p95 {pct(api_t, .95):7.1f} ms  (n={len(api_t)})")
        print(f"raw exec_run cat    p50 {pct(raw_t, .5):7.1f} ms  p95 {pct(raw_t, .95):7.1f} ms")
        print(f"ratio API/raw       p50 {pct(api_t, .5) / pct(raw_t, .5):7.2f}x     p95 "
              f"{pct(api_t, .95) / pct(raw_t, .95):7.2f}x   (target p50 <= 1.30x)")
        print(f"job ready via API   median {statistics.median(ready_t) * 1000:7.1f} ms  (n={len(ready_t)})")
        print(f"git clone + run     median {statistics.median(base_t) * 1000:7.1f} ms")
        diff = (statistics.median(ready_t) - statistics.median(base_t)) * 1000
        print(f"difference          median {diff:+7.1f} ms   (target <= +300 ms)")
        return 0
    finally:
        for jid in jobs:
            http.delete(f"{base}/v1/jobs/{jid}", timeout=60)
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
