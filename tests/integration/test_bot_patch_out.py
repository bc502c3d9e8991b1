"""`dockyard-bot fix --clone-url URL --patch-out FILE` end to end, without GitHub: the REAL service
(the session's, no GitHub App configured) on real Docker clones a file:// repository, the REAL
anthropic SDK talks to the fake Messages API, the whole loop runs (lint → tests → self-review; CI
skipped and said so), and the patch written applies with `git apply` on a fresh clone.

Also the CLI's expected failures against the real service (token refused, clone refused, the model
API unreachable): one `dockyard-bot: …` line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Api, Service, _git
from tests.fakes.anthropic import FakeAnthropic, Reply, end_turn, review_pass, tool_use
from tests.integration.test_bot_e2e import BODY, CALC, FILES, TITLE

pytestmark = pytest.mark.docker

FIXED = CALC.replace("a * b", "a / b")


def edit(path: str, old: str, new: str) -> Any:
    """One exact edit with whichever editing tool the bot offers the model (its own
    `replace_in_file`, or Claude's `str_replace_based_edit_tool`)."""

    def reply(body: dict[str, Any]) -> Reply:
        names = {t.get("name") for t in body.get("tools", [])}
        if "replace_in_file" in names:
            return tool_use("replace_in_file", path=path, old=old, new=new)
        assert "str_replace_based_edit_tool" in names, f"no editing tool offered: {sorted(map(str, names))}"
        return tool_use(
            "str_replace_based_edit_tool", command="str_replace", path=path, old_str=old, new_str=new
        )

    return reply


@pytest.fixture
def calc_repo(tmp_path: Path) -> Path:
    """A file:// repository (under the service's DOCKYARD_CLONE_FILE_ROOTS) with the divide() bug."""
    root = tmp_path / "calc"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    for rel, data in FILES.items():
        (root / rel).write_text(data if isinstance(data, str) else data.decode())
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "calc with a bug")
    return root


def env_for(svc: Service, ai: FakeAnthropic, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCKYARD_", "ANTHROPIC_", "CODE_FIX_", "GITHUB"))
    }
    env.update(
        DOCKYARD_API_URL=svc.url,
        DOCKYARD_API_TOKEN=svc.tokens["bot"],
        PYTHONUNBUFFERED="1",
        CODE_FIX_API_RETRIES="2",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "sdk")]),  # the client SDK, sdk/
        **ai.env(),
    )
    env.update(extra)
    return env


def bot(url: str, patch: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bot", "fix", "--clone-url", url, "--ref", "main",
        "--title", TITLE, "--body", BODY, "--patch-out", str(patch), *extra,
    ]  # fmt: skip


