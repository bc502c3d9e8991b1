"""dockyard-bot end to end: the REAL anthropic SDK against the fake Messages API (scripted turns),
the REAL dockyard service as a subprocess on real Docker (ruff in the python image), and the fake
GitHub (real bare repositories). Each run must leave a draft PR whose branch carries exactly ONE
commit on top of the base, and no job behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import docker.errors
import pytest

from bot.fixer import FixOutcome, FixRequest, make_llm, run_fix
from bot.settings import BotSettings
from tests.conftest import REPO_ROOT, Api, Service
from tests.fakes.anthropic import EDITOR, FakeAnthropic, edit, end_turn, review_fail, review_pass, tool_use
from tests.fakes.github import FakeGitHub
from tests.integration.aux_service import AuxService, github_service

pytestmark = pytest.mark.docker

CALC = '''"""Small arithmetic helpers."""


def add(a, b):
    return a + b


def divide(a, b):
    """Return a divided by b."""
    return a * b
'''
FILES: dict[str, bytes | str] = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0.1.0"\n\n[tool.ruff.lint]\nselect = ["F"]\n',
    "calc.py": CALC,
    "test_calc.py": (
        "from calc import add, divide\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_divide():\n    assert divide(6, 3) == 2\n"
    ),
    "README.md": "# calc\n\nArithmetic helpers.\n",
}
TITLE = "divide() returns the product instead of the quotient"
BODY = "Calling `divide(6, 3)` from calc.py returns 18. It should return 2."
FIX = dict(
    command="str_replace", path="/workspace/calc.py", old_str="    return a * b", new_str="    return a / b"
)


@pytest.fixture(scope="module")
def bot_service(tmp_path_factory: pytest.TempPathFactory, fake_github: FakeGitHub) -> Iterator[AuxService]:
    with github_service(tmp_path_factory.mktemp("bot-service"), fake_github) as svc:
        yield svc


@pytest.fixture
def repo(fake_gh: FakeGitHub) -> tuple[str, str]:
    name = f"calc-{time.monotonic_ns() % 10**9}"
    fake_gh.create_repo("octo", name, FILES)
    return "octo", name


def settings(svc: Service, ai: FakeAnthropic, **kw: Any) -> BotSettings:
    values: dict[str, Any] = dict(
        api_url=svc.url,
        api_token=svc.tokens["bot"],
        anthropic_api_key=ai.api_key,
        anthropic_base_url=ai.base_url,
        ci_timeout_s=30,
        max_rounds=3,
        model_retries=3,
    )
    values.update(kw)
    return BotSettings.model_validate(values)


async def fix(svc: Service, ai: FakeAnthropic, repo: tuple[str, str], **kw: Any) -> FixOutcome:
    s = settings(svc, ai, **kw)
    req = FixRequest(repo=f"{repo[0]}/{repo[1]}", ref="main", title=TITLE, body=BODY, requested_by="alice")
    return await run_fix(req, s, llm=make_llm(s), sinks=[])


def assert_one_commit_draft_pr(fake: FakeGitHub, repo: tuple[str, str], branch: str) -> str:
    """The PR is a draft from `branch`, which is ONE commit on top of main; returns that commit's calc.py."""
    owner, name = repo
    pulls = fake.pulls(owner, name)
    assert len(pulls) == 1 and pulls[0].draft and pulls[0].head == branch and pulls[0].base == "main"
    assert fake.git(owner, name, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert fake.git(owner, name, "rev-parse", f"{branch}~1").strip() == fake.head(owner, name, "main")
    return fake.git(owner, name, "show", f"{branch}:calc.py")


def assert_job_gone(svc: Service, docker_client: Any, job_id: str | None) -> None:
    assert job_id is not None
    job = Api(svc, svc.tokens["bot"]).job(job_id)
    assert job["status"] == "destroyed", job
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"dockyard-{job_id}")


class RealCI:
    """Runs the repository's tests (pytest) on every new commit of the fix branches and reports them
    as a check run, as a CI service would: in_progress at once, then completed."""

    def __init__(self, fake: FakeGitHub, repo: tuple[str, str]):
        self.fake, self.repo = fake, repo
        self.results: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> RealCI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        owner, name = self.repo
        seen = {self.fake.head(owner, name, "main")}
        while not self._stop.wait(0.05):
            for sha in set(self.fake.branches(owner, name).values()) - seen:
                seen.add(sha)
                self.fake.set_checks(owner, name, sha, [{"name": "pytest", "status": "in_progress"}])
                conclusion = self._run(sha)
                self.results.append((sha, conclusion))
                self.fake.set_checks(owner, name, sha, [{"name": "pytest", "conclusion": conclusion}])

    def _run(self, sha: str) -> str:
        owner, name = self.repo
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(
                ["git", "-C", str(self.fake.repo_path(owner, name)), "archive", sha],
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            r = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                cwd=tmp,
                capture_output=True,
                timeout=60,
            )
        return "success" if r.returncode == 0 else "failure"


