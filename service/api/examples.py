"""One example per wire model, as it goes on the wire (JSON, by alias): `/openapi.json` and
docs/API.md show them; tests/unit/test_openapi_docs.py validates each with its own model, and
fails for a request body or a 2xx answer of the document that has none."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service import events, models

SHA = "3f6c1a9e0b2d4c8e7f5a6b1c2d3e4f5a6b7c8d9e"
NEW_SHA = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c"
AT = "2026-11-02T10:15:30Z"
JOB_ID = "job_5b0e9a2c7d4f"
_LIMITS = {
    "memory_mb": 1024,
    "cpus": 1.0,
    "pids": 256,
    "disk_mb": 2048,
    "tool_timeout_s": 30,
    "lint_timeout_s": 120,
    "output_cap_kb": 256,
    "clamped": {},
}
_JOB: dict[str, Any] = {
    "id": JOB_ID,
    "status": "ready",
    "tenant": "team-a",
    "repo": None,
    "clone_url": "file:///srv/git/hello.git",
    "ref": "main",
    "base_sha": SHA,
    "language": "python",
    "image": "dockyard/python:7c1e0f2a9b3d",
    "container_id": "4be1f0c29d7a6e3b5c8d9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c",
    "limits": _LIMITS,
    "labels": {"issue": "42"},
    "created_at": AT,
    "expires_at": "2026-11-02T11:15:30Z",
    "error": None,
    "commits": [],
    "env": {
        "status": "ready",
        "key": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ecosystem": "python",
        "reason": None,
        "refused": [],
        "duration_ms": 8120,
        "size_mb": 41.5,
    },
}
_PATCH = (
    "diff --git a/src/app.py b/src/app.py\n--- a/src/app.py\n+++ b/src/app.py\n"
    "@@ -1,2 +1,2 @@\n def inc(x):\n-    return x + 2\n+    return x + 1\n"
)
_LINTER = {
    "name": "ruff",
    "language": "python",
    "rule": "pyproject.toml [tool.ruff]",
    "image": "dockyard/python:7c1e0f2a9b3d",
    "command": ["ruff", "check", "--output-format=json", "src/app.py"],
    "files": 1,
    "exit_code": 1,
    "duration_ms": 412,
    "timed_out": False,
    "oom_killed": False,
    "diagnostics": [
        {
            "path": "src/app.py",
            "line": 3,
            "column": 8,
            "code": "F401",
            "message": "`os` imported but unused",
            "severity": "error",
            "new": True,
        }
    ],
    "new_count": 1,
    "base_checked": True,
    "output": "",
    "output_truncated": False,
    "error": None,
    "tool_source": "image",
    "version": "0.8.4",
}
_AUDIT_RECORD = {
    "seq": 1041,
    "at": AT,
    "actor": "bot-1a2b3c4d5e6f",
    "role": "bot",
    "job_id": JOB_ID,
    "action": "tool.read_file",
    "container_id": _JOB["container_id"],
    "argv": None,
    "exit_code": 0,
    "duration_ms": 14,
    "bytes_in": 52,
    "bytes_out": 311,
    "outcome": "ok",
    "details": {"path": "src/app.py"},
    "prev_hash": "a" * 64,
    "hash": "b" * 64,
    "tenant": "team-a",
    "key_id": "k2026",
    "mac": "c" * 64,
    "path": "src/app.py",
    "content_sha256": "d" * 64,
    "before_sha256": None,
}

EXAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    # --- jobs
    models.JobCreate: {
        "clone_url": "file:///srv/git/hello.git",
        "ref": "main",
        "language": "python",
        "limits": {"memory_mb": 2048, "tool_timeout_s": 60},
        "ttl_s": 3600,
        "labels": {"issue": "42"},
    },
    models.Job: _JOB,
    models.JobList: {"jobs": [_JOB]},
    models.JobEvent: {
        "seq": 7,
        "at": AT,
        "job_id": JOB_ID,
        "type": "job.ready",
        "data": {"status": "ready", "base_sha": SHA},
    },
    # --- tools
    models.EditorRequest: {
        "command": "str_replace",
        "path": "/workspace/src/app.py",
        "old_str": "return a - b",
        "new_str": "return a + b",
    },
    models.EditorResult: {
        "content": "The file /workspace/src/app.py has been edited. Here's the result of running "
        "`cat -n` on a snippet of /workspace/src/app.py:\n     1\tdef add(a, b):\n     2\t    return a + b\n",
        "is_error": False,
    },
    models.ReadFileRequest: {"path": "src/app.py", "start_line": 1, "end_line": 2, "numbered": True},
    models.ReadFileResult: {
        "path": "src/app.py",
        "content": "     1\tdef inc(x):\n     2\t    return x + 2\n",
        "start_line": 1,
        "end_line": 2,
        "total_lines": 2,
        "size_bytes": 33,
        "truncated": False,
        "timed_out": False,
        "oom_killed": False,
    },
    models.WriteFileRequest: {
        "path": "src/util.py",
        "content": "def dec(x):\n    return x - 1\n",
        "executable": None,
    },
    models.WriteFileResult: {
        "path": "src/util.py",
        "bytes_written": 30,
        "created": True,
        "mode": "100644",
        "ignored": False,
        "timed_out": False,
        "oom_killed": False,
    },
    models.ReplaceInFileRequest: {"path": "src/app.py", "old": "return x + 2", "new": "return x + 1"},
    models.ReplaceInFileResult: {
        "path": "src/app.py",
        "replacements": 1,
        "snippet": "     1\tdef inc(x):\n     2\t    return x + 1\n",
        "timed_out": False,
        "oom_killed": False,
    },
    models.DeleteFileRequest: {"path": "src/old.py"},
    models.DeleteFileResult: {"path": "src/old.py", "deleted": True, "timed_out": False, "oom_killed": False},
    models.MoveFileRequest: {"from": "scripts/run.sh", "to": "bin/run.sh", "overwrite": False},
    models.MoveFileResult: {
        "from": "scripts/run.sh",
        "to": "bin/run.sh",
        "mode": "100755",
        "ignored": False,
        "timed_out": False,
        "oom_killed": False,
    },
    models.ListDirectoryRequest: {"path": "src", "depth": 1},
    models.ListDirectoryResult: {
        "path": "src",
        "entries": [
            {"path": "src/app.py", "type": "file", "size": 33},
            {"path": "src/pkg", "type": "dir", "size": 0},
        ],
        "truncated": False,
        "timed_out": False,
        "oom_killed": False,
    },
    models.SearchRequest: {"pattern": "def inc", "path": ".", "glob": "*.py", "fixed_string": True},
    models.SearchResult: {
        "matches": [{"path": "src/app.py", "line": 1, "column": 1, "text": "def inc(x):"}],
        "truncated": False,
        "files_searched": 12,
        "timed_out": False,
        "oom_killed": False,
    },
    # --- diff & commit
    models.DiffResult: {
        "base_sha": SHA,
        "files": [
            {
                "path": "src/app.py",
                "status": "modified",
                "mode": "100644",
                "old_mode": None,
                "binary": False,
                "additions": 1,
                "deletions": 1,
            }
        ],
        "patch": _PATCH,
        "patch_truncated": False,
        "stats": {"files": 1, "additions": 1, "deletions": 1},
        "patch_sha256": "5f2b9c1d0e3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c",
        "kept": False,
        "timed_out": False,
        "oom_killed": False,
    },
    models.CommitRequest: {
        "branch": "dockyard/fix-inc",
        "message": "Fix inc: add one, not two",
        "pull_request": {"title": "Fix inc", "body": "inc(1) returned 3.", "draft": True},
    },
    models.CommitResult: {
        "commit_sha": NEW_SHA,
        "branch": "dockyard/fix-inc",
        "files_changed": 1,
        "pull_request": {"number": 17, "url": "https://github.com/acme/hello/pull/17"},
    },
    models.ChecksResult: {
        "status": "passed",
        "sha": NEW_SHA,
        "checks": [{"name": "ci / test", "status": "completed", "conclusion": "success"}],
        "details": {},
    },
    # --- lint, tests
    models.LintRequest: {"paths": ["src/app.py"], "linters": ["ruff"], "all_files": False},
    models.LintResult: {
        "status": "failed",
        "linters": [_LINTER],
        "skipped": [{"name": "mypy", "language": "python", "reason": "no [tool.mypy] and not a default"}],
        "clamped": {},
    },
    models.TestRequest: {"paths": ["tests/test_app.py"], "timeout_s": 300},
    models.TestResult: {
        "status": "failed",
        "language": "python",
        "command": ["python", "-m", "pytest", "-q", "tests/test_app.py"],
        "rule": "pyproject.toml [tool.pytest.ini_options]",
        "image": "dockyard/python:7c1e0f2a9b3d",
        "tool_source": "image+env",
        "env": "ready",
        "exit_code": 1,
        "duration_ms": 2310,
        "timed_out": False,
        "oom_killed": False,
        "counts": {"passed": 11, "failed": 1, "skipped": 0, "errors": 0},
        "failures": [
            {
                "id": "tests/test_app.py::test_inc",
                "message": "assert 3 == 2",
                "path": "tests/test_app.py",
                "line": 4,
                "new": True,
                "flaky": False,
            }
        ],
        "output": "1 failed, 11 passed in 0.41s\n",
        "output_truncated": False,
        "skipped_reason": None,
        "base_checked": True,
        "limits": {"timeout_s": 300, "memory_mb": 1024, "cpus": 1.0, "pids": 256, "tmp_mb": 64},
        "clamped": [],
        "error": None,
    },
    # --- audit
    models.AuditList: {"records": [_AUDIT_RECORD], "next_after": 1041},
    models.AuditVerifyResult: {
        "ok": True,
        "records": 1041,
        "first_bad_seq": None,
        "reason": None,
        "head_seq": 1041,
        "head_hash": "b" * 64,
        "keyed": True,
    },
    # --- service, config
    models.Health: {
        "status": "ok",
        "checks": {"docker": "ok", "config": "ok", "missing_images": [], "audit": "keyed"},
    },
    models.ImagesResult: {
        "images": [{"name": "python", "tag": "dockyard/python:7c1e0f2a9b3d", "present": True}],
        "languages": [
            {
                "name": "python",
                "image": "dockyard/python:7c1e0f2a9b3d",
                "detect": ["pyproject.toml", "setup.py", "*.py"],
                "linters": [
                    {
                        "name": "ruff",
                        "image": "dockyard/python:7c1e0f2a9b3d",
                        "command": ["ruff", "check", "--output-format=json"],
                        "parser": "ruff",
                        "files": ["*.py"],
                        "enabled_by": ["pyproject.toml [tool.ruff]", "ruff.toml"],
                        "default": True,
                        "timeout_s": 120,
                        "runtime": None,
                    }
                ],
            }
        ],
        "default_language": "generic",
        "limits": {"defaults": {"memory_mb": 1024}, "maxima": {"memory_mb": 8192}},
    },
    models.ConfigView: {
        "images_config": "/opt/dockyard/sandbox-images/images.toml",
        "config": {"default_language": "generic"},
        "images": {"python": "dockyard/python:7c1e0f2a9b3d"},
        "settings": {"port": 8080, "max_live_jobs": 20},
    },
    # --- the event stream's data, per event (service.events.EVENTS)
    events.JobCreating: {"status": "creating"},
    events.JobCloning: {"repo": "file:///srv/git/hello.git", "ref": "main"},
    events.JobStarting: {"image": "dockyard/python:7c1e0f2a9b3d", "base_sha": SHA},
    events.JobReady: {"status": "ready", "base_sha": SHA},
    events.JobFailed: {"status": "failed", "error": "clone failed: ref main not found"},
    events.JobDestroyed: {"status": "destroyed", "reaped": False},
    events.ToolExec: {"action": "tool.read_file", "outcome": "ok", "duration_ms": 14, "path": "src/app.py"},
    events.LintEnded: {"status": "failed", "linters": ["ruff"], "new": 1},
    events.TestsEnded: {
        "status": "failed",
        "rule": "pyproject.toml [tool.pytest.ini_options]",
        "counts": {"passed": 11, "failed": 1, "skipped": 0, "errors": 0},
        "new": 1,
    },
    events.Committed: {"sha": NEW_SHA, "branch": "dockyard/fix-inc"},
    events.ReplayTruncated: {"after_seq": 0, "first_seq": 412, "replay_max": 1000},
}


def example_of(model: type[BaseModel]) -> dict[str, Any] | None:
    return EXAMPLES.get(model)
