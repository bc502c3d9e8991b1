"""The outcome trail: each ended job's outcome, committed as `jobs/<id>.json` to a git repository
in the state dir (`<state_dir>/trail`).

An outcome is built from the store alone — the job record, its audit records up to the one that
ended it, its lint verdicts — so writing it twice gives the same bytes and the second write makes
no commit. Writes run in the background after the job's state change has committed: git runs as
an async subprocess (never on the event loop), one write at a time, and a git failure is logged
and counted, never raised into the job's path. At start-up, outcomes left uncommitted by a crash
are committed and ended jobs without an outcome get one, so the trail survives restarts.

Each outcome names the audit range of its job and the hash of the record that ended it; `dockyard
audit verify` uses those as anchors, so records removed from the tail of the log are caught too.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from service import metrics
from service.audit import AuditRecord
from service.gitproc import base_env, run_git
from service.logging import get_logger
from service.store import TERMINAL_STATUSES, JobRecord, Store

log = get_logger(__name__)

SCHEMA_VERSION = 1
GIT_TIMEOUT_S = 30.0
ENDING_ACTIONS = frozenset({"job.delete", "reap", "job.fail"})
_GIT_CONFIG = [
    "-c",
    "commit.gpgSign=false",
    "-c",
    "user.name=dockyard",
    "-c",
    "user.email=dockyard@localhost",
    "-c",
    "init.defaultBranch=main",
]


class GitFailed(Exception):
    pass


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value


def _ends_job(record: AuditRecord) -> bool:
    return record.action in ENDING_ACTIONS or (record.action == "job.create" and record.outcome != "ok")


def build_outcome(
    job: JobRecord,
    records: list[AuditRecord],
    lint_events: list[dict[str, Any]],
    kept: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The outcome document of an ended job (deterministic for the same stored state)."""
    end_index = max((i for i, r in enumerate(records) if _ends_job(r)), default=len(records) - 1)
    records = records[: end_index + 1]
    ending = records[-1] if records else None
    execs = [r for r in records if r.action.startswith("tool.") or r.action == "diff"]
    how = {
        "job.delete": "deleted",
        "reap": "reaped",
        "job.fail": "failed" if ending is None or ending.outcome != "vanished" else "vanished",
        "job.create": "create_failed",
    }.get(ending.action if ending else "", "unknown")
    return {
        "schema": SCHEMA_VERSION,
        "job": {
            "id": job.id,
            "status": job.status,
            "repo": job.repo,
            "clone_url": job.clone_url,
            "ref": job.ref,
            "base_sha": job.base_sha,
            "language": job.language,
            "image": job.image,
            "labels": job.labels,
            "limits": job.limits,
            "created_at": _iso(job.created_at),
            "expires_at": _iso(job.expires_at),
            "created_by": job.actor,
            "error": job.error,
        },
        "ended": {
            "how": how,
            "at": ending.at if ending else None,
            "by": ending.actor if ending else None,
            "outcome": ending.outcome if ending else None,
        },
        "commits": [{k: c[k] for k in ("sha", "branch", "parent") if k in c} for c in job.commits],
        # the diff kept when the job ended: `diffs/<document>.json` in this repository
        "diff": None
        if kept is None
        else {
            "document": job.kept_diff,
            "patch_sha256": kept.get("patch_sha256"),
            "files": [f.get("path") for f in kept.get("files", [])],
            "stats": kept.get("stats"),
        },
        "lint": {
            "verdicts": lint_events,
            "runs": [
                {
                    "seq": r.seq,
                    "at": r.at,
                    "linter": r.details.get("linter"),
                    "where": r.details.get("at"),
                    "outcome": r.outcome,
                    "exit_code": r.exit_code,
                    "duration_ms": r.duration_ms,
                }
                for r in records
                if r.action == "lint"
            ],
        },
        "checks": [
            {"seq": r.seq, "at": r.at, "sha": r.details.get("sha"), "status": r.outcome}
            for r in records
            if r.action == "checks"
        ],
        "execs": {
            "total": len(execs),
            "by_action": dict(sorted(Counter(r.action for r in execs).items())),
            "timed_out": sum(1 for r in execs if r.details.get("timed_out")),
            "oom_killed": sum(1 for r in execs if r.details.get("oom_killed")),
            "refused_or_failed": sum(1 for r in execs if r.outcome not in ("ok", "error")),
        },
        "audit": {
            "first_seq": records[0].seq if records else None,
            "last_seq": ending.seq if ending else None,
            "records": len(records),
            "head_hash": ending.hash if ending else None,
        },
    }


