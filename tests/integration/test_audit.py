"""The audit trail against the real engine: one record per sandbox request and per exec (argv,
exit code, duration, bytes, flags — never contents, never tokens), filters and paging, roles,
the chain verified online and offline (a tampered, a removed and a truncated record are each
named by seq), JSON Lines export, container logs kept after delete, and the git outcome trail."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Api, Service
from tests.integration.aux_service import aux, wait_for

pytestmark = pytest.mark.docker


def records(auditor: Api, **params: Any) -> list[dict[str, Any]]:
    r = auditor.get("/v1/audit", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text[:500]
    return r.json()["records"]  # type: ignore[no-any-return]


def head(auditor: Api) -> int:
    """The seq of the newest record (0 when empty)."""
    after, last = 0, 0
    while True:
        body = auditor.get("/v1/audit", params={"limit": 1000, "after": after}).json()
        if body["records"]:
            last = body["records"][-1]["seq"]
        if body["next_after"] is None:
            return last
        after = body["next_after"]


def cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "audit", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DOCKYARD_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- what is recorded ------------------------------------------------------------------------------


def test_exec_records_carry_argv_and_flags_never_contents_or_tokens(api, auditor_api, make_job, service):
    job = make_job()
    secret = "CONTENT-MARKER-" + "7" * 24
    api.write(job["id"], "notes/secret.txt", secret + "\n")
    api.tool_ok(job["id"], "replace_in_file", path="notes/secret.txt", old=secret, new=secret + "-2")
    api.read(job["id"], "notes/secret.txt")
    api.tool_ok(job["id"], "search", pattern="needle", path="needles")
    got = records(auditor_api, job_id=job["id"])
    dump = json.dumps(got)
    assert secret not in dump
    for token in service.tokens.values():
        assert token not in dump
    writes = [r for r in got if r["action"] == "tool.write_file"]
    assert len(writes) == 1
    w = writes[0]
    assert w["argv"] and all(isinstance(a, str) for a in w["argv"])
    assert w["exit_code"] == 0 and w["duration_ms"] >= 0
    assert w["bytes_in"] >= len(secret) and w["bytes_out"] > 0
    assert w["details"]["timed_out"] is False and w["details"]["oom_killed"] is False
    assert w["details"]["path"] == "notes/secret.txt"
    assert w["actor"].startswith("bot-") and w["role"] == "bot" and w["container_id"] == job["container_id"]
    actions = [r["action"] for r in got]
    assert actions[:2] == ["clone", "job.create"]
    assert {"tool.replace_in_file", "tool.read_file", "tool.search"} <= set(actions)


def test_each_sandbox_request_is_exactly_one_record(api, auditor_api, admin_api, make_job):
    job = make_job()
    cases = [
        (lambda: api.tool(job["id"], "read_file", path="README.md"), "tool.read_file"),
        (lambda: api.tool(job["id"], "list_directory", path="."), "tool.list_directory"),
        (lambda: api.get(f"/v1/jobs/{job['id']}/diff"), "diff"),
        (lambda: auditor_api.get(f"/v1/jobs/{job['id']}/logs"), "job.logs"),
        (lambda: admin_api.post("/v1/config/reload", {}), "config.reload"),
        (lambda: api.delete(f"/v1/jobs/{job['id']}"), "job.delete"),
    ]
    for call, action in cases:
        before = head(auditor_api)
        r = call()
        assert r.status_code in (200, 204), r.text[:300]
        new = records(auditor_api, after=before)
        mine = [x for x in new if x["job_id"] in (job["id"], None)]
        if action == "job.delete":  # the service keeps the final diff first: its own exec, its own record
            kept, mine = mine[0], mine[1:]
            assert (kept["action"], kept["actor"], kept["role"]) == ("diff", "dockyard", "system"), kept
        assert [x["action"] for x in mine] == [action], (action, mine)
    # A refused tool call on the ended job changes nothing and is not an exec.
    before = head(auditor_api)
    api.error(api.tool(job["id"], "read_file", path="README.md"), 409, "job_not_ready")
    assert [x for x in records(auditor_api, after=before) if x["job_id"] == job["id"]] == []


def test_timeout_is_flagged_on_the_exec_record(api, auditor_api, make_job, dexec):
    job = make_job(limits={"tool_timeout_s": 1})
    dexec.ok(job, "mkfifo /workspace/fifo")
    result = api.tool_ok(job["id"], "search", pattern="x", path="fifo")
    assert result["timed_out"] is True
    [rec] = records(auditor_api, job_id=job["id"], action="tool.search")
    assert rec["outcome"] == "timed_out" and rec["details"]["timed_out"] is True


# --- reading it ------------------------------------------------------------------------------------


def test_filters_and_paging(api, auditor_api, make_job):
    job = make_job()
    for i in range(5):
        api.read(job["id"], "README.md", start_line=1 + i % 2)
    everything = records(auditor_api, job_id=job["id"])
    assert [r["seq"] for r in everything] == sorted(r["seq"] for r in everything)
    reads = records(auditor_api, job_id=job["id"], action="tool.read_file")
    assert len(reads) == 5 and all(r["action"] == "tool.read_file" for r in reads)
    assert records(auditor_api, job_id=job["id"], action="tool.*") == reads
    by_role = records(auditor_api, job_id=job["id"], actor="bot")
    by_name = records(auditor_api, job_id=job["id"], actor=reads[0]["actor"])
    assert by_role == by_name == everything
    assert records(auditor_api, job_id=job["id"], actor="auditor") == []
    since = records(auditor_api, job_id=job["id"], since=reads[2]["at"])
    assert [r["seq"] for r in since] == [r["seq"] for r in everything if r["at"] >= reads[2]["at"]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert records(auditor_api, job_id=job["id"], since=future) == []
    # Pages of two, following next_after, give the same records in the same order.
    paged, after = [], 0
    while True:
        body = auditor_api.get("/v1/audit", params={"job_id": job["id"], "limit": 2, "after": after}).json()
        assert len(body["records"]) <= 2
        paged += body["records"]
        if body["next_after"] is None:
            break
        after = body["next_after"]
    assert paged == everything
    api.error(auditor_api.get("/v1/audit", params={"limit": 0}), 400, "invalid_request")
    api.error(auditor_api.get("/v1/audit", params={"since": "yesterday"}), 400, "invalid_request")


def test_roles(api, auditor_api, admin_api, anon_api):
    for path in ("/v1/audit", "/v1/audit/verify"):
        api.error(api.get(path), 403, "forbidden")
        api.error(anon_api.get(path), 401, "unauthorized")
        assert auditor_api.get(path).status_code == 200
        assert admin_api.get(path).status_code == 200


def test_verify_on_the_live_service(api, auditor_api, make_job):
    api.read(make_job()["id"], "README.md")  # records of its own, whatever ran before it
    body = auditor_api.get("/v1/audit/verify").json()
    assert body["ok"] is True and body["first_bad_seq"] is None
    assert body["records"] == body["head_seq"] == head(auditor_api)


# --- tampering, offline and online -------------------------------------------------------------------


def test_tampered_removed_and_truncated_records_are_named(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path / "svc", fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job()
        for _ in range(3):
            api.read(job["id"], "README.md")
        assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
        trail = svc.state_dir / "trail" / "jobs" / f"{job['id']}.json"
        wait_for(trail.exists, what="the outcome trail")
        last = json.loads(trail.read_text())["audit"]["last_seq"]
        auditor = Api(svc, svc.tokens["auditor"])
        reads = records(auditor, job_id=job["id"], action="tool.read_file")
        svc.stop()

        clean = cli(svc.state_dir, "verify")
        assert clean.returncode == 0, clean.stderr
        assert json.loads(clean.stdout)["ok"] is True

        def variant(name: str, sql: str, *params: Any) -> Path:
            copy = tmp_path / name
            shutil.copytree(svc.state_dir, copy)
            with sqlite3.connect(copy / "dockyard.sqlite3") as db:
                db.execute(sql, params)
            return copy

        altered = reads[1]["seq"]
        cases = {
            "altered": (
                variant("altered", "UPDATE audit SET argv = ? WHERE seq = ?", '["cat", "/x"]', altered),
                altered,
            ),
            "rehashed": (
                variant("rehashed", "UPDATE audit SET hash = ? WHERE seq = ?", "f" * 64, altered),
                altered,
            ),
            "removed": (variant("removed", "DELETE FROM audit WHERE seq = ?", altered), altered),
            # Removing the tail leaves a valid, shorter chain: the trail's anchor catches it.
            "truncated": (variant("truncated", "DELETE FROM audit WHERE seq >= ?", last), last),
        }
        for name, (state, seq) in cases.items():
            r = cli(state, "verify")
            assert r.returncode == 1, (name, r.stdout, r.stderr)
            assert json.loads(r.stdout)["first_bad_seq"] == seq, (name, r.stdout)
            assert f"seq {seq}" in r.stderr, (name, r.stderr)

        # Online: the same tamper on the service's own state dir.
        with sqlite3.connect(svc.state_dir / "dockyard.sqlite3") as db:
            db.execute("UPDATE audit SET exit_code = 99 WHERE seq = ?", (altered,))
        svc.start()
        body = auditor.get("/v1/audit/verify").json()
        assert body["ok"] is False and body["first_bad_seq"] == altered and body["records"] == altered - 1


def test_export_writes_one_jobs_records_as_json_lines(api, auditor_api, make_job, service, tmp_path):
    job = make_job()
    api.read(job["id"], "README.md")
    out = tmp_path / "job.jsonl"
    r = cli(service.state_dir, "export", "--job", job["id"], "-o", str(out))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == records(auditor_api, job_id=job["id"])
    assert {x["job_id"] for x in lines} == {job["id"]}
    stdout = cli(service.state_dir, "export", "--job", job["id"])
    assert [json.loads(x) for x in stdout.stdout.splitlines()] == lines


# --- the container's log ---------------------------------------------------------------------------


def test_container_log_is_kept_after_delete(api, auditor_api, make_job, docker_client):
    job = make_job()
    log_path = Path(docker_client.api.inspect_container(job["container_id"])["LogPath"])
    try:
        with log_path.open("a") as fh:  # what the box's PID 1 would have printed (json-file driver)
            fh.write(
                json.dumps({"log": "box says hello\n", "stream": "stdout", "time": "2026-01-01T00:00:00Z"})
            )
            fh.write("\n")
    except OSError as e:
        pytest.skip(f"cannot write the engine's log file here: {e}")
    assert "box says hello" in auditor_api.get(f"/v1/jobs/{job['id']}/logs").text
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    r = auditor_api.get(f"/v1/jobs/{job['id']}/logs")
    assert r.status_code == 200 and "box says hello" in r.text
    api.error(api.get(f"/v1/jobs/{job['id']}/logs"), 403, "forbidden")


# --- the outcome trail -----------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def committed(repo: Path, rel: str) -> bool:
    r = subprocess.run(
        ["git", "-C", str(repo), "log", "--oneline", "--", rel], capture_output=True, text=True
    )
    return r.returncode == 0 and bool(r.stdout.strip())


def test_outcome_is_committed_once_and_survives_a_restart(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        auditor = Api(svc, svc.tokens["auditor"])
        job = make_job(labels={"bug": "BUG-7"})
        api.write(job["id"], "fix.txt", "fixed\n")
        assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
        repo = svc.state_dir / "trail"
        rel = f"jobs/{job['id']}.json"
        wait_for(lambda: committed(repo, rel), what="the trail commit")
        body = json.loads(git(repo, "show", f"HEAD:{rel}"))
        assert body["job"]["id"] == job["id"] and body["job"]["status"] == "destroyed"
        assert body["job"]["base_sha"] == fixture_repo.sha and body["job"]["labels"] == {"bug": "BUG-7"}
        assert body["ended"]["how"] == "deleted" and body["execs"]["by_action"] == {"tool.write_file": 1, "diff": 1}
        mine = records(auditor, job_id=job["id"])
        assert body["audit"]["first_seq"] == mine[0]["seq"]
        assert body["audit"]["last_seq"] == mine[-1]["seq"] and mine[-1]["action"] == "job.delete"
        assert body["audit"]["head_hash"] == mine[-1]["hash"]
        commits = git(repo, "rev-list", "--count", "HEAD")

        # A second delete, a read of its log (audited after the end), a restart: no new commit.
        assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
        auditor.get(f"/v1/jobs/{job['id']}/logs")
        svc.restart()
        svc.stop()
        assert git(repo, "rev-list", "--count", "HEAD") == commits
        assert git(repo, "status", "--porcelain").strip() == ""

        # A crash after the state change but before the trail write: the next start writes it.
        svc.start()
        other = make_job()
        svc.stop()
        with sqlite3.connect(svc.state_dir / "dockyard.sqlite3") as db:
            db.execute("UPDATE jobs SET status = 'failed', error = 'x' WHERE id = ?", (other["id"],))
        svc.start()
        rel2 = f"jobs/{other['id']}.json"
        wait_for(lambda: committed(repo, rel2), what="the backfilled outcome")
        assert json.loads(git(repo, "show", f"HEAD:{rel2}"))["job"]["status"] == "failed"


def test_session_service_keeps_a_trail_too(api, make_job, service: Service):
    job = make_job()
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    path = service.state_dir / "trail" / "jobs" / f"{job['id']}.json"
    wait_for(path.exists, what="the outcome file")
    assert json.loads(path.read_text())["job"]["status"] == "destroyed"
