"""Job events over SSE: the replay is bounded and says so, streams are capped per job and in all
(429 too_many_streams), 300 clients on one job leave /healthz answering, and a client leaving is
not an error in the service's log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from tests.conftest import Api, FixtureRepo, JobFactory, Service

pytestmark = pytest.mark.docker

REPLAY_MAX = 5
PER_JOB = 8
TOTAL = 12


class SseService(Service):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            DOCKYARD_SSE_REPLAY_MAX=str(REPLAY_MAX),
            DOCKYARD_SSE_MAX_STREAMS_PER_JOB=str(PER_JOB),
            DOCKYARD_SSE_MAX_STREAMS=str(TOTAL),
            DOCKYARD_SSE_PING_INTERVAL_S="0.5",
        )
        return env


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SseService]:
    s = SseService(tmp_path_factory.mktemp("sse-state"), tmp_path_factory.mktemp("sse-logs"))
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def sapi(svc: SseService) -> Api:
    return Api(svc, svc.tokens["bot"])


@pytest.fixture(scope="module")
def jobs(sapi: Api, fixture_repo: FixtureRepo, docker_client: Any) -> Iterator[JobFactory]:
    factory = JobFactory(sapi, fixture_repo, docker_client)
    try:
        yield factory
    finally:
        factory.cleanup()


def _events(api: Api, job_id: str, count: int, last_id: str | None = None) -> list[dict[str, Any]]:
    """The first `count` events of a stream (a live job's stream does not end by itself)."""
    headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
    out: list[dict[str, Any]] = []
    with api.session.get(
        f"{api.service.url}/v1/jobs/{job_id}/events",
        headers={"Authorization": f"Bearer {api.token}", **headers},
        stream=True,
        timeout=30,
    ) as r:
        assert r.status_code == 200, r.text[:500]
        current: dict[str, Any] = {}
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith(":"):
                continue  # keep-alive ping
            if not line:
                if current:
                    out.append(current)
                    current = {}
                    if len(out) == count:
                        return out
                continue
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return out


def test_replay_is_bounded_and_says_so(sapi: Api, jobs: JobFactory) -> None:
    job = jobs()
    for _ in range(12):  # each tool call is one `exec` event
        sapi.read(job["id"], "README.md")
    got = _events(sapi, job["id"], REPLAY_MAX + 1)
    notice, past = got[0], got[1:]
    assert notice["event"] == "replay.truncated" and "id" not in notice
    data = json.loads(notice["data"])["data"]
    assert data["after_seq"] == 0 and data["replay_max"] == REPLAY_MAX
    assert len(past) == REPLAY_MAX and all(e["event"] == "exec" for e in past)
    seqs = [int(e["id"]) for e in past]
    assert seqs == sorted(seqs) and data["first_seq"] == seqs[0]

    # Resuming inside the window: no notice, exactly the events after Last-Event-ID.
    again = _events(sapi, job["id"], 2, last_id=str(seqs[2]))
    assert [int(e["id"]) for e in again] == seqs[3:5]


async def _open_streams(svc: Service, job_id: str, n: int) -> tuple[list[Any], list[Any], Any]:
    """Open `n` streams at once; returns (open 200 responses, 429 answers as (headers, body), session)."""
    session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {svc.tokens['bot']}"},
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
    )

    async def one() -> Any:
        return await session.get(f"{svc.url}/v1/jobs/{job_id}/events")

    responses = await asyncio.gather(*(one() for _ in range(n)))
    opened, refused = [], []
    for r in responses:
        if r.status == 200:
            while not (await r.content.readline()).startswith(b"data:"):
                pass  # the first replayed event really arrives
            opened.append(r)
        else:
            refused.append((r.status, dict(r.headers), await r.json()))
            r.release()
    return opened, refused, session


def _wait_for_free_slot(api: Api, job_id: str) -> None:
    """A left client's slot is freed once a ping finds it gone (the ping interval is 0.5 s)."""
    deadline = time.monotonic() + 60
    while True:
        with api.session.get(
            f"{api.service.url}/v1/jobs/{job_id}/events",
            headers={"Authorization": f"Bearer {api.token}"},
            stream=True,
            timeout=30,
        ) as r:
            if r.status_code == 200:
                return
            assert r.status_code == 429, r.text[:300]
        assert time.monotonic() < deadline, "the slots of clients that left were never freed"
        time.sleep(0.5)


def test_300_streams_are_capped_and_healthz_keeps_answering(
    svc: SseService, sapi: Api, jobs: JobFactory
) -> None:
    a, b = jobs(), jobs()
    health: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            health.append(requests.get(f"{svc.url}/healthz", timeout=10).status_code)
            time.sleep(0.05)

    async def scenario() -> None:
        prober = threading.Thread(target=probe)
        prober.start()
        try:
            opened, refused, session = await _open_streams(svc, a["id"], 300)
            try:
                assert len(opened) == PER_JOB
                assert len(refused) == 300 - PER_JOB
                for status, headers, body in refused:
                    assert status == 429 and body["error"]["code"] == "too_many_streams", body
                    assert int(headers["Retry-After"]) >= 1
                # the global cap: job b gets only what is left of it
                opened_b, refused_b, session_b = await _open_streams(svc, b["id"], PER_JOB)
                try:
                    assert len(opened_b) == TOTAL - PER_JOB
                    assert {body["error"]["code"] for _, _, body in refused_b} == {"too_many_streams"}
                finally:
                    await session_b.close()
            finally:
                await session.close()
        finally:
            stop.set()
            prober.join()

    asyncio.run(scenario())
    assert health and set(health) == {200}
    _wait_for_free_slot(sapi, a["id"])


def _bad_log_lines(path: Path | None) -> list[str]:
    assert path is not None
    bad = []
    for line in path.read_text(errors="replace").splitlines():
        if "Traceback" in line or "Error handling request" in line:
            bad.append(line)
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            record.get("level") in ("error", "critical", "exception")
            or record.get("event") == "internal_error"
        ):
            bad.append(line)
    return bad


def test_clients_leaving_are_not_errors(svc: SseService, sapi: Api, jobs: JobFactory) -> None:
    job = jobs()
    before = _bad_log_lines(svc.stderr_path)

    async def leave() -> None:
        deadline = time.monotonic() + 60
        while True:  # the streams of the test before are let go at their next ping
            opened, refused, session = await _open_streams(svc, job["id"], PER_JOB)
            if not refused:
                break
            await session.close()
            assert time.monotonic() < deadline, "streams of clients that left were never freed"
            await asyncio.sleep(0.5)
        for r in opened:  # hang up abruptly, mid-stream
            r.connection.transport.abort()
        await session.close()

    asyncio.run(leave())
    for _ in range(5):  # live events written towards the clients that left
        sapi.read(job["id"], "README.md")
    _wait_for_free_slot(sapi, job["id"])
    time.sleep(1.5)  # a few pings towards anything still open
    assert _bad_log_lines(svc.stderr_path) == before
    assert sapi.get("/healthz").status_code == 200
