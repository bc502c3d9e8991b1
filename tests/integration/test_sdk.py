"""The SDK (sdk/dockyard_client) against the real service and real jobs: the sync and the async job
handles end to end (deleted on leaving the `with`, also on an exception), typed errors, env
defaults, jobs.list paging, and events() resuming after a dropped connection with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dockyard_client import AsyncDockyard, Dockyard, errors
from dockyard_client.models import JobEvent

from tests.conftest import Service, _git

pytestmark = pytest.mark.docker

APP = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny repository under the service's file:// clone root."""
    root: Path = tmp_path_factory.mktemp("sdk-repo") / "small"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    (root / "README.md").write_text("# small\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    return root.as_uri()


def _job_status(service: Service, job_id: str) -> str:
    r = requests.get(
        f"{service.url}/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {service.tokens['bot']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:300]
    return str(r.json()["status"])


def test_sync_job_handle_end_to_end(service: Service, small_repo: str) -> None:
    with Dockyard(service.url, service.tokens["bot"]) as dy:
        created = dy.jobs.create(clone_url=small_repo, ref="main", language="generic", labels={"sdk": "sync"})
        with created as job:
            assert job.status == "ready" and job.info.base_sha
            assert job.files.read("src/app.py").content == APP
            assert job.files.read("src/app.py", numbered=True).content.startswith("     1\t")
            assert job.files.write("src/new.py", "X = 1\n").created
            replaced = job.files.replace("src/app.py", "a + b", "b + a")
            assert replaced.replacements == 1
            names = {e.path for e in job.files.list("src").entries}
            assert names == {"src/app.py", "src/new.py"}
            found = job.files.search("b + a", fixed_string=True)
            assert [(m.path, m.line) for m in found.matches] == [("src/app.py", 2)]
            with pytest.raises(errors.EditMismatch) as mismatch:
                job.files.replace("src/app.py", "not there", "x")
            assert mismatch.value.status == 409 and mismatch.value.code == "edit_mismatch"
            lint = job.lint()
            assert lint.status in {"passed", "failed"}, lint
            diff = job.diff()
            assert {f.path: f.status for f in diff.files} == {"src/app.py": "modified", "src/new.py": "added"}
            assert "+    return b + a" in diff.patch
            assert job.refresh().status == "ready"
            job_id = job.id
        # The record stays, the job is gone.
        assert dy.jobs.get(job_id).status == "destroyed"


def test_sync_job_is_deleted_when_the_block_raises(service: Service, small_repo: str) -> None:
    with Dockyard(service.url, service.tokens["bot"]) as dy:
        seen: list[str] = []
        with pytest.raises(RuntimeError, match="agent gave up"):
            with dy.jobs.create(clone_url=small_repo, language="generic") as job:
                seen.append(job.id)
                raise RuntimeError("agent gave up")
        assert _job_status(service, seen[0]) == "destroyed"


async def test_async_job_handle_end_to_end(service: Service, small_repo: str) -> None:
    async with AsyncDockyard(service.url, service.tokens["bot"]) as dy:
        async with dy.jobs.create(clone_url=small_repo, ref="main", language="generic") as job:
            assert (await job.files.read("src/app.py")).content == APP
            await job.files.write("docs/notes.md", "notes\n")
            await job.files.replace("src/app.py", "return a + b", "return a - b")
            listing = await job.files.list(".", depth=2)
            assert {"docs/notes.md", "src/app.py"} <= {e.path for e in listing.entries}
            assert (await job.files.search("a - b", fixed_string=True)).matches[0].path == "src/app.py"
            assert (await job.lint()).status in {"passed", "failed"}
            diff = await job.diff()
            assert diff.stats.files == 2 and "-    return a + b" in diff.patch
            job_id = job.id
        assert (await dy.jobs.get(job_id)).status == "destroyed"

        # awaited rather than entered: a plain handle, deleted by hand; and delete-on-exception
        handle = await dy.jobs.create(clone_url=small_repo, language="generic")
        assert handle.status == "ready"
        await handle.delete()
        assert (await handle.refresh()).status == "destroyed"
        with pytest.raises(ValueError):
            async with dy.jobs.create(clone_url=small_repo, language="generic") as job:
                job_id = job.id
                raise ValueError("boom")
        assert _job_status(service, job_id) == "destroyed"


async def test_typed_errors(service: Service) -> None:
    with Dockyard(service.url, service.tokens["bot"]) as dy:
        with pytest.raises(errors.JobNotFound) as e:
            dy.jobs.get("job_doesnotexist")
        assert isinstance(e.value, errors.NotFound) and isinstance(e.value, errors.APIError)
        assert e.value.status == 404 and e.value.code == "job_not_found" and e.value.message
        with pytest.raises(errors.CloneSourceForbidden):
            dy.jobs.create(clone_url="file:///etc", language="generic")
        with pytest.raises(errors.Forbidden):
            dy.config.get()  # a bot is not an admin
    with Dockyard(service.url, "not-a-token-at-all-0000") as dy:
        with pytest.raises(errors.AuthenticationError):
            dy.images.list()
    async with AsyncDockyard(service.url, service.tokens["bot"]) as ady:
        with pytest.raises(errors.JobNotFound):
            await ady.jobs.get("job_doesnotexist")
    with Dockyard(f"http://127.0.0.1:{_closed_port()}", "x" * 20, max_retries=1) as dy:
        with pytest.raises(errors.ConnectionError):
            dy.health()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_env_defaults_and_explicit_arguments(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_API_URL", service.url)
    monkeypatch.setenv("DOCKYARD_API_TOKEN", service.tokens["admin"])
    with Dockyard() as dy:
        assert dy.base_url == service.url
        assert dy.health().status == "ok"
        assert dy.config.get().images  # the admin token from the environment
        assert dy.ready().status in {"ok", "unavailable"}
        assert dy.images.list().languages
        assert dy.audit.verify().ok
        assert any(t.name == "read_file" for t in dy.agent_tools())
        assert "dockyard_" in dy.metrics()
        assert dy.config.reload().images_config
    with Dockyard(token=service.tokens["bot"]) as dy:  # explicit wins over the environment
        with pytest.raises(errors.Forbidden):
            dy.config.get()
    monkeypatch.setenv("DOCKYARD_API_URL", f"http://127.0.0.1:{_closed_port()}")
    with Dockyard(service.url) as dy:
        assert dy.health().status == "ok"


def test_audit_list_pages_through_every_record(service: Service, small_repo: str) -> None:
    with Dockyard(service.url, service.tokens["bot"]) as bot:
        with bot.jobs.create(clone_url=small_repo, language="generic") as job:
            for _ in range(3):
                job.files.read("README.md")
            job_id = job.id
    with Dockyard(service.url, service.tokens["auditor"]) as dy:
        records = list(dy.audit.list(job_id=job_id, page_size=2))
        actions = [r.action for r in records]
        assert actions.count("tool.read_file") == 3 and "job.create" in actions and "job.delete" in actions
        seqs = [r.seq for r in records]
        assert seqs == sorted(set(seqs))


def test_jobs_list_follows_the_cursor(service: Service, small_repo: str, unique: Any) -> None:
    document = requests.get(f"{service.url}/openapi.json", timeout=30).json()
    schema = document["components"]["schemas"]["JobList"]
    if "next_cursor" not in schema.get("properties", {}):
        pytest.skip("this service's GET /v1/jobs has no cursor (next_cursor absent from /openapi.json)")
    label = unique("page")
    with Dockyard(service.url, service.tokens["bot"]) as dy:
        labels = {"sdk-page": label}
        made = [dy.jobs.create(clone_url=small_repo, language="generic", labels=labels) for _ in range(3)]
        try:
            calls: list[str] = []
            dy._http.event_hooks["request"].append(lambda r: calls.append(str(r.url)))
            listed = [j.id for j in dy.jobs.list(labels={"sdk-page": label}, page_size=1)]
            assert sorted(listed) == sorted(j.id for j in made) and len(set(listed)) == 3
            assert len(calls) >= 3 and any("cursor=" in c for c in calls)
        finally:
            for j in made:
                j.delete()


# --- events: a dropped connection is resumed ---------------------------------------------------------


class DroppingProxy:
    """A TCP proxy to the service that cuts its FIRST connection in the middle of the third event of
    the stream, and records the Last-Event-ID each connection asked with."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.last_event_ids: list[str | None] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._pipe, args=(client, self.connections == 1), daemon=True).start()

    def _pipe(self, client: socket.socket, drop: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                break
            head += chunk
        last = [ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n")
                if ln.lower().startswith(b"last-event-id:")]
        self.last_event_ids.append(last[0] if last else None)
        upstream.sendall(head)
        threading.Thread(target=self._copy, args=(client, upstream), daemon=True).start()
        seen = b""
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if drop and (seen + data).count(b"data:") >= 3:
                    cut = (seen + data).index(b"data:", _nth(seen + data, b"data:", 3)) + 10 - len(seen)
                    client.sendall(data[:cut])  # half of the third event, then the line goes dead
                    break
                seen += data
                client.sendall(data)
        finally:
            for s in (client, upstream):
                with _suppress():
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        with _suppress():
            while data := src.recv(65536):
                dst.sendall(data)

    def close(self) -> None:
        self.sock.close()


def _nth(data: bytes, needle: bytes, n: int) -> int:
    at = -1
    for _ in range(n):
        at = data.index(needle, at + 1)
    return at


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


@pytest.fixture
def ended_job(service: Service, small_repo: str) -> Iterator[tuple[str, list[int]]]:
    """A job that made a few events and ended, with its event seqs as the service streams them."""
    with Dockyard(service.url, service.tokens["bot"]) as dy:
        with dy.jobs.create(clone_url=small_repo, language="generic") as job:
            for i in range(4):
                job.files.write(f"f{i}.txt", f"{i}\n")
            job_id = job.id
    with requests.get(
        f"{service.url}/v1/jobs/{job_id}/events",
        headers={"Authorization": f"Bearer {service.tokens['bot']}"}, stream=True, timeout=60,
    ) as r:
        lines = r.iter_lines(decode_unicode=True)
        seqs = [json.loads(line[5:])["seq"] for line in lines if line.startswith("data:")]
    assert len(seqs) >= 6, seqs
    yield job_id, seqs


def test_events_resume_after_a_dropped_connection(service: Service, ended_job: tuple[str, list[int]]) -> None:
    job_id, expected = ended_job
    proxy = DroppingProxy(service.port)
    try:
        with Dockyard(f"http://127.0.0.1:{proxy.port}", service.tokens["bot"]) as dy:
            events = list(dy.jobs.get(job_id).events())
    finally:
        proxy.close()
    assert all(isinstance(e, JobEvent) for e in events)
    seqs = [e.seq for e in events if isinstance(e, JobEvent)]
    assert seqs == expected, "an event was lost or repeated across the reconnect"
    assert events[-1].type == "job.destroyed"
    # the first connection was cut after two whole events: the next one resumed after the second
    assert proxy.last_event_ids[:2] == [None, str(expected[1])], proxy.last_event_ids


async def test_async_events_resume_after_a_dropped_connection(
    service: Service, ended_job: tuple[str, list[int]]
) -> None:
    job_id, expected = ended_job
    proxy = DroppingProxy(service.port)
    try:
        async with AsyncDockyard(f"http://127.0.0.1:{proxy.port}", service.tokens["bot"]) as dy:
            job = await dy.jobs.get(job_id)
            seqs = [e.seq async for e in job.events() if isinstance(e, JobEvent)]
    finally:
        proxy.close()
    assert seqs == expected
    assert proxy.connections >= 2 and proxy.last_event_ids[1] == str(expected[1])


async def test_live_events_end_with_the_job(service: Service, small_repo: str) -> None:
    async with AsyncDockyard(service.url, service.tokens["bot"]) as dy:
        job = await dy.jobs.create(clone_url=small_repo, language="generic")
        got: list[str] = []

        async def follow() -> None:
            async for event in job.events():
                got.append(event.type)

        task = asyncio.create_task(follow())
        await job.files.read("README.md")
        await job.delete()
        await asyncio.wait_for(task, timeout=30)
        assert len(got) >= 3 and got[-1] == "job.destroyed", got  # created ... the read ... destroyed
