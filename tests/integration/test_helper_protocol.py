"""The in-box helper's channel (protocol version 1) the way the service uses it, against the real
engine: a hardened job box, ONE `docker exec -i` of `dockyard-tool serve`, frames over docker-py's
exec socket (the engine's 8-byte stdout/stderr headers demultiplexed here).

Builds nothing: the base image is the one `bash scripts/setup.sh` built for the files on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import docker
import docker.errors
import pytest
from docker.types import LogConfig, Mount, Ulimit

from service.images import resolve_images
from service.settings import Settings, load_images_config

pytestmark = pytest.mark.docker

TEST_LABEL = "dockyard.test"
TIMINGS: dict[str, str] = {}


def base_tag() -> str:
    settings = Settings(api_tokens="x" * 16 + ":bot")
    cfg = load_images_config(settings.images_config)
    return resolve_images(cfg, settings.images_config, settings)["base"].tag


# --- the channel ----------------------------------------------------------------------------------


class Channel:
    """One `dockyard-tool serve` over an exec socket: requests by id, answers as futures."""

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        t0 = time.perf_counter()
        self.exec_id = api.exec_create(
            container_id, ["dockyard-tool", "serve"], stdin=True, stdout=True, stderr=True, user="1000:1000"
        )["Id"]
        sock: Any = api.exec_start(self.exec_id, socket=True)
        self.sock: socket.socket = sock._sock  # the raw socket under docker-py's SocketIO
        self.sock.settimeout(None)
        self.wlock = threading.Lock()
        self.plock = threading.Lock()
        self.pending: dict[int, Future[tuple[dict[str, Any], bytes]]] = {}
        self.next_id = 0
        self.stderr = bytearray()
        self.eof = threading.Event()
        self.hello: Future[tuple[dict[str, Any], bytes]] = Future()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.hello_header, _ = self.hello.result(timeout=10)
        self.start_ms = (time.perf_counter() - t0) * 1000

    # the engine's multiplexed stream: [stream, 0, 0, 0, size (BE u32)] + payload
    def _read(self) -> None:
        raw = bytearray()
        out = bytearray()
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                raw += chunk
                while len(raw) >= 8:
                    stream, size = raw[0], struct.unpack(">I", raw[4:8])[0]
                    if len(raw) < 8 + size:
                        break
                    payload = bytes(raw[8 : 8 + size])
                    del raw[: 8 + size]
                    if stream == 2:
                        self.stderr += payload
                    else:
                        out += payload
                self._frames(out)
        except OSError:
            pass
        finally:
            self.eof.set()
            with self.plock:
                for fut in self.pending.values():
                    if not fut.done():
                        fut.set_exception(EOFError("the channel ended"))

    def _frames(self, buf: bytearray) -> None:
        while len(buf) >= 12:
            assert buf[:2] == b"DY" and buf[2] == 1 and buf[3] == 2, bytes(buf[:12])
            hlen, blen = struct.unpack(">II", buf[4:12])
            if len(buf) < 12 + hlen + blen:
                return
            header = json.loads(bytes(buf[12 : 12 + hlen]))
            body = bytes(buf[12 + hlen : 12 + hlen + blen])
            del buf[: 12 + hlen + blen]
            if not self.hello.done():
                self.hello.set_result((header, body))
                continue
            with self.plock:
                fut = self.pending.pop(header["id"], None)
            assert fut is not None, f"an answer nobody asked for: {header}"
            fut.set_result((header, body))

    def send(
        self, op: str, args: dict[str, Any], body: bytes = b"", deadline_ms: int = 10_000
    ) -> tuple[int, Future[tuple[dict[str, Any], bytes]]]:
        fut: Future[tuple[dict[str, Any], bytes]] = Future()
        with self.plock:
            self.next_id += 1
            rid = self.next_id
            self.pending[rid] = fut
        header = json.dumps({"id": rid, "op": op, "args": args, "deadline_ms": deadline_ms}).encode()
        frame = b"DY\x01\x01" + struct.pack(">II", len(header), len(body)) + header + body
        with self.wlock:
            self.sock.sendall(frame)
        return rid, fut

    def call(
        self, op: str, args: dict[str, Any], body: bytes = b"", deadline_ms: int = 10_000
    ) -> tuple[dict[str, Any], bytes]:
        return self.send(op, args, body, deadline_ms)[1].result(timeout=30)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)  # stdin EOF: the helper exits 0
        self.eof.wait(10)
        with contextlib.suppress(OSError):
            self.sock.close()


# --- the box --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[docker.APIClient]:
    client = docker.from_env(timeout=60)
    yield client.api
    client.close()


@pytest.fixture(scope="module")
def box(api: docker.APIClient) -> Iterator[str]:
    """A job box with the service's hardening (service/sandbox/docker.py's template)."""
    name = "dockyard-helper-proto-" + secrets.token_hex(4)
    tag = base_tag()
    try:
        api.inspect_image(tag)  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {tag} missing: run `bash scripts/setup.sh`", pytrace=False)
    labels = {TEST_LABEL: "helper-protocol"}
    api.create_volume(
        name=name,
        driver="local",
        driver_opts={
            "type": "tmpfs",
            "device": "tmpfs",
            "o": "size=64m,uid=1000,gid=1000,mode=0755,nosuid,nodev",
        },
        labels=labels,
    )
    container_id = None
    try:
        host_config = api.create_host_config(
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            read_only=True,
            init=True,
            privileged=False,
            mem_limit="256m",
            memswap_limit="256m",
            nano_cpus=int(1e9),
            pids_limit=128,
            ulimits=[
                Ulimit(name="nofile", soft=1024, hard=1024),
                Ulimit(name="fsize", soft=64 << 20, hard=64 << 20),
                Ulimit(name="core", soft=0, hard=0),
            ],
            tmpfs={"/tmp": "rw,nosuid,nodev,size=16m,mode=1777"},
            mounts=[Mount(target="/workspace", source=name, type="volume", read_only=False)],
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            ipc_mode="private",
        )
        container_id = api.create_container(
            tag,
            command=["sleep", "infinity"],
            name=name,
            user="1000:1000",
            working_dir="/workspace",
            hostname="sandbox",
            labels=labels,
            environment={},
            network_disabled=True,
            host_config=host_config,
        )["Id"]
        api.start(container_id)
        yield container_id
    finally:
        if container_id is not None:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(container_id, force=True)
        with contextlib.suppress(docker.errors.APIError):
            api.remove_volume(name, force=True)


def box_exec(api: docker.APIClient, container_id: str, cmd: list[str]) -> tuple[int, bytes]:
    exec_id = api.exec_create(container_id, cmd, user="1000:1000")["Id"]
    out = api.exec_start(exec_id)
    return api.exec_inspect(exec_id)["ExitCode"], out


@pytest.fixture(scope="module")
def channel(api: docker.APIClient, box: str) -> Iterator[Channel]:
    ch = Channel(api, box)
    TIMINGS["serve start (exec_create → hello)"] = f"{ch.start_ms:.1f} ms"
    yield ch
    ch.close()


@pytest.fixture(scope="module", autouse=True)
def _report_timings() -> Iterator[None]:
    yield
    if TIMINGS:
        print("\nhelper channel timings: " + "; ".join(f"{k}: {v}" for k, v in TIMINGS.items()))


def hanging_search(path: str) -> dict[str, Any]:
    return {
        "path": path,
        "pattern": "x",
        "glob": None,
        "fixed_string": False,
        "case_sensitive": True,
        "max_results": 10,
        "max_text": 100,
    }


# --- tests ----------------------------------------------------------------------------------------


def test_hello(channel: Channel) -> None:
    h = channel.hello_header
    assert h["id"] == 0 and h["ok"] is True
    r = h["result"]
    assert r["version"] == 1 and isinstance(r["pid"], int)
    assert r["ops"] == sorted(r["ops"])
    assert {
        "ping",
        "cancel",
        "schema",
        "read_file",
        "write_file",
        "replace_in_file",
        "delete_file",
        "move_file",
        "list_directory",
        "search",
        "diff",
        "read_blobs",
    } <= set(r["ops"])
    assert r["confinement"] in ("openat2", "openat-walk")
    TIMINGS["confinement"] = r["confinement"]


def test_ping_round_trip(channel: Channel) -> None:
    rtts = []
    for _ in range(200):
        t0 = time.perf_counter()
        header, _ = channel.call("ping", {})
        rtts.append((time.perf_counter() - t0) * 1000)
        assert header["ok"] is True and header["result"] == {}
    rtts.sort()
    TIMINGS["ping round trip"] = f"p50 {statistics.median(rtts):.2f} ms, p99 {rtts[197]:.2f} ms"


def test_concurrent_pings_and_reads(channel: Channel) -> None:
    header, _ = channel.call("write_file", {"path": "hello.txt", "executable": None}, b"hello\nworld\n")
    assert header["ok"], header
    t0 = time.perf_counter()
    futures = []
    for _ in range(200):
        futures.append(("ping", channel.send("ping", {})[1]))
        read = {"path": "hello.txt", "start_line": 2, "end_line": None, "numbered": True, "cap": 1000}
        futures.append(("read", channel.send("read_file", read)[1]))
    for kind, fut in futures:
        header, body = fut.result(timeout=30)
        assert header["ok"], header
        if kind == "read":
            assert body == b"     2\tworld\n"
            assert header["result"]["total_lines"] == 2
    TIMINGS["400 concurrent requests"] = f"{(time.perf_counter() - t0) * 1000:.0f} ms"


def test_binary_write_and_read_5mib(channel: Channel) -> None:
    # read_file refuses NUL in the first 8000 bytes (binary_file); past them every byte value goes
    head = bytes(b % 255 + 1 for b in os.urandom(8000))
    data = head + os.urandom((5 << 20) - len(head))
    t0 = time.perf_counter()
    header, _ = channel.call("write_file", {"path": "blob/data.bin", "executable": None}, data)
    assert header["ok"], header
    assert header["result"]["bytes_written"] == len(data)
    assert header["result"]["content_sha256"] == hashlib.sha256(data).hexdigest()
    header, body = channel.call(
        "read_file",
        {"path": "blob/data.bin", "start_line": 1, "end_line": None, "numbered": False, "cap": 64 << 20},
    )
    TIMINGS["5 MiB write + read"] = f"{(time.perf_counter() - t0) * 1000:.0f} ms"
    assert header["ok"], header
    assert body == data
    assert header["result"]["size_bytes"] == len(data) and header["result"]["truncated"] is False
    assert header["result"]["content_sha256"] == hashlib.sha256(data).hexdigest()


def test_hanging_request_while_others_complete(api: docker.APIClient, box: str, channel: Channel) -> None:
    code, out = box_exec(api, box, ["mkfifo", "/workspace/fifo"])
    assert code == 0, out
    t0 = time.perf_counter()
    _, hang = channel.send("search", hanging_search("fifo"), deadline_ms=1500)  # rg blocks opening the FIFO
    for _ in range(50):
        header, _ = channel.call("ping", {})
        assert header["ok"]
    assert not hang.done(), "the hanging search answered before its deadline"
    assert time.perf_counter() - t0 < 1.4
    header, _ = hang.result(timeout=10)
    elapsed = time.perf_counter() - t0
    assert header["ok"] is False and header["error"]["code"] == "timed_out", header
    assert 1.4 < elapsed < 4, elapsed
    # its rg was killed with its process group
    for _ in range(50):
        _, ps = box_exec(api, box, ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
        if b"rg --json" not in ps:
            break
        time.sleep(0.05)
    assert b"rg --json" not in ps


def test_schema(channel: Channel) -> None:
    header, _ = channel.call("schema", {})
    assert header["ok"], header
    ops = header["result"]["ops"]
    assert ops["read_file"]["args"] == {
        "path": "string",
        "start_line": "integer",
        "end_line": "integer|null",
        "numbered": "boolean",
        "cap": "integer",
    }
    assert ops["write_file"]["result"]["before_sha256"] == "string|null"
    assert ops["search"]["result"] == {
        "matches": "array",
        "truncated": "boolean",
        "files_searched": "integer",
    }
    assert set(ops) == set(channel.hello_header["result"]["ops"])


def test_stdin_eof_exits_zero(api: docker.APIClient, box: str) -> None:
    ch = Channel(api, box)
    header, _ = ch.call("ping", {})
    assert header["ok"]
    ch.close()
    assert ch.eof.is_set()
    for _ in range(50):
        info = api.exec_inspect(ch.exec_id)
        if not info["Running"]:
            break
        time.sleep(0.05)
    assert info["Running"] is False and info["ExitCode"] == 0, info


def test_helper_killed_mid_request(api: docker.APIClient, box: str) -> None:
    box_exec(api, box, ["sh", "-c", "test -p /workspace/fifo2 || mkfifo /workspace/fifo2"])
    ch = Channel(api, box)
    pid = ch.hello_header["result"]["pid"]
    _, hang = ch.send("search", hanging_search("fifo2"), deadline_ms=60_000)
    time.sleep(0.2)
    assert not hang.done()
    code, out = box_exec(api, box, ["sh", "-c", f"kill -9 {pid}"])  # the shell builtin: no procps
    assert code == 0, out
    assert ch.eof.wait(10), "no EOF after the helper was killed"
    with pytest.raises(EOFError):
        hang.result(timeout=5)
    info = api.exec_inspect(ch.exec_id)
    assert info["ExitCode"] == 137 or info["Running"] is False, info
    with contextlib.suppress(OSError):
        ch.sock.close()


@pytest.mark.parametrize(
    "path, code",
    [
        ("n" * 300, "invalid_request"),  # a component over NAME_MAX
        ("/".join(["\u00e9" * 127] * 17), "invalid_request"),  # the whole over PATH_MAX
        (".GIT/config", "path_outside_workspace"),
        ("a/.Git/x", "path_outside_workspace"),
        ("GIT~1/x", "path_outside_workspace"),
    ],
)
def test_the_helper_refuses_itself_what_the_service_refuses(
    api: docker.APIClient, box: str, channel: Channel, path: str, code: str
) -> None:
    """Confinement does not rest on the service's checks: the helper refuses on its own."""
    head, _ = channel.call("write_file", {"path": path, "executable": None}, b"x\n")
    assert not head["ok"] and head["error"]["code"] == code, head
    if code == "invalid_request":
        assert head["error"]["details"]["reason"] == "name_too_long"
    probe = "ls -d /workspace/.GIT /workspace/GIT~1 /workspace/a/.Git /workspace/n* /workspace/\u00e9*"
    status, _ = box_exec(api, box, ["sh", "-c", probe])
    assert status != 0  # nothing was created
