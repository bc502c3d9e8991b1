"""Benchmark (not a test): what a tool call costs through dockyard's persistent channel.

1. read_file through the HTTP API vs a raw docker-py `exec_run(["cat", …])` on the SAME box:
   p50/p99 of each and their ratio (targets: API p50 <= 5 ms and <= 0.1x raw).
2. Scale: N live jobs (default 100) and N concurrent agents, each making 10 sequential reads of its
   own job — through the API (aiohttp client), then the same through raw `exec_run cat` (a thread
   per agent): p50/p99 and calls/s for both, as ratios (targets: API throughput >= 10x raw, API p99
   <= 100 ms). The service's RSS with every job's helper channel open is printed too.

Both baselines are measured in the same run, on the same machine, against the same boxes.
Run: `python bench/tools.py [--n 200] [--jobs 100] [--reads 10]` after `bash scripts/setup.sh`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's bench/, whatever is installed

from bench.serve import running_service  # noqa: E402

SMALL = {"memory_mb": 128, "disk_mb": 64, "pids": 64, "cpus": 0.5}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return (xs[lo] + (xs[hi] - xs[lo]) * (k - lo)) * 1000


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(40):  # ~2 KB files: the size the figure was measured with
        (repo / "src" / f"mod_{i}.py").write_text("".join(f"def f{j}():\n    return {j}\n" for j in range(80)))
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    return repo


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace, base: str, token: str, pid: int, tmp: Path) -> None:
    client = docker.from_env(max_pool_size=args.jobs + 8)
    create = {"clone_url": f"file://{make_repo(tmp)}", "ref": "main", "language": "generic", "limits": SMALL}
    headers = {"Authorization": f"Bearer {token}"}
    conn = aiohttp.TCPConnector(limit=args.jobs + 8)
    async with aiohttp.ClientSession(base, headers=headers, connector=conn) as http:
        jobs: list[dict[str, Any]] = []
        try:
            sem = asyncio.Semaphore(4)

            async def new_job() -> None:
                async with sem, http.post("/v1/jobs", json=create) as r:
                    assert r.status == 201, await r.text()
                    jobs.append(await r.json())

            await asyncio.gather(*(new_job() for _ in range(args.jobs)))
            print(f"{len(jobs)} live jobs; service RSS {rss_mb(pid):.0f} MiB before any tool call")

            async def read(job_id: str) -> float:
                t0 = time.perf_counter()
                async with http.post(f"/v1/jobs/{job_id}/tools/read_file", json={"path": "src/mod_7.py"}) as r:
                    body = await r.read()
                    assert r.status == 200, body[:300]
                return time.perf_counter() - t0

            # --- 1. one job: read_file vs raw exec, interleaved --------------------------------
            job = jobs[0]
            box = client.containers.get(job["container_id"])
            api_t: list[float] = []
            raw_t: list[float] = []
            for i in range(args.n + 10):
                a = await read(job["id"])
                t0 = time.perf_counter()
                out = await asyncio.to_thread(box.exec_run, ["cat", "/workspace/src/mod_7.py"])
                b = time.perf_counter() - t0
                assert out.exit_code == 0
                if i >= 10:  # warm-up (the first call starts the helper)
                    api_t.append(a)
                    raw_t.append(b)

            # --- 2. scale: every job, one agent each, sequential reads -------------------------
            async def agent(job_id: str) -> list[float]:
                return [await read(job_id) for _ in range(args.reads)]

            await asyncio.gather(*(read(j["id"]) for j in jobs))  # every helper started
            t0 = time.perf_counter()
            per = await asyncio.gather(*(agent(j["id"]) for j in jobs))
            api_wall = time.perf_counter() - t0
            api_all = [x for xs in per for x in xs]
            rss = rss_mb(pid)

            boxes = [client.containers.get(j["container_id"]) for j in jobs]

            def raw_agent(b: Any) -> list[float]:
                ts = []
                for _ in range(args.reads):
                    s = time.perf_counter()
                    assert b.exec_run(["cat", "/workspace/src/mod_7.py"]).exit_code == 0
                    ts.append(time.perf_counter() - s)
                return ts

            with ThreadPoolExecutor(len(boxes)) as pool:
                t0 = time.perf_counter()
                raw_per = list(pool.map(raw_agent, boxes))
                raw_wall = time.perf_counter() - t0
            raw_all = [x for xs in raw_per for x in xs]
        finally:
            dels = [http.delete(f"/v1/jobs/{j['id']}") for j in jobs]
            for d in dels:
                async with d:
                    pass

    api_rate, raw_rate = len(api_all) / api_wall, len(raw_all) / raw_wall
    print("\n# 1. read_file on one job (2 KB file)")
    print(f"API            p50 {pct(api_t, .5):7.2f} ms   p99 {pct(api_t, .99):7.2f} ms   (n={len(api_t)})")
    print(f"raw exec cat   p50 {pct(raw_t, .5):7.2f} ms   p99 {pct(raw_t, .99):7.2f} ms")
    print(f"API / raw      p50 {pct(api_t, .5) / pct(raw_t, .5):7.3f}x  (targets: API p50 <= 5 ms, <= 0.1x)")
    print(f"\n# 2. {len(jobs)} jobs, {len(jobs)} concurrent agents, {args.reads} sequential reads each")
    print(f"API            p50 {pct(api_all, .5):7.1f} ms   p99 {pct(api_all, .99):7.1f} ms   "
          f"{api_rate:7.0f} calls/s")
    print(f"raw exec cat   p50 {pct(raw_all, .5):7.1f} ms   p99 {pct(raw_all, .99):7.1f} ms   "
          f"{raw_rate:7.0f} calls/s")
    print(f"API / raw      throughput {api_rate / raw_rate:6.1f}x   p99 {pct(api_all, .99) / pct(raw_all, .99):6.3f}x"
          "   (targets: throughput >= 10x, API p99 <= 100 ms)")
    print(f"service RSS    {rss:.0f} MiB with {len(jobs)} helper channels open")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="read_file calls (and raw execs) on one job")
    ap.add_argument("--jobs", type=int, default=100, help="live jobs = concurrent agents")
    ap.add_argument("--reads", type=int, default=10, help="sequential reads per agent")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    token = secrets.token_hex(16)
    n = str(args.jobs + 8)
    env = {
        "DOCKYARD_TENANT_MAX_JOBS": n,
        "DOCKYARD_TENANT_MAX_EXECS": n,
        "DOCKYARD_TENANT_MAX_WAITING": str(4 * args.jobs),
        "DOCKYARD_MAX_JOBS": n,
        "DOCKYARD_HOST_BUDGET_MB": "1000000",
    }
    with running_service(tmp, token, env) as (base, pid):
        asyncio.run(run(args, base, token, pid, tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
