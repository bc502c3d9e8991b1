"""Soak (not a test): many jobs through one service, then count what is left behind.

200 jobs (by default) are created and deleted, 20 at a time; each does a few tool calls
(write_file, read_file, replace_in_file, search, list_directory, diff). Prints leaked containers
and volumes of this service's instance (must be 0), errors by kind, the service's RSS before
and after (from its own /metrics: process_resident_memory_bytes), tool-call p50/p99 from the
client side, and whether the audit chain still verifies.

Run: `python bench/soak.py [--jobs 200] [--concurrency 20]` after `bash scripts/setup.sh`.
It starts its own service on a temporary state dir and a loopback port, and stops it at the end.
Exit status 1 when anything leaked or any request failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import requests

ROOT = Path(__file__).resolve().parent.parent


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return (xs[lo] + (xs[hi] - xs[lo]) * (k - lo)) * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        body = "".join(f"def f{j}():\n    return {j}\n" for j in range(50))
        (repo / "src" / f"mod_{i}.py").write_text(body)
    (repo / "README.md").write_text("# soak\n\nhello soak\n")
    git = ["git", "-C", str(repo), "-c", "user.name=soak", "-c", "user.email=soak@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "soak"], check=True)
    return repo


def rss_bytes(base: str) -> float:
    for line in requests.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1])
    return float("nan")


class Soak:
    def __init__(self, base: str, token: str, repo: Path):
        self.base = base
        self.token = token
        self.repo = repo
        self.local = threading.local()
        self.lock = threading.Lock()
        self.tool_s: list[float] = []
        self.create_s: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.done = 0

    def http(self) -> requests.Session:
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
            s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            r = self.http().request(method, self.base + path, json=body, timeout=180)
        except requests.RequestException as e:
            with self.lock:
                self.errors[f"{method} {path.split('/')[-1]}: {type(e).__name__}"] += 1
            return None
        took = time.perf_counter() - t0
        if r.status_code != expect:
            code = r.json().get("error", {}).get("code") if r.headers.get("Content-Type", "").startswith(
                "application/json"
            ) else r.status_code
            with self.lock:
                self.errors[f"{method} {path.split('/')[-1]}: {r.status_code} {code}"] += 1
            return None
        with self.lock:
            (self.tool_s if "/tools/" in path or path.endswith("/diff") else self.create_s).append(took)
        return r.json() if r.content else {}

    def one_job(self, n: int) -> None:
        job = self.call(
            "POST",
            "/v1/jobs",
            {"clone_url": self.repo.as_uri(), "language": "generic", "labels": {"soak": str(n)}},
            expect=201,
        )
        if job is None:
            return
        j = f"/v1/jobs/{job['id']}"
        try:
            t = f"{j}/tools/"
            self.call("POST", t + "write_file", {"path": f"soak/{n}.txt", "content": f"job {n}\n" * 20})
            self.call("POST", t + "read_file", {"path": "src/mod_3.py", "numbered": True})
            self.call("POST", t + "replace_in_file", {"path": "README.md", "old": "hello", "new": "bye"})
            self.call("POST", f"{j}/tools/search", {"pattern": "return 7", "path": "src"})
            self.call("POST", f"{j}/tools/list_directory", {"path": ".", "depth": 2})
            self.call("GET", f"{j}/diff")
        finally:
            self.call("DELETE", j, expect=204)
            with self.lock:
                self.done += 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=20)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-soak-"))
    repo = make_repo(tmp)
    token = secrets.token_hex(16)
    port = free_port()
    state = tmp / "state"
    env = {
        **os.environ,
        "DOCKYARD_API_TOKENS": f"{token}:bot,{'a' + token}:auditor",
        "DOCKYARD_STATE_DIR": str(state),
        "DOCKYARD_CLONE_FILE_ROOTS": str(tmp),
        "DOCKYARD_PORT": str(port),
        "DOCKYARD_HOST": "127.0.0.1",
        "DOCKYARD_MAX_JOBS": str(max(args.concurrency, 32)),
    }
    log = (tmp / "service.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env, stderr=log)
    base = f"http://127.0.0.1:{port}"
    client = docker.from_env(timeout=120)
    try:
        for _ in range(150):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            print(f"service did not start; log: {tmp / 'service.log'}", file=sys.stderr)
            return 1
        instance = (state / "instance").read_text().strip()
        # Warm up (first exec into a fresh image, first clone) so RSS-before is the steady state.
        soak = Soak(base, token, repo)
        soak.one_job(-1)
        soak.tool_s.clear()
        soak.create_s.clear()
        soak.done = 0
        rss_before = rss_bytes(base)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(soak.one_job, range(args.jobs)))
        wall = time.monotonic() - t0
        time.sleep(1.0)  # trail writes and deletes settle
        rss_after = rss_bytes(base)

        flt = {"label": f"dockyard.instance={instance}"}
        leaked_containers = client.containers.list(all=True, filters=flt)
        leaked_volumes = client.volumes.list(filters=flt)
        auditor = requests.Session()
        auditor.headers["Authorization"] = f"Bearer a{token}"
        verify = auditor.get(f"{base}/v1/audit/verify", timeout=120).json()
        live_q = {"status": ["creating", "ready"]}
        live = auditor.get(f"{base}/v1/jobs", params=live_q, timeout=30).json()["jobs"]

        print(f"jobs:               {soak.done}/{args.jobs} done, {args.concurrency} at a time, {wall:.1f} s")
        print(f"tool calls:         {len(soak.tool_s)} (write, read, replace, search, list, diff per job)")
        print(f"tool-call latency:  p50 {pct(soak.tool_s, 0.5):.1f} ms, p99 {pct(soak.tool_s, 0.99):.1f} ms")
        c50, c99 = pct(soak.create_s, 0.5), pct(soak.create_s, 0.99)
        print(f"create/delete:      p50 {c50:.1f} ms, p99 {c99:.1f} ms (each call)")
        print(f"errors:             {sum(soak.errors.values())} {dict(soak.errors) or ''}")
        print(f"leaked containers:  {len(leaked_containers)} {[c.name for c in leaked_containers] or ''}")
        print(f"leaked volumes:     {len(leaked_volumes)} {[v.name for v in leaked_volumes] or ''}")
        print(f"live jobs left:     {len(live)}")
        print(f"service RSS:        before {rss_before / 2**20:.1f} MiB, after {rss_after / 2**20:.1f} MiB")
        print(f"audit chain:        ok={verify['ok']} records={verify['records']}")
        bad = soak.errors or leaked_containers or leaked_volumes or live or not verify["ok"]
        return 1 if bad else 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for c in client.containers.list(all=True, filters={"label": "soak"}):
            if c.labels.get("dockyard.managed") == "true":
                c.remove(force=True)


if __name__ == "__main__":
    sys.exit(main())
