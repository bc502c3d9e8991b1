"""The bot's pure pieces: gate verdicts, review parsing, the report's names, PR body, prices."""

from __future__ import annotations

import json

import pytest
from dockyard_client.models import LintResult

from bot.explore import Candidates, identifiers, paths_in
from bot.gates import GateResult, lint_verdict, parse_review, review_verdict
from bot.report import FileStat, RoundRecord, pr_body, pr_title
from bot.settings import BotSettings
from bot.usage import Ledger, Usage, price_of
from tests.unit.test_bot_fixer import lint_result, linter_run


def lint(status: str, diags: list[tuple[str, int, str, bool]], error: str | None = None) -> LintResult:
    found = [
        {
            "path": p,
            "line": ln,
            "column": 1,
            "code": c,
            "message": f"msg {c}",
            "severity": "error",
            "new": new,
        }
        for p, ln, c, new in diags
    ]
    return lint_result(status, [linter_run(found, error=error)])


def test_lint_only_new_problems_count() -> None:
    passed = lint_verdict(lint("passed", [("a.py", 1, "F401", False)]))
    assert passed.status == "passed" and "1 old problem" in passed.summary and passed.ok
    failed = lint_verdict(lint("failed", [("a.py", 1, "F401", False), ("b.py", 3, "E711", True)]))
    assert failed.status == "failed" and not failed.ok
    assert "b.py:3:1: E711 msg E711 [ruff]" in failed.feedback and "a.py:1" not in failed.feedback
    assert failed.data["new"] == [
        {"linter": "ruff", "path": "b.py", "line": 3, "column": 1, "code": "E711", "message": "msg E711"}
    ]
    error = lint_verdict(lint("error", [], error="image not built"))
    assert error.status == "error" and error.ok and "image not built" in error.summary
    nothing = lint_verdict(lint_result("passed", [], skipped=[]))
    assert nothing.status == "skipped"


@pytest.mark.parametrize(
    "raw",
    [
        '{"verdict": "pass", "correctness": "ok", "side_effects": "none", "style": "fine", "problems": []}',
        'Here is my review:\n```json\n{"verdict": "PASS", "correctness": "ok", "side_effects": "none", '
        '"style": "fine"}\n```',
        'Sure. {"verdict": "pass", "correctness": {"fixed": true}, "side_effects": "none", '
        '"style": "fine"} Done.',
    ],
)
def test_review_json_is_found_in_common_wrappings(raw: str) -> None:
    review = parse_review(raw)
    assert review is not None and review.verdict == "pass"
    assert review_verdict(raw).status == "passed"


@pytest.mark.parametrize(
    "raw",
    [
        "LGTM!",
        '{"verdict": "maybe", "correctness": "?", "side_effects": "?", "style": "?"}',
        '{"verdict": "pass"}',
        "[1, 2]",
        '{"verdict": "pass", "correctness": "ok", ',
    ],
)
def test_unparseable_review_fails_and_keeps_the_raw_text(raw: str) -> None:
    gate = review_verdict(raw)
    assert gate.status == "failed" and gate.data["raw"] == raw and "could not be read" in gate.feedback


def test_failing_review_lists_its_problems() -> None:
    raw = json.dumps(
        {
            "verdict": "fail",
            "correctness": "half",
            "side_effects": "x",
            "style": "y",
            "problems": ["divide by zero is not handled", "no test"],
        }
    )
    gate = review_verdict(raw)
    assert gate.status == "failed" and "- divide by zero is not handled\n- no test" in gate.feedback


def test_names_and_paths_from_a_report() -> None:
    text = (
        "`parse_config()` crashes on empty files.\n"
        'Traceback:\n  File "src/app/config.py", line 12, in parse_config\n'
        "    data = tomllib.loads(raw)\n"
        "See also utils/io.py:33 and the ConfigLoader class, e.g. readFile().\n"
        "It happens since v1.2 when MAX_SIZE is 0. Expected: an empty dict."
    )
    assert paths_in(text) == ["src/app/config.py", "utils/io.py"]
    names = identifiers(text)
    assert names[0] == "parse_config"
    assert {"ConfigLoader", "readFile", "MAX_SIZE", "loads"} <= set(names)
    assert not {"Traceback", "Expected", "the", "empty"} & set(names)


def test_candidates_rank_mentioned_first_then_breadth() -> None:
    c = Candidates(mentioned=["a.py"])
    c.add_hit("foo", "b.py", 1, "foo()")
    c.add_hit("foo", "test_c.py", 1, "foo()")
    c.add_hit("bar", "test_c.py", 2, "bar()")
    c.add_hit("foo", "d.py", 1, "foo()")
    c.add_hit("foo", "d.py", 9, "foo()")
    assert c.ranked() == ["a.py", "test_c.py", "d.py", "b.py"]


def test_prices_per_model_id() -> None:
    assert price_of("claude-sonnet-5-5") == (3.0, 15.0)
    assert price_of("claude-haiku-4-5-20251001") == price_of("claude-haiku-4-5")
    assert price_of("some-other-model") is None
    u = Usage("claude-sonnet-5-5", input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=1_000_000)
    assert u.cost_usd == pytest.approx(3.0 + 1.5 + 0.3)
    assert (
        Usage("unknown-x", 10, 10).cost_usd is None and "cost unknown" in Usage("unknown-x", 1, 1).describe()
    )


