"""Running git as an asyncio subprocess: a clean environment, hooks off, killed on timeout or
cancellation (never left running behind a cancelled task). Used by the clone and the outcome trail."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Safe whatever the repository says: no hooks, no fsmonitor daemon.
SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


@dataclass(frozen=True)
class GitOutput:
    code: int
    stdout: str
    stderr: str


# Who git says did it (reflogs, commits): never the host's user or hostname.
IDENTITY = {
    "GIT_AUTHOR_NAME": "dockyard",
    "GIT_AUTHOR_EMAIL": "dockyard@localhost",
    "GIT_COMMITTER_NAME": "dockyard",
    "GIT_COMMITTER_EMAIL": "dockyard@localhost",
}


def base_env(home: Path) -> dict[str, str]:
    """No system or user config, no prompts, plain messages, a neutral identity."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **IDENTITY,
    }


async def run_git(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float) -> GitOutput:
    """`git <SAFE_CONFIG> <args>`; raises TimeoutError (the process killed) past `timeout_s`."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *SAFE_CONFIG,
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=max(0.0, timeout_s))
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return GitOutput(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


async def _drain(stream: asyncio.StreamReader, cap: int) -> bytes:
    """Read `stream` to its end, keeping its first `cap` bytes."""
    kept = bytearray()
    while chunk := await stream.read(64 * 1024):
        kept += chunk[: max(0, cap - len(kept))]
    return bytes(kept)


async def stream_git(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    sink: Callable[[bytes], None],
    stderr_cap: int = 64 * 1024,
) -> GitOutput:
    """`git <SAFE_CONFIG> <args>` with stdout handed to `sink` chunk by chunk (never held whole).
    An exception from `sink`, a timeout (TimeoutError) or a cancellation kills git and propagates."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *SAFE_CONFIG,
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(_drain(proc.stderr, stderr_cap))
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            while chunk := await proc.stdout.read(64 * 1024):
                sink(chunk)
            err = await errors
            await proc.wait()
    except BaseException:
        errors.cancel()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return GitOutput(code, "", err.decode("utf-8", "replace"))
