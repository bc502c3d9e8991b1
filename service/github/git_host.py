"""Commit a job's whole diff as ONE commit through the Git Data API, open a draft PR, read CI.

Requests per commit: token (2) + ref + base commit + [blobs for binary files only] + tree +
commit + ref update (+ pulls list/create). Text travels inline in the tree request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any, cast

from githubkit import GitHub

from service.audit import Actor, AuditEntry
from service.errors import (
    BranchProtected,
    CommitConflict,
    GitHubError,
    InvalidRequest,
    NothingToCommit,
    RepoNotFound,
)
from service.github.client import CHECKS, COMMIT, COMMIT_AND_PR, GitHubApp, RepoId
from service.jobs import JobService
from service.logging import get_logger
from service.models import (
    CheckRunInfo,
    ChecksResult,
    CommitRequest,
    CommitResult,
    PullRequestRef,
)
from service.store import JobRecord, now
from service.tools.diff import BlobsQuery, Change, DiffQuery
from service.tools.registry import DIFF, READ_BLOBS

log = get_logger(__name__)

GOOD_CONCLUSIONS = {"success", "neutral", "skipped"}


@dataclass(frozen=True)
class _Plan:
    parent: str
    base_tree: str
    create_ref: bool
    force: bool


def fingerprint(changes: list[Change], message: str, branch: str) -> str:
    items = sorted((c.path, c.status, c.mode, c.new_sha) for c in changes)
    return hashlib.sha256(json.dumps([items, message, branch]).encode()).hexdigest()


class GitHost:
    def __init__(self, jobs: JobService, app: GitHubApp):
        self.jobs = jobs
        self.app = app
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _repo_of(self, job: JobRecord) -> RepoId:
        if not job.repo:
            raise InvalidRequest(
                "this job was created from clone_url; commits and checks need a job created with repo",
                {"job_id": job.id},
            )
        return RepoId.parse(job.repo)

    # --- commit ----------------------------------------------------------------------------------

    async def commit(self, job_id: str, req: CommitRequest, actor: Actor) -> CommitResult:
        # One commit of a job at a time (any branch): each writes the job's whole commit list.
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        async with lock:
            job = await self.jobs.ready_job(job_id)  # read under the lock: the commits are current
            repo = self._repo_of(job)
            await self._refuse_protected(job, req.branch, actor, default_branch=None)
            return await self._commit(job, repo, req, actor)

    async def _refuse_protected(
        self, job: JobRecord, branch: str, actor: Actor, *, default_branch: str | None
    ) -> None:
        """`403 branch_protected` for the default branch, the job's base branch or an ops pattern."""
        why = self.jobs.settings.branch_refusal(branch)
        base = job.ref.removeprefix("refs/").removeprefix("heads/") if job.ref is not None else None
        if why is None and base is not None and branch == base:
            why = f"branch {branch!r} is the branch this job started from; commit to a new branch"
        if why is None and default_branch is not None and branch == default_branch:
            why = f"branch {branch!r} is the repository's default branch; commit to a new branch"
        if why is None:
            return
        await self.jobs.store.audit(
            AuditEntry(
                actor=actor,
                action="commit",
                outcome="branch_protected",
                job_id=job.id,
                container_id=job.container_id,
                details={"branch": branch, "reason": why},
            )
        )
        raise BranchProtected(why, {"branch": branch})

    async def _default_branch(self, gh: GitHub[Any], repo: RepoId) -> str:
        info = await self.app.call(
            "reading the repository", repo, gh.rest.repos.async_get(repo.owner, repo.name)
        )
        return info.parsed_data.default_branch

    async def _commit(self, job: JobRecord, repo: RepoId, req: CommitRequest, actor: Actor) -> CommitResult:
        assert job.base_sha is not None
        diff = (await self.jobs.run_tool(job.id, DIFF, DiffQuery(job.base_sha), actor)).complete()
        changes = diff.changes
        if not changes:
            raise NothingToCommit("the workspace has no changes against base_sha", {"base_sha": job.base_sha})
        bad = [c.path for c in changes if not c.path_is_utf8]
        if bad:
            raise InvalidRequest("GitHub paths must be UTF-8; these are not", {"paths": bad})
        fp = fingerprint(changes, req.message, req.branch)
        gh = await self.app.repo_client(repo, COMMIT_AND_PR if req.pull_request else COMMIT)
        async with gh:  # one connection for the whole commit
            return await self._commit_with(gh, job, repo, req, actor, changes, fp, diff.patch_sha256)

    async def _commit_with(
        self,
        gh: GitHub[Any],
        job: JobRecord,
        repo: RepoId,
        req: CommitRequest,
        actor: Actor,
        changes: list[Change],
        fp: str,
        patch_sha256: str,
    ) -> CommitResult:
        default = await self._default_branch(gh, repo)
        await self._refuse_protected(job, req.branch, actor, default_branch=default)
        ref_sha = await self._ref(gh, repo, req.branch)
        own = {c["sha"]: c for c in job.commits if c.get("branch") == req.branch}
        if ref_sha is not None and ref_sha in own and own[ref_sha].get("fingerprint") == fp:
            commit_sha = ref_sha  # same diff, same branch: the same commit, nothing new
            log.info("commit_unchanged", branch=req.branch, sha=commit_sha)
        else:
            plan = await self._plan(gh, repo, job, ref_sha, own, changes)
            commit_sha = await self._write(gh, repo, job, req, changes, plan, actor)
            record = {
                "sha": commit_sha,
                "branch": req.branch,
                "parent": plan.parent,
                "fingerprint": fp,
                "at": time.time(),
            }
            commits = [c for c in job.commits if c.get("branch") != req.branch] + [record]
            await self.jobs.store.update_job(
                job.id,
                audit=AuditEntry(
                    actor=actor,
                    action="commit",
                    outcome="ok",
                    job_id=job.id,
                    container_id=job.container_id,
                    details={
                        "repo": str(repo),
                        "sha": commit_sha,
                        "branch": req.branch,
                        "parent": plan.parent,
                        "files": [c.path for c in changes],
                        # the diff this commit carries: an auditor matches it to the job's kept diff
                        "patch_sha256": patch_sha256,
                    },
                ),
                commits=commits,
            )
            await self.jobs.hub.publish(job.id, "commit", {"sha": commit_sha, "branch": req.branch})
        pr = await self._pull_request(gh, repo, req) if req.pull_request else None
        return CommitResult(
            commit_sha=commit_sha, branch=req.branch, files_changed=len(changes), pull_request=pr
        )

    async def _ref(self, gh: GitHub[Any], repo: RepoId, branch: str) -> str | None:
        try:
            op = gh.rest.git.async_get_ref(repo.owner, repo.name, f"heads/{branch}")
            ref = await self.app.call("reading the branch", repo, op)
        except RepoNotFound:  # GitHub's 404 for a branch that does not exist
            return None
        return ref.parsed_data.object_.sha

    async def _tree_of(self, gh: GitHub[Any], repo: RepoId, commit_sha: str) -> str:
        c = await self.app.call(
            "reading a commit", repo, gh.rest.git.async_get_commit(repo.owner, repo.name, commit_sha)
        )
        return c.parsed_data.tree.sha

    async def _plan(
        self,
        gh: GitHub[Any],
        repo: RepoId,
        job: JobRecord,
        ref_sha: str | None,
        own: dict[str, dict[str, Any]],
        changes: list[Change],
    ) -> _Plan:
        assert job.base_sha is not None
        if ref_sha is None:  # a new branch from where the job started
            return _Plan(
                job.base_sha, await self._tree_of(gh, repo, job.base_sha), create_ref=True, force=False
            )
        if ref_sha in own:  # the job's own commit: replace it (same parent), so the branch stays squashed
            parent = str(own[ref_sha]["parent"])
            return _Plan(parent, await self._tree_of(gh, repo, parent), create_ref=False, force=True)
        if ref_sha == job.base_sha:
            return _Plan(ref_sha, await self._tree_of(gh, repo, ref_sha), create_ref=False, force=False)
        # The branch moved under someone else's commit: fine unless they touched our files since
        # the job's own last commit there (or since base_sha when it has none).
        since = next(iter(own), job.base_sha)
        cmp = await self.app.call(
            "comparing the branch",
            repo,
            gh.rest.repos.async_compare_commits(repo.owner, repo.name, f"{since}...{ref_sha}"),
        )
        theirs = set()
        for f in cmp.parsed_data.files or []:
            theirs.add(f.filename)
            if f.previous_filename:  # a rename touches its old path too
                theirs.add(f.previous_filename)
        clash = sorted(theirs & {c.path for c in changes})
        if clash:
            raise CommitConflict(
                f"the branch moved and these files changed there too: {', '.join(clash)}",
                {"files": clash, "branch_head": ref_sha},
            )
        return _Plan(ref_sha, await self._tree_of(gh, repo, ref_sha), create_ref=False, force=False)

    async def _write(
        self,
        gh: GitHub[Any],
        repo: RepoId,
        job: JobRecord,
        req: CommitRequest,
        changes: list[Change],
        plan: _Plan,
        actor: Actor,
    ) -> str:
        present = [c for c in changes if c.status != "deleted" and c.mode != "160000"]
        blobs = (
            await self.jobs.run_tool(
                job.id, READ_BLOBS, BlobsQuery(tuple(sorted({c.new_sha for c in present}))), actor
            )
            if present
            else {}
        )
        entries: list[dict[str, Any]] = []
        for c in changes:
            if c.status == "deleted":
                entries.append({"path": c.path, "mode": c.old_mode, "type": "blob", "sha": None})
                continue
            if c.mode == "160000":
                entries.append({"path": c.path, "mode": "160000", "type": "commit", "sha": c.new_sha})
                continue
            data = blobs[c.new_sha]
            text = _text(data) if not c.binary else None
            if text is not None:
                entries.append({"path": c.path, "mode": c.mode, "type": "blob", "content": text})
            else:  # binary: its own blob, base64 (the only content the tree request cannot carry)
                blob = await self.app.call(
                    "uploading a binary file",
                    repo,
                    gh.rest.git.async_create_blob(
                        repo.owner, repo.name, data={"content": _b64(data), "encoding": "base64"}
                    ),
                )
                entries.append({"path": c.path, "mode": c.mode, "type": "blob", "sha": blob.parsed_data.sha})
        tree_body: Any = {"base_tree": plan.base_tree, "tree": entries}
        tree = await self.app.call(
            "creating the tree", repo, gh.rest.git.async_create_tree(repo.owner, repo.name, data=tree_body)
        )
        s = self.jobs.settings
        who = {"name": s.github_commit_author_name, "email": s.github_commit_author_email}
        commit_body: Any = {
            "message": req.message,
            "tree": tree.parsed_data.sha,
            "parents": [plan.parent],
            "author": who,
            "committer": who,
        }
        commit = await self.app.call(
            "creating the commit",
            repo,
            gh.rest.git.async_create_commit(repo.owner, repo.name, data=commit_body),
        )
        sha = commit.parsed_data.sha
        move = (
            gh.rest.git.async_create_ref(
                repo.owner, repo.name, data={"ref": f"refs/heads/{req.branch}", "sha": sha}
            )
            if plan.create_ref
            else gh.rest.git.async_update_ref(
                repo.owner, repo.name, f"heads/{req.branch}", data={"sha": sha, "force": plan.force}
            )
        )
        try:
            await self.app.call("moving the branch", repo, move)
        except GitHubError as e:
            if e.details.get("github_status") == 422:  # someone moved or made the branch meanwhile
                raise CommitConflict(
                    f"branch {req.branch} changed while committing; retry", {"branch": req.branch}
                ) from None
            raise
        return sha

    async def _pull_request(self, gh: GitHub[Any], repo: RepoId, req: CommitRequest) -> PullRequestRef:
        assert req.pull_request is not None
        existing = await self.app.call(
            "listing pull requests",
            repo,
            gh.rest.pulls.async_list(repo.owner, repo.name, state="open", head=f"{repo.owner}:{req.branch}"),
        )
        for pr in cast(list[Any], existing.parsed_data):
            return PullRequestRef(number=pr.number, url=pr.html_url)
        base = req.base_branch
        if base is None:
            base = await self._default_branch(gh, repo)
        body: Any = {
            "title": req.pull_request.title,
            "body": req.pull_request.body,
            "head": req.branch,
            "base": base,
            "draft": req.pull_request.draft,
        }
        made = await self.app.call(
            "opening the pull request", repo, gh.rest.pulls.async_create(repo.owner, repo.name, data=body)
        )
        return PullRequestRef(number=made.parsed_data.number, url=made.parsed_data.html_url)

    # --- checks ----------------------------------------------------------------------------------

    async def checks(self, job_id: str, sha: str | None, wait_s: float, actor: Actor) -> ChecksResult:
        job = await self.jobs.get(job_id)
        repo = self._repo_of(job)
        commit = next((c for c in reversed(job.commits) if sha is None or c["sha"] == sha), None)
        if sha is None:
            if commit is None:
                raise InvalidRequest("the job has made no commit yet; pass ?sha=", {"job_id": job.id})
            sha = str(commit["sha"])
        since = float(commit["at"]) if commit and "at" in commit else time.time()
        settings = self.jobs.settings
        deadline = time.monotonic() + wait_s
        gh = await self.app.repo_client(repo, CHECKS)
        async with gh:
            while True:
                result = await self._checks_once(gh, repo, sha, since)
                if result.status != "pending" or time.monotonic() >= deadline:
                    break
                pause = min(settings.github_poll_interval_s, max(0.0, deadline - time.monotonic()))
                await asyncio.sleep(pause)
        await self.jobs.store.audit(
            AuditEntry(
                actor=actor,
                action="checks",
                outcome=result.status,
                job_id=job.id,
                details={"repo": str(repo), "sha": sha, "checks": len(result.checks)},
            )
        )
        return result

    async def _checks_once(self, gh: GitHub[Any], repo: RepoId, sha: str, since: float) -> ChecksResult:
        runs: list[CheckRunInfo] = []
        page = 1
        while True:  # paginated: GitHub caps a page at 100
            resp = await self.app.call(
                "listing check runs",
                repo,
                gh.rest.checks.async_list_for_ref(repo.owner, repo.name, sha, per_page=100, page=page),
            )
            data = resp.parsed_data
            runs += [
                CheckRunInfo(name=r.name, status=r.status, conclusion=r.conclusion) for r in data.check_runs
            ]
            if len(runs) >= data.total_count or not data.check_runs:
                break
            page += 1
        combined = (
            await self.app.call(
                "reading the commit status",
                repo,
                gh.rest.repos.async_get_combined_status_for_ref(repo.owner, repo.name, sha, per_page=100),
            )
        ).parsed_data
        statuses = [{"context": s.context, "state": s.state} for s in combined.statuses]
        details: dict[str, Any] = {"statuses": statuses}
        if not runs and combined.total_count == 0:
            waited = now().timestamp() - since
            grace = self.jobs.settings.github_no_ci_grace_s
            if waited >= grace:
                return ChecksResult(status="no_ci", sha=sha, checks=[], details=details)
            details["no_ci_in_s"] = round(grace - waited, 1)
            return ChecksResult(status="pending", sha=sha, checks=[], details=details)
        failed = [
            {"name": r.name, "conclusion": r.conclusion}
            for r in runs
            if r.status == "completed" and r.conclusion not in GOOD_CONCLUSIONS
        ]
        failed += [
            {"name": s["context"], "conclusion": s["state"]}
            for s in statuses
            if s["state"] in ("failure", "error")
        ]
        pending = [r.name for r in runs if r.status != "completed"]
        pending += [s["context"] for s in statuses if s["state"] == "pending"]
        details.update(failed=failed, pending=pending)
        status = "failed" if failed else "pending" if pending else "passed"
        return ChecksResult(status=status, sha=sha, checks=runs, details=details)


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