def test_ledger_per_round_and_total() -> None:
    class U:
        def __init__(self, i: int, o: int) -> None:
            self.input_tokens, self.output_tokens = i, o

    ledger = Ledger("claude-sonnet-5-5")
    ledger.add(U(10, 1))
    ledger.current_round = 1
    ledger.add(U(100, 10))
    ledger.add(U(100, 10))
    ledger.current_round = 2
    ledger.add(U(1000, 100))
    assert ledger.round(1).total_tokens == 220 and ledger.round(1).calls == 2
    assert ledger.total().total_tokens == 11 + 220 + 1100


def record(n: int, gates: list[GateResult], files: bool = True) -> RoundRecord:
    r = RoundRecord(
        n, summary=f"Round {n} change.\n- detail", files_read=["a.py"], edits=["replace_in_file `a.py`"]
    )
    if files:
        r.files = [FileStat("a.py", "modified", 2, 1)]
    r.gates = gates
    r.usage = Usage("claude-sonnet-5-5", 1000, 100, calls=2)
    return r


def test_pr_body_of_a_passing_fix() -> None:
    gates = [
        GateResult("lint", "passed", "ruff: no new problems"),
        GateResult("tests", "passed", "3 passed, 0 failed: no new failure"),
        GateResult("review", "passed", "approved"),
        GateResult("ci", "skipped", "no CI is configured"),
    ]
    r = record(1, gates)
    assert r.passed and r.score == 5
    assert not record(1, [g for g in gates if g.gate != "tests"]).passed, "a round without tests is no pass"
    body = pr_body(
        title="Crash on empty config",
        requested_by="alice",
        final=r,
        rounds=[r],
        max_rounds=3,
        passed_all=True,
        files_explored=["a.py", "b.py"],
        max_files=15,
        model="claude-sonnet-5-5",
        total=Usage("claude-sonnet-5-5", 1000, 100, calls=2),
    )
    assert body.startswith("## Summary\n\nRound 1 change.")
    assert "requested by alice" in body and "✅ lint: passed" in body and "⏭️ CI: skipped" in body
    assert "✅ tests: passed" in body and "- tests: ✅ passed — 3 passed, 0 failed: no new failure" in body
    assert "- `a.py` (modified, +2 -1)" in body
    assert "<details>\n<summary>Process log</summary>" in body and body.rstrip().endswith("merges it._")
    assert "**Files explored** (2 of at most 15): `a.py`, `b.py`" in body
    assert "1,000 in / 100 out tokens, $0.0045" in body
    assert "WARNING" not in body
    assert pr_title("  a\n  b ") == "Fix: a b"


def test_pr_body_says_plainly_what_did_not_pass_and_fits_the_cap() -> None:
    r1 = record(1, [GateResult("lint", "failed", "2 new problem(s)")])
    r2 = record(
        2,
        [
            GateResult("lint", "passed", "ok"),
            GateResult("review", "failed", "no zero check", data={"raw": "x" * 100_000}),
        ],
    )
    r2.summary = "y" * 100_000
    assert r2.score == 2 and r1.score == 1 and not r2.passed
    body = pr_body(
        title="t",
        requested_by=None,
        final=r2,
        rounds=[r1, r2],
        max_rounds=2,
        passed_all=False,
        files_explored=[],
        max_files=15,
        model="m",
        total=Usage("m"),
    )
    assert "did not pass every validation" in body
    assert "self-review (failed: no zero check)" in body and "CI (not run: an earlier gate failed)" in body
    assert len(body) <= 65_536


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_CODE_FIX_MODEL", "claude-opus-5-5")
    monkeypatch.setenv("CODE_FIX_MAX_ROUNDS", "5")
    monkeypatch.setenv("CODE_FIX_MAX_FILES", "7")
    monkeypatch.setenv("CODE_FIX_CI_TIMEOUT", "60")
    monkeypatch.setenv("DOCKYARD_API_URL", "http://dy:9000/")
    monkeypatch.setenv("DOCKYARD_BOT_USERS", "alice:maintainer, bob:triager")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("DOCKYARD_API_TOKEN", raising=False)
    s = BotSettings(_env_file=None)
    assert (s.model, s.max_rounds, s.max_files, s.ci_timeout_s) == ("claude-opus-5-5", 5, 7, 60)
    assert s.api_url == "http://dy:9000" and s.user_roles() == {"alice": "maintainer", "bob": "triager"}
    assert any("DOCKYARD_API_TOKEN" in p for p in s.problems()) and any(
        "ANTHROPIC_API_KEY" in p for p in s.problems()
    )
    d = BotSettings(_env_file=None)
    monkeypatch.delenv("ANTHROPIC_CODE_FIX_MODEL")
    assert BotSettings(_env_file=None).model == "claude-sonnet-5-5"
    assert d.max_tokens > 0


def test_lint_counts_new_problems_as_the_service_does() -> None:
    """`LinterRun.new_count` (the service's count, read through the SDK's model) is the number said."""
    shown = {"path": "a.py", "line": 1, "column": 1, "code": "F401", "message": "m", "severity": "error"}
    result = lint_result("failed", [linter_run([shown | {"new": True}], new_count=3)])
    verdict = lint_verdict(result)
    assert verdict.status == "failed" and verdict.summary.startswith("3 new problem(s): a.py:1 F401")
    assert verdict.feedback.endswith("a.py:1:1: F401 m [ruff]\n... and 2 more")