# --- in-process runs -----------------------------------------------------------------------------------


async def test_lint_fails_in_round_one_and_passes_in_round_two(
    bot_service: AuxService, ai: FakeAnthropic, repo: tuple[str, str], fake_gh: FakeGitHub, docker_client: Any
) -> None:
    ai.script(
        agent=[
            edit("insert", "/workspace/calc.py", insert_line=1, insert_text="\nimport math"),
            tool_use(EDITOR, **FIX),
            end_turn("Return the quotient in divide()."),
            edit("str_replace", "calc.py", old_str="\nimport math\n", new_str=""),
            end_turn("Return the quotient in divide(); no stray import."),
        ],
        review=[review_pass()],
    )
    outcome = await fix(bot_service, ai, repo)
    assert outcome.ok and outcome.passed_all, outcome.error
    assert [r.gates[0].status for r in outcome.rounds] == ["failed", "passed"]
    lint1 = outcome.rounds[0].gates[0]
    assert lint1.data["new"][0]["code"] == "F401" and lint1.data["new"][0]["path"] == "calc.py"
    round2 = ai.user_texts()[-1]
    assert "Round 2 of 3" in round2 and "F401" in round2 and "math" in round2
    calc = assert_one_commit_draft_pr(fake_gh, repo, outcome.branch or "")
    assert calc == CALC.replace("a * b", "a / b")
    ci = outcome.rounds[1].gate("ci")
    assert ci is not None and ci.status == "skipped"  # no check runs: no_ci after the grace period
    assert_job_gone(bot_service, docker_client, outcome.job_id)


async def test_ci_fails_then_passes_with_real_tests(
    bot_service: AuxService, ai: FakeAnthropic, repo: tuple[str, str], fake_gh: FakeGitHub, docker_client: Any
) -> None:
    ai.script(
        agent=[
            edit("str_replace", "calc.py", old_str="    return a * b", new_str="    return a - b"),
            end_turn("Subtract."),
            edit("str_replace", "calc.py", old_str="    return a - b", new_str="    return a / b"),
            end_turn("Return the quotient in divide()."),
        ],
        review=[review_pass(), review_pass()],
    )
    with RealCI(fake_gh, repo) as ci:
        outcome = await fix(bot_service, ai, repo)
    assert outcome.ok and outcome.passed_all, outcome.error
    assert [c for _, c in ci.results] == ["failure", "success"]
    assert [r.gate("ci").status for r in outcome.rounds] == ["failed", "passed"]  # type: ignore[union-attr]
    assert "Failing checks: pytest (failure)" in ai.user_texts()[-1]
    calc = assert_one_commit_draft_pr(fake_gh, repo, outcome.branch or "")
    assert "return a / b" in calc
    # the CI-tested commit of round 2 IS the PR's commit
    assert fake_gh.head(*repo, outcome.branch) == ci.results[-1][0] == outcome.commit_sha
    body = fake_gh.pulls(*repo)[0].body or ""
    assert "#### Round 1" in body and "CI: ❌ failed" in body and "CI: ✅ passed" in body
    assert_job_gone(bot_service, docker_client, outcome.job_id)


async def test_tests_gate_catches_a_broken_test_and_round_two_repairs_it(
    bot_service: AuxService, ai: FakeAnthropic, repo: tuple[str, str], fake_gh: FakeGitHub, docker_client: Any
) -> None:
    ai.script(
        agent=[
            tool_use(EDITOR, **FIX),
            edit("str_replace", "calc.py", old_str="    return a + b", new_str="    return a + b + 1"),
            end_turn("Return the quotient in divide()."),
            edit("str_replace", "calc.py", old_str="    return a + b + 1", new_str="    return a + b"),
            end_turn("Return the quotient in divide(); add() untouched."),
        ],
        review=[review_pass()],
    )
    outcome = await fix(bot_service, ai, repo)
    assert outcome.ok and outcome.passed_all, outcome.error
    first = outcome.rounds[0]
    assert [(g.gate, g.status) for g in first.gates] == [("lint", "passed"), ("tests", "failed")]
    tests1 = first.gates[1]
    # test_divide failed at base_sha too: only test_add is the change's fault.
    assert [f["id"] for f in tests1.data["new"]] == ["test_calc.py::test_add"]
    assert tests1.data["old"] == []  # the fix made test_divide pass
    round2 = ai.user_texts()[-1]
    assert "tests failed: 1 new failure(s): test_calc.py::test_add" in round2 and "assert 6 == 5" in round2
    second = outcome.rounds[1].gate("tests")
    assert second is not None and second.status == "passed" and second.data["counts"]["passed"] == 2
    calc = assert_one_commit_draft_pr(fake_gh, repo, outcome.branch or "")
    assert calc == CALC.replace("a * b", "a / b")
    body = fake_gh.pulls(*repo)[0].body or ""
    assert "tests: ❌ failed — 1 new failure(s): test_calc.py::test_add" in body
    assert "tests: ✅ passed — 2 passed, 0 failed: no new failure" in body
    assert_job_gone(bot_service, docker_client, outcome.job_id)


