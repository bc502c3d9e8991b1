"""Running one command in a box: deadline + kill, a streaming output cap, a typed kill cause.

The Engine API has no exec timeout, and a client that stops reading leaves the process running.
So every command runs as `timeout -s KILL N argv…` inside the box, its output is read frame by
frame into a bounded buffer, and a host-side deadline (N + grace) backs that up by killing every
process carrying this exec's marker (via `dockyard-tool kill`) and shutting the socket.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import docker.errors
from docker import APIClient

from service.sandbox.backend import ExecResult

GRACE_S = 2.0
STDERR_CAP = 64 * 1024
STDIN_CHUNK = 1 << 20  # a streamed stdin (a file) is sent this much at a time, never read whole

Stdin = bytes | BinaryIO | None
KILL_ARGV = ["dockyard-tool", "kill"]


def wrap_argv(argv: list[str], timeout_s: float) -> list[str]:
    return ["timeout", "-s", "KILL", f"{timeout_s:g}", *argv]


class _Frames:
    """Reads the engine's multiplexed stream: bytes already read ahead first, then the socket."""

    def __init__(self, sock: socket.socket, early: bytes):
        self._sock = sock
        self._early = bytearray(early)

    def recv_exact(self, n: int, deadline: float) -> bytes | None:
        """Read exactly n bytes, None at EOF; raises TimeoutError past the deadline."""
        chunks = bytearray(self._early[:n])
        del self._early[:n]
        while len(chunks) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(min(n - len(chunks), 1 << 16))
            except TimeoutError:
                raise
            except OSError:
                return None
            if not data:
                return None
            chunks += data
        return bytes(chunks)


@dataclass
class Pumped:
    stdout: bytes
    stderr: bytes
    bytes_out: int
    truncated: bool
    deadline_passed: bool
    bytes_in: int = 0


class _Feeder(threading.Thread):
    """Streams a file into the exec's stdin in chunks, then half-closes, while the caller reads.

    Writing and reading at once means a command that talks while it reads (tar's errors) never
    deadlocks against us. It writes on its own duplicate of the socket (its own timeout); the
    reader's shutdown at the end stops a write the command no longer reads.
    """

    def __init__(self, sock: socket.socket, source: BinaryIO, deadline: float):
        super().__init__(daemon=True, name="exec-stdin")
        self._sock = sock.dup()
        self._source = source
        self._deadline = deadline
        self.sent = 0

    def run(self) -> None:
        try:
            while chunk := self._source.read(STDIN_CHUNK):
                self._sock.settimeout(max(0.5, self._deadline - time.monotonic()))
                self._sock.sendall(chunk)
                self.sent += len(chunk)
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:  # the command ended (or stopped reading) first; the reader sees why
            pass
        finally:
            self._sock.close()


def pump(
    sock: socket.socket,
    stdin: Stdin,
    deadline: float,
    output_cap: int,
    kill: Callable[[], None],
    early: bytes = b"",
) -> Pumped:
    """Feed stdin (then half-close), read the multiplexed stream into capped buffers.

    Bytes are sent whole before reading (tool payloads: bounded by the write cap); a file is
    streamed in chunks by a feeder thread while this one reads. Over the cap, `kill` runs in
    another thread while this one keeps draining and discarding (a stream nobody reads can stall
    the engine's other execs on the container). Past the deadline, `kill` runs here and reading
    stops. `early`: stream bytes the HTTP layer read past the response headers.
    """
    frames = _Frames(sock, early)
    out = bytearray()
    err = bytearray()
    err_total = 0
    bytes_out = 0
    truncated = False
    deadline_passed = False
    killer: threading.Thread | None = None
    feeder: _Feeder | None = None
    try:
        if isinstance(stdin, bytes):
            sock.settimeout(max(0.5, deadline - time.monotonic()))
            sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)
        elif stdin is not None:
            feeder = _Feeder(sock, stdin, deadline)
            feeder.start()
        while True:
            header = frames.recv_exact(8, deadline)
            if header is None:
                break
            stream, size = struct.unpack(">BxxxL", header)
            payload = frames.recv_exact(size, deadline)
            if payload is None:
                break
            bytes_out += len(payload)
            if truncated:
                continue
            if stream == 2:
                err += payload[: max(0, STDERR_CAP - len(err))]
                err_total += len(payload)
                over = err_total > output_cap
            else:
                room = output_cap - len(out)
                out += payload[:room]
                over = len(payload) > room
            if over:
                truncated = True
                killer = threading.Thread(target=kill, daemon=True)
                killer.start()
    except TimeoutError:
        deadline_passed = True
        kill()
    finally:
        if killer is not None:
            killer.join(timeout=GRACE_S)
        if feeder is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a feeder blocked on a full pipe stops now
            except OSError:
                pass
            feeder.join(timeout=GRACE_S)
        try:
            sock.close()
        except OSError:
            pass
    sent = feeder.sent if feeder is not None else len(stdin) if isinstance(stdin, bytes) else 0
    return Pumped(bytes(out), bytes(err), bytes_out, truncated, deadline_passed, sent)


def _raw_socket(conn: Any) -> socket.socket:
    return conn._sock if hasattr(conn, "_sock") else conn  # type: ignore[no-any-return]


