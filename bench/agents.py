"""Benchmark (not a test): what each way in costs an agent, against plain REST on the same job.

One job, the same 2 KB file, `--n` sequential reads through each door, interleaved round by round
so machine noise falls on all of them alike:

- REST            POST /v1/jobs/{id}/tools/read_file with a bare aiohttp client (the baseline);
- SDK async       `AsyncDockyard` job handle, `job.files.read(…)`;
- SDK sync        `Dockyard` job handle, `job.files.read(…)` (run in a thread: this script is async);
- editor view     POST …/tools/str_replace_based_edit_tool `{"command": "view"}` (numbered text);
- MCP             `call_tool("read_file")` with the official mcp client over streamable HTTP.

Printed: p50/p99 of each and its p50 as a ratio of REST's (targets: SDK <= 1.5x, editor <= 1.5x,
MCP <= 3x — each door adds parsing and validation, never another exec). Plus what an
`Idempotency-Key` replay of POST /v1/jobs costs against a GET of the same job.
Run: `python bench/agents.py [--n 200]` after `bash scripts/setup.sh`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "sdk")]  # this checkout's bench/ and SDK, whatever is installed

from dockyard_client import AsyncDockyard, Dockyard  # noqa: E402

from bench.serve import running_service  # noqa: E402
from bench.tools import make_repo, pct  # noqa: E402

PATH = "src/mod_7.py"


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def run(args: argparse.Namespace, base: str, token: str, tmp: Path) -> None:
    create = {"clone_url": f"file://{make_repo(tmp)}", "ref": "main", "language": "generic"}
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(base, headers=headers) as http,
        AsyncDockyard(base_url=base, token=token) as ady,
        httpx2.AsyncClient(headers=headers, timeout=60) as mcp_http,
        Client(streamable_http_client(base + "/mcp", http_client=mcp_http)) as mcp,
    ):
        key = {"Idempotency-Key": secrets.token_hex(8)}
        async with http.post("/v1/jobs", json=create, headers=key) as r:
            assert r.status == 201, await r.text()
            job_id = (await r.json())["id"]
        try:
            ajob = await ady.jobs.get(job_id)
            sdy = Dockyard(base_url=base, token=token)
            sjob = sdy.jobs.get(job_id)

            async def rest() -> None:
                async with http.post(f"/v1/jobs/{job_id}/tools/read_file", json={"path": PATH}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()

            async def sdk_async() -> None:
                await ajob.files.read(PATH)

            async def sdk_sync() -> None:
                await asyncio.to_thread(sjob.files.read, PATH)

            async def editor() -> None:
                body = {"command": "view", "path": f"/workspace/{PATH}"}
                async with http.post(f"/v1/jobs/{job_id}/tools/str_replace_based_edit_tool", json=body) as r:
                    assert r.status == 200 and not (await r.json())["is_error"]

            async def over_mcp() -> None:
                result = await mcp.call_tool("read_file", {"job_id": job_id, "path": PATH})
                assert not result.is_error

            async def replay() -> None:
                async with http.post("/v1/jobs", json=create, headers=key) as r:
                    assert r.status == 201 and r.headers.get("Idempotency-Replayed") == "true"

            async def get_job() -> None:
                async with http.get(f"/v1/jobs/{job_id}") as r:
                    assert r.status == 200

            doors: dict[str, Callable[[], Awaitable[None]]] = {
                "REST": rest,
                "SDK async": sdk_async,
                "SDK sync": sdk_sync,
                "editor view": editor,
                "MCP": over_mcp,
                "job replay": replay,
                "job GET": get_job,
            }
            times: dict[str, list[float]] = {name: [] for name in doors}
            for i in range(args.n + 10):
                for name, fn in doors.items():
                    t = await timed(fn)
                    if i >= 10:  # warm-up: the first call starts the helper, pools fill
                        times[name].append(t)
            sdy.close()
        finally:
            async with http.delete(f"/v1/jobs/{job_id}"):
                pass

    base_p50 = pct(times["REST"], 0.5)
    print(f"# read_file of a 2 KB file on one job, {args.n} calls per door, interleaved")
    targets = {"SDK async": 1.5, "SDK sync": 1.5, "editor view": 1.5, "MCP": 3.0}
    for name in ("REST", "SDK async", "SDK sync", "editor view", "MCP"):
        p50, p99 = pct(times[name], 0.5), pct(times[name], 0.99)
        target = f"(target <= {targets[name]}x)" if name in targets else "(baseline)"
        print(f"{name:12} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   p50/REST {p50 / base_p50:5.2f}x  {target}")
    replay_p50, get_p50 = pct(times["job replay"], 0.5), pct(times["job GET"], 0.5)
    print("\n# POST /v1/jobs replayed by Idempotency-Key vs GET /v1/jobs/{id}")
    ratio = replay_p50 / get_p50
    print(f"replay       p50 {replay_p50:7.2f} ms   GET p50 {get_p50:7.2f} ms   ratio {ratio:5.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="calls per door")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    token = secrets.token_hex(16)
    with running_service(tmp, token) as (base, _pid):
        asyncio.run(run(args, base, token, tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
