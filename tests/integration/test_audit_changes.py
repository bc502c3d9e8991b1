"""What changed, provably: tool records carry the path and the SHA-256 of what was written (and of
the file before an edit, move or delete), checked against `sha256sum` in the box; the box's own
log has one line per call; an ended job's diff is kept, in the store and in the outcome trail."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.docker


def _sha(dexec: Any, job: dict[str, Any], path: str) -> str:
    return str(dexec.ok(job, f"sha256sum '/workspace/{path}'").split()[0])


def _tool_records(auditor_api: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    recs = auditor_api.get("/v1/audit", params={"job_id": job["id"], "limit": 500}).json()["records"]
    return [r for r in recs if r["action"].startswith("tool.")]


def test_records_carry_paths_and_hashes_as_sha256sum_sees_them(api, make_job, dexec, auditor_api):
    job = make_job()
    readme_before = _sha(dexec, job, "README.md")
    api.write(job["id"], "src/new.py", "print('new')\n")
    new_sha = _sha(dexec, job, "src/new.py")
    api.tool_ok(job["id"], "replace_in_file", path="src/new.py", old="new", new="edited")
    edited_sha = _sha(dexec, job, "src/new.py")
    api.read(job["id"], "README.md")
    api.tool_ok(job["id"], "move_file", **{"from": "src/new.py", "to": "src/moved.py"})
    api.tool_ok(job["id"], "delete_file", path="README.md")

    write, replace, read, move, delete = _tool_records(auditor_api, job)[-5:]
    assert (write["action"], write["path"], write["content_sha256"], write["before_sha256"]) == (
        "tool.write_file",
        "src/new.py",
        new_sha,
        None,
    )
    assert (replace["path"], replace["before_sha256"], replace["content_sha256"]) == (
        "src/new.py",
        new_sha,
        edited_sha,
    )
    assert (read["path"], read["content_sha256"]) == ("README.md", readme_before)  # what was returned
    assert (move["path"], move["details"]["to"]) == ("src/new.py", "src/moved.py")
    assert (delete["path"], delete["before_sha256"]) == ("README.md", readme_before)
    for r in (write, replace, read, move, delete):
        assert "print(" not in json.dumps(r)  # never contents
    only = auditor_api.get("/v1/audit", params={"job_id": job["id"], "path": "README.md"}).json()["records"]
    assert [r["action"] for r in only] == ["tool.read_file", "tool.delete_file"]


def test_the_box_log_has_one_line_per_call_kept_after_the_box(api, make_job, auditor_api):
    job = make_job()
    api.write(job["id"], "a.txt", "secret words\n")
    api.read(job["id"], "a.txt")
    api.error(api.tool(job["id"], "read_file", path="nope.txt"), 404, "file_not_found")
    api.post(f"/v1/jobs/{job['id']}/lint", {"paths": ["a.txt"]})  # a plain exec in the box, noted

    def lines() -> list[str]:
        r = auditor_api.get(f"/v1/jobs/{job['id']}/logs")
        assert r.status_code == 200, r.text
        return [ln for ln in r.text.splitlines() if ln.strip()]

    live = lines()
    calls = [ln for ln in live if " op=" in ln]
    assert [c.split(" op=")[1].split()[0] for c in calls][:3] == ["write_file", "read_file", "read_file"]
    assert 'path="a.txt"' in calls[0] and "outcome=ok" in calls[0] and "ms=" in calls[0]
    assert "outcome=file_not_found" in calls[2]
    assert any("exec action=lint.files" in ln for ln in live)
    assert not any("secret words" in ln for ln in live)
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert [ln for ln in lines() if " op=" in ln][:3] == calls[:3]  # kept when the box went


def test_an_ended_jobs_diff_is_kept_and_in_the_trail(api, make_job, service):
    other = Api(service, service.tokens["bot_other"])
    job = make_job()
    api.write(job["id"], "kept.txt", "kept\n")
    live = api.get(f"/v1/jobs/{job['id']}/diff").json()
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    bot_after = api.get(f"/v1/jobs/{job['id']}/diff")
    assert bot_after.status_code == 200 and bot_after.json()["kept"] is True
    assert (
        bot_after.json()["patch"] == live["patch"]
        and bot_after.json()["patch_sha256"] == live["patch_sha256"]
    )
    api.error(other.get(f"/v1/jobs/{job['id']}/diff"), 404, "job_not_found")  # other tenants: nothing

    trail = service.state_dir / "trail"
    path = trail / "jobs" / f"{job['id']}.json"
    deadline = time.monotonic() + 15
    while not path.exists() and time.monotonic() < deadline:  # the trail is written in the background
        time.sleep(0.2)
    outcome = json.loads(path.read_text())
    doc = outcome["diff"]["document"]
    assert outcome["diff"]["patch_sha256"] == live["patch_sha256"] and outcome["diff"]["files"] == [
        "kept.txt"
    ]
    kept_doc = json.loads((trail / "diffs" / f"{doc}.json").read_text())
    assert kept_doc["patch"] == live["patch"]
    tracked = subprocess.run(["git", "-C", str(trail), "ls-files", "diffs"], capture_output=True, text=True)
    assert f"diffs/{doc}.json" in tracked.stdout  # committed with the outcome