def _start_exec(api: APIClient, exec_id: str) -> tuple[Any, socket.socket, bytes]:
    """Start an exec and take over its stream: (the HTTP response, its socket, early bytes).

    docker-py's `exec_start(socket=True)` hands back the raw socket and drops whatever the HTTP
    reader had already buffered past the response headers — and a quick command's whole output
    can arrive in that same read (seen as empty answers through a TCP hop to the engine). So the
    start call is made here and those buffered bytes are kept for the frame reader.
    """
    engine: Any = api  # docker-py's own helpers, which its type stubs do not declare
    res = engine._post_json(  # the call exec_start makes, with the response kept
        engine._url("/exec/{0}/start", exec_id),
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        data={"Tty": False, "Detach": False},
        stream=True,
    )
    engine._raise_for_status(res)
    reader = res.raw._fp.fp  # the BufferedReader the headers were parsed from
    sock = _raw_socket(reader.raw)
    sock.settimeout(0)  # take only what is buffered (or ready): never wait here
    try:
        early = reader.peek() or b""
        early = reader.read(len(early)) if early else b""
    except (BlockingIOError, TimeoutError):
        early = b""
    return res, sock, early


def run_exec(
    api: APIClient,
    container_id: str,
    argv: list[str],
    *,
    stdin: Stdin,
    timeout_s: float,
    output_cap: int,
    oom_since: Callable[[float], bool],
) -> ExecResult:
    """One exec in a running box; `stdin` bytes or a file streamed in chunks. Blocking: call
    from one of the backend's thread pools."""
    marker = secrets.token_hex(8)
    full = wrap_argv(argv, timeout_s)
    started_wall = time.time()
    t0 = time.monotonic()
    exec_id = api.exec_create(
        container_id,
        full,
        stdout=True,
        stderr=True,
        stdin=stdin is not None,
        environment={"DOCKYARD_EXEC": marker},
    )["Id"]
    response, sock, early = _start_exec(api, exec_id)
    try:
        pumped = pump(
            sock,
            stdin,
            t0 + timeout_s + GRACE_S,
            output_cap,
            lambda: _kill_marker(api, container_id, marker),
            early,
        )
    finally:
        try:
            response.close()
        except Exception:
            pass
    exit_code = _exit_code(api, exec_id)
    duration_s = time.monotonic() - t0
    truncated = pumped.truncated
    timed_out = pumped.deadline_passed or (
        exit_code == 137 and duration_s >= timeout_s - 0.05 and not truncated
    )
    oom = exit_code == 137 and not timed_out and not truncated and oom_since(started_wall - 1)
    return ExecResult(
        argv=full,
        exit_code=exit_code,
        stdout=pumped.stdout,
        stderr=pumped.stderr,
        duration_ms=int(duration_s * 1000),
        bytes_in=pumped.bytes_in,
        bytes_out=pumped.bytes_out,
        timed_out=timed_out,
        oom_killed=oom,
        output_truncated=truncated,
    )


def run_container(
    api: APIClient,
    container_id: str,
    argv: list[str],
    *,
    timeout_s: float,
    output_cap: int,
    oom_since: Callable[[float], bool],
) -> ExecResult:
    """Start a created (one-shot) container, read its output capped, kill it at the deadline.

    Attaching before start means no output is lost however fast it exits. Blocking.
    """
    conn: Any = api.attach_socket(container_id, params={"stdout": 1, "stderr": 1, "stream": 1})
    started_wall = time.time()
    t0 = time.monotonic()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            api.kill(container_id)
        except docker.errors.APIError:
            pass  # already gone

    try:
        api.start(container_id)
        pumped = pump(_raw_socket(conn), None, t0 + timeout_s, output_cap, kill)
    finally:
        try:
            conn.close()
        except Exception:
            pass
    try:
        status = api.wait(container_id, timeout=30)
        exit_code: int | None = int(status.get("StatusCode", -1))
    except Exception:  # the engine did not report an exit in time
        kill()
        exit_code = None
    state = api.inspect_container(container_id)["State"]
    duration_s = time.monotonic() - t0
    timed_out = pumped.deadline_passed
    oom = (
        not timed_out
        and not pumped.truncated
        and (
            bool(state.get("OOMKilled"))
            or (exit_code == 137 and not killed.is_set() and oom_since(started_wall - 1))
        )
    )
    return ExecResult(
        argv=argv,
        exit_code=exit_code,
        stdout=pumped.stdout,
        stderr=pumped.stderr,
        duration_ms=int(duration_s * 1000),
        bytes_in=0,
        bytes_out=pumped.bytes_out,
        timed_out=timed_out,
        oom_killed=oom,
        output_truncated=pumped.truncated,
    )


def _exit_code(api: APIClient, exec_id: str) -> int | None:
    for _ in range(50):
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            code = info.get("ExitCode")
            return int(code) if code is not None else None
        time.sleep(0.02)
    return None


def _kill_marker(api: APIClient, container_id: str, marker: str) -> None:
    """Kill every process of one exec. Detached, so it never waits on a stream of its own."""
    try:
        exec_id = api.exec_create(container_id, [*KILL_ARGV, marker], stdout=False, stderr=False)["Id"]
        api.exec_start(exec_id, detach=True)
        for _ in range(100):
            if not api.exec_inspect(exec_id).get("Running"):
                return
            time.sleep(0.02)
    except docker.errors.DockerException:
        pass
