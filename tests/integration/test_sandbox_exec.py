"""The exec layer against the real engine: deadlines that really kill, output caps enforced while
reading, OOM told apart from a timeout, stdin with a clean half-close, a vanished box."""

from __future__ import annotations

import asyncio
import io
import secrets
import tarfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from service.images import resolve_images
from service.sandbox.backend import Box, BoxSpec
from service.sandbox.docker import DockerBackend
from service.sandbox.errors import SandboxError, SandboxGone, WorkspaceTooLarge
from service.settings import Limits, Settings, load_images_config

pytestmark = pytest.mark.docker

PS = ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"]


def base_tag() -> str:
    settings = Settings(api_tokens="x" * 16 + ":bot")
    cfg = load_images_config(settings.images_config)
    return resolve_images(cfg, settings.images_config, settings)["base"].tag


@pytest.fixture(scope="module")
async def backend() -> AsyncIterator[DockerBackend]:
    b = DockerBackend()
    yield b
    await b.close()


@pytest.fixture(scope="module")
async def box(backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Box]:
    tar_path = tmp_path_factory.mktemp("ws") / "ws.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.uid, info.gid = len(data), 1000, 1000
        tar.addfile(info, io.BytesIO(data))
    spec = BoxSpec(
        job_id="test_exec_" + secrets.token_hex(4),
        image=base_tag(),
        limits=Limits(memory_mb=96, cpus=1.0, pids=128, disk_mb=32, tool_timeout_s=10),
        labels={"test": "exec"},
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
        user="1000:1000",
        nofile=256,
        fsize_bytes=32 << 20,
        tmp_mb=16,
        log_max_mb=1,
    )
    created = await backend.create(spec, tar_path)
    yield created
    await backend.destroy(created.container_id, created.volume)


async def processes(backend: DockerBackend, box: Box) -> str:
    r = await backend.exec(box.container_id, PS, stdin=None, timeout_s=10, output_cap=1 << 20)
    return r.stdout.decode()


async def test_timeout_kills_the_process(backend: DockerBackend, box: Box) -> None:
    t0 = time.monotonic()
    r = await backend.exec(box.container_id, ["sleep", "300"], stdin=None, timeout_s=1.5, output_cap=1024)
    assert r.timed_out and not r.oom_killed
    assert time.monotonic() - t0 < 6
    assert "sleep 300" not in await processes(backend, box)


async def test_timeout_kills_background_children(backend: DockerBackend, box: Box) -> None:
    argv = ["sh", "-c", "sleep 301 & sleep 302 & wait"]
    r = await backend.exec(box.container_id, argv, stdin=None, timeout_s=1.5, output_cap=1024)
    assert r.timed_out
    await asyncio.sleep(0.3)
    ps = await processes(backend, box)
    # `timeout` kills its child; orphans are reaped by the marker kill on the host deadline, or
    # (here) live on only until the next exec checks — they must not survive the call.
    assert "sleep 301" not in ps and "sleep 302" not in ps, ps


async def test_output_cap_stops_a_flood_fast(backend: DockerBackend, box: Box) -> None:
    r = await backend.exec(box.container_id, ["yes"], stdin=None, timeout_s=30, output_cap=256 * 1024)
    assert r.output_truncated and len(r.stdout) == 256 * 1024
    assert not r.timed_out, "the flood was not killed at the cap (it ran to the timeout)"
    assert "yes" not in (await processes(backend, box)).split()


async def test_stderr_flood_is_capped_too(backend: DockerBackend, box: Box) -> None:
    r = await backend.exec(
        box.container_id, ["sh", "-c", "yes >&2"], stdin=None, timeout_s=30, output_cap=64 * 1024
    )
    assert r.output_truncated and len(r.stderr) <= 64 * 1024
    assert not r.timed_out, "the flood was not killed at the cap (it ran to the timeout)"


async def test_oom_is_reported_not_timeout(backend: DockerBackend, box: Box) -> None:
    argv = ["perl", "-e", "my $x = 'a' x 400_000_000; print length $x"]  # 400 MB under a 96 MB cap
    r = await backend.exec(box.container_id, argv, stdin=None, timeout_s=20, output_cap=1024)
    assert r.exit_code == 137
    assert r.oom_killed and not r.timed_out
    ok = await backend.exec(box.container_id, ["cat", "hello.txt"], stdin=None, timeout_s=5, output_cap=1024)
    assert ok.stdout == b"hello\n", "the box must stay usable after an OOM kill"