def run(argv: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def its_jobs(svc: Service, url: str) -> list[dict[str, Any]]:
    r = Api(svc, svc.tokens["bot"]).get("/v1/jobs", params={"label": "app:dockyard-bot"})
    assert r.status_code == 200, r.text
    return [j for j in r.json()["jobs"] if j.get("clone_url") == url]


def test_patch_out_fixes_lint_then_writes_a_patch_that_applies(
    service: Service, ai: FakeAnthropic, calc_repo: Path, tmp_path: Path
) -> None:
    ai.script(
        agent=[
            # round 1: the fix, plus a stray import ruff (F401) reports as new
            edit(
                "calc.py",
                '"""Small arithmetic helpers."""\n',
                '"""Small arithmetic helpers."""\n\nimport math\n',
            ),
            edit("calc.py", "    return a * b", "    return a / b"),
            end_turn("Return the quotient in divide()."),
            # round 2: the lint feedback is acted on
            edit("calc.py", "\nimport math\n", ""),
            end_turn("Return the quotient in divide(); no stray import."),
        ],
        review=[review_pass()],
    )
    out = tmp_path / "out"
    out.mkdir()
    patch = out / "fix.patch"
    url = calc_repo.as_uri()
    r = run(bot(url, patch, "--requested-by", "alice"), env_for(service, ai))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(patch)
    # the round-2 prompt carried round 1's lint failure
    assert "F401" in ai.user_texts()[-1] and "Round 2 of 3" in ai.user_texts()[-1]

    # the patch applies on a fresh clone and IS the fix (the stray import gone)
    text = patch.read_text()
    assert text.startswith("diff --git a/calc.py b/calc.py") and "import math" not in text
    clone = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", url, str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "apply", "--check", str(patch)], check=True)
    subprocess.run(["git", "-C", str(clone), "apply", str(patch)], check=True)
    assert (clone / "calc.py").read_text() == FIXED
    assert subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True, check=True
    ).stdout.split() == ["M", "calc.py"]

    # the process log beside it: rounds, gates, verdicts, usage, and CI skipped SAID so
    log = (out / "fix.patch.log").read_text()
    assert "# dockyard-bot: a patch for" in log and "CI was skipped" in log
    assert "#### Round 1" in log and "#### Round 2" in log
    assert "lint: ❌ failed — 1 new problem(s): calc.py:3 F401" in log
    assert "tests: ✅ passed" in log and "self-review: ✅ passed" in log
    assert "CI: ⏭️ skipped — no pull request with --patch-out" in log
    assert "the patch carries round 2" in log and "**Total:**" in log and "model call(s)" in log
    assert "Writing the patch" in log  # the progress lines
    assert url in log  # where it came from (no credentials in a file:// URL)
    # ... and the terminal said it too
    assert "CI: skipped" in r.stderr and "process log: " + str(out / "fix.patch.log") in r.stderr
    assert "Patch written: " + str(patch) in r.stderr

    # no commit, no PR: the job was deleted and nothing was pushed into the repository
    assert [j["status"] for j in its_jobs(service, url)] == ["destroyed"]
    assert _git(calc_repo, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_patch_out_best_attempt_and_log_out(
    service: Service, ai: FakeAnthropic, calc_repo: Path, tmp_path: Path
) -> None:
    """A change that never passes the tests: the patch is still written (exit 0), and says it is a
    best attempt; --log-out puts the log where asked; --json carries both paths."""
    ai.script(
        agent=[edit("calc.py", "    return a + b", "    return a - b"), end_turn("Subtract in add().")],
        review=[],
    )
    patch, log = tmp_path / "p.diff", tmp_path / "logs.md"
    url = calc_repo.as_uri()
    r = run(bot(url, patch, "--log-out", str(log), "--json"), env_for(service, ai, CODE_FIX_MAX_ROUNDS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == str(patch) and '"patch_path": "' + str(patch) in lines[-2]
    assert "the patch is a best attempt: not every validation passed" in r.stderr
    text = log.read_text()
    assert "did not pass every validation" in text and "tests (failed: 1 new failure(s)" in text
    assert not (tmp_path / "p.diff.log").exists()
    assert "return a - b" in patch.read_text()


def test_patch_out_without_a_change_writes_nothing_and_fails(
    service: Service, ai: FakeAnthropic, calc_repo: Path, tmp_path: Path
) -> None:
    ai.script(agent=[end_turn("I could not find the bug."), end_turn("Still nothing.")])
    patch = tmp_path / "none.patch"
    url = calc_repo.as_uri()
    r = run(bot(url, patch), env_for(service, ai, CODE_FIX_MAX_ROUNDS="2"))
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last == "dockyard-bot: no patch written: the model made no change in 2 round(s); no patch written"
    assert not patch.exists() and not (tmp_path / "none.patch.log").exists()
    assert [j["status"] for j in its_jobs(service, url)] == ["destroyed"]


# --- expected failures: one line, no traceback ---------------------------------------------------------


def _one_line_failure(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert r.returncode == code, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and r.stdout == "", r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("dockyard-bot: "), last
    for needle in needles:
        assert needle in last, (needle, last)
    return last


def test_token_refused(service: Service, ai: FakeAnthropic, calc_repo: Path, tmp_path: Path) -> None:
    env = env_for(service, ai, DOCKYARD_API_TOKEN="not-a-token")
    r = run(bot(calc_repo.as_uri(), tmp_path / "x.patch"), env)
    _one_line_failure(r, 1, "no patch written", "401 unauthorized")
    assert ai.requests == []


def test_clone_refused(service: Service, ai: FakeAnthropic, tmp_path: Path) -> None:
    r = run(bot("file:///etc/dockyard-nowhere.git", tmp_path / "x.patch"), env_for(service, ai))
    _one_line_failure(r, 1, "no patch written", "400 clone_source_forbidden")
    assert not (tmp_path / "x.patch").exists()


def test_model_api_unreachable(service: Service, ai: FakeAnthropic, calc_repo: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(service, ai, ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}", CODE_FIX_API_RETRIES="0")
    url = calc_repo.as_uri()
    r = run(bot(url, tmp_path / "x.patch"), env)
    _one_line_failure(r, 1, "no patch written", "the model API failed", "APIConnectionError")
    assert [j["status"] for j in its_jobs(service, url)] == ["destroyed"]