def read_anchors(root: Path) -> dict[int, str]:
    """seq → hash of every job-ending record the trail's outcomes name (for audit verify)."""
    anchors: dict[int, str] = {}
    folder = root / "jobs"
    if not folder.is_dir():
        return anchors
    for path in folder.glob("*.json"):
        try:
            audit = json.loads(path.read_text())["audit"]
            seq, digest = audit["last_seq"], audit["head_hash"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(seq, int) and isinstance(digest, str):
            anchors[seq] = digest
    return anchors


class OutcomeTrail:
    def __init__(self, root: Path, store: Store, kept_root: Path | None = None):
        self.root = root
        self.store = store
        self.kept_root = kept_root  # where ended jobs' diffs are kept (service/jobs/kept.py)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[str]] = set()
        self._ready = False

    # --- git -----------------------------------------------------------------------------------

    async def _git(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
        try:
            out = await run_git(
                [*_GIT_CONFIG, *args], cwd=self.root, env=base_env(self.root), timeout_s=GIT_TIMEOUT_S
            )
        except TimeoutError:
            raise GitFailed(f"git {args[0]} took longer than {GIT_TIMEOUT_S:.0f} s") from None
        if out.code not in ok:
            tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
            raise GitFailed(f"git {args[0]} exited {out.code}: {tail[0][:300]}")
        return out.code, out.stdout

    async def start(self) -> None:
        """Make sure the repository exists and commit whatever a crash left uncommitted."""
        try:
            async with self._lock:
                await asyncio.to_thread((self.root / "jobs").mkdir, parents=True, exist_ok=True)
                if not (self.root / ".git").exists():
                    await self._git("init", "-q")
                # We are the only writer: an index.lock at start-up is a leftover of a kill -9.
                await asyncio.to_thread((self.root / ".git" / "index.lock").unlink, missing_ok=True)
                _, status = await self._git("status", "--porcelain", "--", "jobs")
                if status.strip():
                    await self._git("add", "-A", "--", "jobs")
                    await self._git("commit", "-q", "-m", "outcomes written before a restart")
                    metrics.TRAIL_COMMITS.labels("committed").inc()
            self._ready = True
        except (GitFailed, OSError) as e:
            metrics.TRAIL_COMMITS.labels("failed").inc()
            log.error("trail_unavailable", path=str(self.root), error=str(e))

    # --- outcomes ------------------------------------------------------------------------------

    async def outcome(self, job_id: str) -> dict[str, Any] | None:
        job = await self.store.get_job(job_id)
        if job is None or job.status not in TERMINAL_STATUSES:
            return None
        records: list[AuditRecord] = []
        after = 0
        while True:
            page = await self.store.audit_query(job_id=job_id, after=after, limit=2000)
            records += page
            if len(page) < 2000:
                break
            after = page[-1].seq
        lint = [
            {"at": _iso(e.at), **e.data} for e in await self.store.list_events(job_id) if e.type == "lint"
        ]
        kept_doc = await asyncio.to_thread(self._kept_bytes, job.kept_diff)
        kept = json.loads(kept_doc) if kept_doc is not None else None
        return build_outcome(job, records, lint, kept)

    def _kept_bytes(self, address: str | None) -> bytes | None:
        if not address or self.kept_root is None:
            return None
        try:
            return (self.kept_root / f"{address}.json").read_bytes()
        except OSError:
            return None

    async def record(self, job_id: str) -> str:
        """Write and commit one job's outcome: `committed`, `unchanged`, `skipped` or `failed`.
        Never raises: a trail failure must not touch the job."""
        if not self._ready:
            await self.start()
            if not self._ready:
                return "failed"
        try:
            body = await self.outcome(job_id)
            if body is None:
                return "skipped"
            text = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            rel = f"jobs/{job_id}.json"
            paths = [rel]
            address = (body.get("diff") or {}).get("document")
            kept_doc = await asyncio.to_thread(self._kept_bytes, address)
            async with self._lock:
                if address and kept_doc is not None:  # content-addressed: the same name, the same bytes
                    paths.append(f"diffs/{address}.json")
                    await asyncio.to_thread(self._write_bytes, self.root / paths[1], kept_doc)
                await asyncio.to_thread(self._write_file, self.root / rel, text)
                await self._git("add", "--", *paths)
                code, _ = await self._git("diff", "--cached", "--quiet", "--", *paths, ok=(0, 1))
                if code == 0:
                    result = "unchanged"
                else:
                    ended = body["ended"]
                    await self._git(
                        "commit",
                        "-q",
                        "-m",
                        f"{job_id}: {body['job']['status']} ({ended['how']})",
                        "--",
                        *paths,
                    )
                    result = "committed"
        except (GitFailed, OSError) as e:
            metrics.TRAIL_COMMITS.labels("failed").inc()
            log.error("trail_write_failed", job_id=job_id, error=str(e))
            return "failed"
        except Exception:  # the trail never takes the service down
            metrics.TRAIL_COMMITS.labels("failed").inc()
            log.exception("trail_write_failed", job_id=job_id)
            return "failed"
        metrics.TRAIL_COMMITS.labels(result).inc()
        log.info("trail_written", job_id=job_id, result=result)
        return result

    @staticmethod
    def _write_bytes(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)

    @staticmethod
    def _write_file(path: Path, text: str) -> None:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def schedule(self, job_id: str) -> None:
        """Record in the background (the job's request does not wait for git)."""
        task = asyncio.get_running_loop().create_task(self.record(job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def backfill(self, limit: int = 10_000) -> int:
        """Ended jobs whose outcome is missing or stale (a crash between commit and trail)."""
        jobs = await self.store.list_jobs(statuses=list(TERMINAL_STATUSES), limit=limit)

        def stale() -> list[str]:
            out = []
            for job in jobs:
                path = self.root / "jobs" / f"{job.id}.json"
                try:
                    if json.loads(path.read_text())["job"]["status"] == job.status:
                        continue
                except (OSError, ValueError, KeyError, TypeError):
                    pass
                out.append(job.id)
            return out

        todo = await asyncio.to_thread(stale)
        for job_id in todo:
            await self.record(job_id)
        if todo:
            log.info("trail_backfilled", jobs=len(todo))
        return len(todo)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for background writes (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