async def test_stdin_half_close(backend: DockerBackend, box: Box) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB with every byte value
    r = await backend.exec(box.container_id, ["sha256sum"], stdin=payload, timeout_s=10, output_cap=1024)
    import hashlib

    assert r.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()


async def test_removed_container_is_sandbox_gone(backend: DockerBackend, tmp_path: Path) -> None:
    tar_path = tmp_path / "empty.tar"
    with tarfile.open(tar_path, "w"):
        pass
    spec = BoxSpec(
        job_id="test_gone_" + secrets.token_hex(4),
        image=base_tag(),
        limits=Limits(memory_mb=64, cpus=0.5, pids=64, disk_mb=16, tool_timeout_s=5),
        labels={},
        expires_at=datetime.now(UTC),
        user="1000:1000",
        nofile=256,
        fsize_bytes=1 << 20,
        tmp_mb=8,
        log_max_mb=1,
    )
    gone = await backend.create(spec, tar_path)
    docker.from_env().containers.get(gone.container_id).remove(force=True)
    with pytest.raises(SandboxGone):
        await backend.exec(gone.container_id, ["true"], stdin=None, timeout_s=5, output_cap=1024)
    await backend.destroy(gone.container_id, gone.volume)
    assert not [v for v in docker.from_env().volumes.list() if v.name == gone.volume]


# --- unpacking the workspace inside the box, per-job exec slots ----------------------------------


def box_spec(prefix: str, disk_mb: int = 32) -> BoxSpec:
    return BoxSpec(
        job_id=prefix + secrets.token_hex(4),
        image=base_tag(),
        limits=Limits(memory_mb=64, cpus=0.5, pids=64, disk_mb=disk_mb, tool_timeout_s=10),
        labels={"test": "exec"},
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
        user="1000:1000",
        nofile=256,
        fsize_bytes=disk_mb << 20,
        tmp_mb=8,
        log_max_mb=1,
    )


def leftovers(name: str) -> list[str]:
    client = docker.from_env()
    return [c.name for c in client.containers.list(all=True) if c.name == name] + [
        v.name for v in client.volumes.list() if v.name == name
    ]


async def test_unpack_streams_a_tar_bigger_than_a_chunk_exactly(
    backend: DockerBackend, tmp_path: Path
) -> None:
    import hashlib

    payload = secrets.token_bytes(3 * 1024 * 1024 + 17)  # several stdin chunks, an odd tail
    tar_path = tmp_path / "ws.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data, mode in (("bin/run.sh", b"#!/bin/sh\necho ran\n", 0o755), ("blob", payload, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    created = await backend.create(box_spec("test_unpack_"), tar_path)
    try:
        r = await backend.exec(
            created.container_id,
            ["sh", "-c", "sha256sum blob; stat -c '%a %u' blob bin/run.sh; bin/run.sh"],
            stdin=None,
            timeout_s=10,
            output_cap=4096,
        )
        lines = r.stdout.decode().split("\n")
        assert lines[0].split()[0] == hashlib.sha256(payload).hexdigest()
        assert lines[1:4] == ["644 1000", "755 1000", "ran"], lines
    finally:
        await backend.destroy(created.container_id, created.volume)


def deep_tree_tar(tmp_path: Path) -> Path:
    """A 1,100-deep tree with `up -> ../` and an in-tree link, through build_tar."""
    import os
    import subprocess

    from service.clone import build_tar

    root = tmp_path / "repo"
    try:
        (root / "src").mkdir(parents=True)
        (root / "src" / "a.py").write_text("X = 1\n")
        os.symlink("../", root / "up")
        os.symlink("src", root / "lib")
        leaf = root
        for _ in range(1100):  # one level at a time (os.makedirs recurses)
            leaf = leaf / "d"
            leaf.mkdir()
        (leaf / "leaf.txt").write_text("deep\n")
        build_tar(root, tmp_path / "ws.tar", 1000, 1000)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)  # shutil.rmtree recurses too
    return tmp_path / "ws.tar"


