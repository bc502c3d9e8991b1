"""The persistent channel as callers see it: many concurrent calls on one job's helper, a call that
hangs while others complete, a helper killed mid-call, every call one audit record."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytestmark = pytest.mark.docker

KILL_HELPER = (
    "for p in /proc/[0-9]*; do "
    "tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^dockyard-tool serve' && kill -9 ${p#/proc/}; "
    "done; true"
)


def _helper_pids(dexec: Any, job: dict[str, Any]) -> set[str]:
    out = dexec.ok(
        job,
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^dockyard-tool serve' "
        "&& echo ${p#/proc/}; done; true",
    )
    return set(out.split())


def test_concurrent_calls_share_one_helper_and_each_gets_its_own_answer(api, make_job, dexec):
    job = make_job()
    names = [f"c/{i}.txt" for i in range(40)]

    def roundtrip(name: str) -> str:
        api.write(job["id"], name, f"content of {name}\n")
        return str(api.read(job["id"], name)["content"])

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(roundtrip, names))
    assert got == [f"content of {n}\n" for n in names]
    assert len(_helper_pids(dexec, job)) == 1  # one long-lived helper served them all


def test_a_hung_call_times_out_as_a_result_while_other_calls_complete(api, make_job, dexec):
    job = make_job(limits={"tool_timeout_s": 3})
    dexec.ok(job, "mkfifo /workspace/pipe")  # ripgrep blocks opening a FIFO nobody writes

    with ThreadPoolExecutor(2) as pool:
        hung = pool.submit(api.tool_ok, job["id"], "search", pattern="x", path="pipe")
        time.sleep(0.3)
        t0 = time.monotonic()
        quick = api.read(job["id"], "README.md")
        quick_s = time.monotonic() - t0
        answer = hung.result(timeout=30)
    assert quick["content"].startswith("# fixture") and quick_s < 2.5  # not behind the hung call
    assert answer["timed_out"] is True and answer["matches"] == []
    assert api.read(job["id"], "README.md")["total_lines"] > 0  # the job and its helper live on
    left = dexec.ok(job, "cat /proc/[0-9]*/comm 2>/dev/null | grep -x rg || true")
    assert not left.strip()  # the hung ripgrep was killed in the box, not left running


def test_a_killed_helper_is_replaced_and_the_job_stays_ready(api, make_job, dexec, auditor_api):
    job = make_job()
    api.write(job["id"], "before.txt", "1\n")
    first = _helper_pids(dexec, job)
    dexec.ok(job, KILL_HELPER)
    assert api.read(job["id"], "before.txt")["content"] == "1\n"  # a read is retried on the new helper
    second = _helper_pids(dexec, job)
    assert len(second) == 1 and second != first
    assert api.job(job["id"])["status"] == "ready"
    records = auditor_api.get("/v1/audit", params={"job_id": job["id"], "action": "tool.read_file"}).json()
    assert [r["path"] for r in records["records"]] == ["before.txt"]  # the retry is one record


def test_every_call_is_one_audit_record_with_its_sizes_and_hashes(api, make_job, auditor_api):
    import hashlib

    job = make_job()
    api.write(job["id"], "a.txt", "hello\n")
    api.read(job["id"], "a.txt")
    api.error(api.tool(job["id"], "read_file", path="missing.txt"), 404, "file_not_found")
    recs = auditor_api.get("/v1/audit", params={"job_id": job["id"]}).json()["records"]
    tools = [r for r in recs if r["action"].startswith("tool.")]
    assert [(r["action"], r["outcome"]) for r in tools] == [
        ("tool.write_file", "ok"),
        ("tool.read_file", "ok"),
        ("tool.read_file", "file_not_found"),
    ]
    write, read, _ = tools
    assert write["argv"] == ["dockyard-tool", "write_file", "a.txt"] and write["bytes_in"] > 6
    assert read["bytes_out"] > 6 and read["duration_ms"] is not None  # whole frames
    digest = hashlib.sha256(b"hello\n").hexdigest()
    for r in (write, read):
        assert r["content_sha256"] == digest and r["path"] == "a.txt"
    assert write["before_sha256"] is None  # a new file
