"""Running git as an asyncio subprocess: a clean environment, hooks off, killed on timeout or
cancellation (never left running behind a cancelled task). Used by the clone and the outcome trail."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Safe whatever the repository says: no hooks, no fsmonitor daemon.
SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


@dataclass(frozen=True)
class GitOutput:
    code: int
    stdout: str
    stderr: str


def base_env(home: Path) -> dict[str, str]:
    """No system or user config, no prompts, plain messages."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }


async def run_git(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float
) -> GitOutput:
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