async def test_a_deep_tree_with_links_out_is_tarred_and_unpacked(
    backend: DockerBackend, tmp_path: Path
) -> None:
    """build_tar walks a 1,100-deep tree without recursion; links (even `up -> ../`) stay links."""
    tar_path = await asyncio.to_thread(deep_tree_tar, tmp_path)
    created = await backend.create(box_spec("test_deep_"), tar_path)
    try:
        script = "readlink up; cat lib/a.py; cat $(printf 'd/%.0s' $(seq 1100))leaf.txt"
        r = await backend.exec(
            created.container_id, ["sh", "-c", script], stdin=None, timeout_s=10, output_cap=4096
        )
        assert r.stdout == b"../\nX = 1\ndeep\n", r.stderr
    finally:
        await backend.destroy(created.container_id, created.volume)


async def test_unpack_refuses_a_member_outside_the_workspace(backend: DockerBackend, tmp_path: Path) -> None:
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("../../tmp/escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    spec = box_spec("test_evil_")
    with pytest.raises(SandboxError, match="unpacking the workspace failed"):
        await backend.create(spec, tar_path)
    assert leftovers(f"dockyard-{spec.job_id}") == []


async def test_over_the_disk_cap_is_payload_too_large_and_nothing_is_left(
    backend: DockerBackend, tmp_path: Path
) -> None:
    tar_path = tmp_path / "big.tar"
    with tarfile.open(tar_path, "w") as tar:
        for i in range(3):  # each under the single-file cap, together over the volume's
            info = tarfile.TarInfo(f"part{i}")
            info.size = 7 << 20
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    spec = box_spec("test_full_", disk_mb=16)
    with pytest.raises(WorkspaceTooLarge, match="16 MB"):
        await backend.create(spec, tar_path)
    assert leftovers(f"dockyard-{spec.job_id}") == []


async def test_one_job_cannot_hold_the_exec_pool(tmp_path: Path) -> None:
    """A job's execs beyond its slots wait (holding no thread); another job's exec still runs."""
    tight = DockerBackend(exec_threads=4, job_exec_slots=2)
    tar_path = tmp_path / "empty.tar"
    with tarfile.open(tar_path, "w"):
        pass
    busy = await tight.create(box_spec("test_slots_a_"), tar_path)
    other = await tight.create(box_spec("test_slots_b_"), tar_path)
    # Each exec marks itself in /tmp, counts the marks (its running siblings), then lingers.
    count = "d=$(mktemp -d /tmp/slot.XXXX); ls -d /tmp/slot.* | wc -l; sleep 3; rmdir $d"
    try:
        hog = [
            asyncio.ensure_future(
                tight.exec(busy.container_id, ["sh", "-c", count], stdin=None, timeout_s=20, output_cap=1024)
            )
            for _ in range(6)
        ]
        await asyncio.sleep(0.5)
        r = await tight.exec(
            other.container_id, ["echo", "served"], stdin=None, timeout_s=10, output_cap=1024
        )
        assert r.stdout == b"served\n"
        assert not any(f.done() for f in hog), "the other job's exec should not have waited for the hog"
        seen = [int((await f).stdout) for f in hog]
        assert max(seen) == 2, f"at most 2 of one job's execs may run at once, saw {seen}"
    finally:
        await tight.destroy(busy.container_id, busy.volume)
        await tight.destroy(other.container_id, other.volume)
        await tight.close()


def test_output_sent_with_the_exec_start_headers_is_kept(tmp_path: Path) -> None:
    """An engine (or a TCP hop in front of it) may send a quick command's whole output in the
    same packet as the exec-start response headers; the HTTP layer then reads it along with the
    headers. It must still reach the caller (docker-py's own socket hand-over dropped it)."""
    import socket
    import struct
    import threading

    from service.sandbox.docker.execs import _start_exec, pump

    path = str(tmp_path / "engine.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    frame = struct.pack(">BxxxL", 1, 6) + b"hello\n"

    def engine() -> None:
        conn, _ = server.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        head, _, body = request.partition(b"\r\n\r\n")
        sizes = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
        length = int(sizes[0].split(b":")[1])
        while len(body) < length:
            body += conn.recv(4096)
        conn.sendall(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + frame
        )
        conn.close()

    thread = threading.Thread(target=engine, daemon=True)
    thread.start()
    api = docker.APIClient(base_url=f"unix://{path}", version="1.41")
    try:
        response, sock, early = _start_exec(api, "abc")
        pumped = pump(sock, None, time.monotonic() + 5, 1024, lambda: None, early)
        response.close()
    finally:
        api.close()
        server.close()
    assert pumped.stdout == b"hello\n" and not pumped.deadline_passed