async def test_file_cap_malformed_review_and_overloaded_model(
    bot_service: AuxService, ai: FakeAnthropic, repo: tuple[str, str], fake_gh: FakeGitHub, docker_client: Any
) -> None:
    ai.fail_next(529, times=2)  # the model API is overloaded twice, then answers
    ai.script(
        agent=[
            edit("view", "/workspace/README.md"),  # a third distinct file: over the cap of 2
            edit("create", "/workspace/NOTES.md", file_text="x\n"),  # a new file: over the cap too
            edit("view", "/workspace"),  # a folder: free
            edit("insert", "/workspace/calc.py", insert_line=0, insert_text="# Arithmetic."),
            edit("str_replace", "/workspace/calc.py", old_str="# Arithmetic.\n", new_str=""),
            tool_use(EDITOR, **FIX),
            end_turn("Return the quotient in divide()."),
            end_turn("Re-checked: the quotient is right."),
        ],
        review=[end_turn("Looks good to me!"), review_pass()],
    )
    outcome = await fix(bot_service, ai, repo, max_files=2)
    assert outcome.ok and outcome.passed_all, outcome.error
    assert [r.status for r in ai.requests[:3]] == [529, 529, 200]
    first = ai.of_kind("agent")[2].body["messages"][0]["content"][0]["text"]
    assert "calc.py — lines 1-10 of 10" in first and "test_calc.py — lines" in first  # the starting set
    results = ai.tool_results()
    for refused in results[:2]:
        assert (
            refused["is_error"]
            and "file limit reached" in refused["content"]
            and "CODE_FIX_MAX_FILES=2" in refused["content"]
        )
    assert not results[2]["is_error"] and "/workspace/calc.py" in results[2]["content"].splitlines()
    assert not results[3]["is_error"] and "     1\t# Arithmetic." in results[3]["content"]
    assert not any(r["is_error"] for r in results[4:])
    assert ai.of_kind("agent")[2].body["tools"][0]["type"] == "text_editor_20250728"
    review1 = outcome.rounds[0].gate("review")
    assert review1 is not None and review1.status == "failed" and review1.data["raw"] == "Looks good to me!"
    assert len(outcome.rounds) == 2
    assert_one_commit_draft_pr(fake_gh, repo, outcome.branch or "")
    body = fake_gh.pulls(*repo)[0].body or ""
    assert "**Files explored** (2 of at most 2): `calc.py`, `test_calc.py`" in body, body
    assert "Looks good to me!" in body
    assert_job_gone(bot_service, docker_client, outcome.job_id)


# --- the CLI ------------------------------------------------------------------------------------------


class Hook(BaseHTTPRequestHandler):
    got: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Hook.got.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    Hook.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Hook.got
    server.shutdown()


def cli_env(svc: Service, ai: FakeAnthropic, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "ANTHROPIC_", "CODE_FIX_"))}
    env.update(
        DOCKYARD_API_URL=svc.url,
        DOCKYARD_API_TOKEN=svc.tokens["bot"],
        CODE_FIX_CI_TIMEOUT="30",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "sdk")]),  # the client SDK, sdk/
        **ai.env(),
        **extra,
    )
    return env


def cli(repo: tuple[str, str], *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bot",
        "fix",
        "--repo",
        f"{repo[0]}/{repo[1]}",
        "--ref",
        "main",
        "--title",
        TITLE,
        "--body",
        BODY,
        *extra,
    ]


def bot_jobs(svc: Service) -> list[dict[str, Any]]:
    r = Api(svc, svc.tokens["bot"]).get("/v1/jobs", params={"label": "app:dockyard-bot"})
    assert r.status_code == 200
    return r.json()["jobs"]  # type: ignore[no-any-return]


def assert_its_one_job_is_deleted(svc: Service, before: set[str]) -> None:
    """The run made exactly one job (the ones in `before` were there already) and deleted it."""
    ours = [j for j in bot_jobs(svc) if j["id"] not in before]
    assert [j["status"] for j in ours] == ["destroyed"], ours


def test_cli_fixes_the_bug_with_real_ci_and_reports_to_a_webhook(
    bot_service: AuxService,
    ai: FakeAnthropic,
    repo: tuple[str, str],
    fake_gh: FakeGitHub,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, got = webhook
    ai.script(
        agent=[
            tool_use("search", pattern="def divide"),
            tool_use(EDITOR, **FIX),
            end_turn("Return the quotient in divide().\n- `a * b` became `a / b`."),
        ],
        review=[review_pass()],
    )
    before = {j["id"] for j in bot_jobs(bot_service)}
    with RealCI(fake_gh, repo):
        r = subprocess.run(
            cli(repo, "--branch", "fix/divide", "--progress-webhook", url, "--requested-by", "alice"),
            cwd=REPO_ROOT,
            env=cli_env(bot_service, ai),
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert r.returncode == 0, r.stderr[-3000:]
    pr = fake_gh.pulls(*repo)[0]
    assert r.stdout.strip().splitlines()[-1] == f"{fake_gh.web_url}/{repo[0]}/{repo[1]}/pull/{pr.number}"
    calc = assert_one_commit_draft_pr(fake_gh, repo, "fix/divide")
    assert calc == CALC.replace("a * b", "a / b")
    body = pr.body or ""
    assert pr.title == f"Fix: {TITLE}" and "Return the quotient in divide()." in body
    assert "`calc.py` (modified, +1 -1)" in body and "CI: ✅ passed — 1 check(s) passed" in body
    for step in (
        "Cloning repo",
        "Reading files",
        "Generating fix (round 1)",
        "Running lint",
        "Self-review",
        "Waiting for CI",
        "Opening draft PR",
    ):
        assert step in r.stderr, step
    titles = [p["embeds"][0]["title"] for p in got]
    assert titles[0] == "Cloning repo" and "Running lint" in titles and "Waiting for CI" in titles
    final = got[-1]["embeds"][0]
    fields = {f["name"]: f["value"] for f in final["fields"]}
    assert final["url"] == pr_url(fake_gh, repo, pr.number) and fields["Files changed"] == "calc.py"
    assert (
        fields["Rounds"] == "1/3"
        and fields["Diff"] == "1 file(s), +1 -1"
        and "CI: passed" in fields["Validation"]
    )
    assert_its_one_job_is_deleted(bot_service, before)


def pr_url(fake: FakeGitHub, repo: tuple[str, str], number: int) -> str:
    return f"{fake.web_url}/{repo[0]}/{repo[1]}/pull/{number}"


def test_cli_publishes_the_best_attempt_when_every_round_fails(
    bot_service: AuxService, ai: FakeAnthropic, repo: tuple[str, str], fake_gh: FakeGitHub
) -> None:
    ai.script(
        agent=[tool_use(EDITOR, **FIX), end_turn("Quotient."), end_turn("Still the quotient.")],
        review=[review_fail("divide(1, 0) raises ZeroDivisionError"), review_fail("still no zero check")],
    )
    before = {j["id"] for j in bot_jobs(bot_service)}
    r = subprocess.run(
        cli(repo),
        cwd=REPO_ROOT,
        env=cli_env(bot_service, ai, CODE_FIX_MAX_ROUNDS="2"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "best attempt: not every validation passed" in r.stderr
    pr = fake_gh.pulls(*repo)[0]
    assert r.stdout.strip().splitlines()[-1] == pr_url(fake_gh, repo, pr.number)
    assert_one_commit_draft_pr(fake_gh, repo, pr.head)
    body = pr.body or ""
    assert "best attempt after 2 round(s)" in body and "did not pass every validation" in body
    assert "self-review (failed: still no zero check)" in body
    assert_its_one_job_is_deleted(bot_service, before)


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped")],
    ids=["ctrl-c", "sigterm"],
)
def test_cli_ctrl_c_deletes_the_job(
    bot_service: AuxService,
    ai: FakeAnthropic,
    repo: tuple[str, str],
    fake_gh: FakeGitHub,
    sig: signal.Signals,
    code: int,
    said: str,
) -> None:
    ai.delay_s = 30.0  # the model "thinks" until the user gives up
    ai.script(agent=[end_turn("never seen")])
    before = {j["id"] for j in bot_jobs(bot_service)}
    proc = subprocess.Popen(
        cli(repo),
        cwd=REPO_ROOT,
        env=cli_env(bot_service, ai),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ai.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ai.requests, "the bot never reached the model"
        ours = [j for j in bot_jobs(bot_service) if j["id"] not in before]
        assert len(ours) == 1 and ours[0]["status"] == "ready"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(Exception):
            proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert f"{said}; the job was deleted" in err and "Traceback" not in err and out == ""
    assert Api(bot_service, bot_service.tokens["bot"]).job(ours[0]["id"])["status"] == "destroyed"
    assert fake_gh.pulls(*repo) == []
