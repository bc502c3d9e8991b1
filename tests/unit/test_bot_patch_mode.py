"""`--patch-out` in the whole loop, against the in-memory control API and the fake model: the best
round's diff is written as the patch and the process log beside it; nothing is committed, no checks
are asked for, and CI is recorded as skipped (and said so)."""

from __future__ import annotations

from pathlib import Path

from bot.fixer import CI_SKIPPED, FixRequest, PatchOut, make_llm, run_fix
from tests.fakes.anthropic import EDITOR, FakeAnthropic, end_turn, review_pass, tool_use
from tests.unit.test_bot_fixer import (
    CALC,
    FILES,
    FIX,
    REPORT,
    Collect,
    MemoryDockyard,
    round_one_is_best,
    settings,
)
from tests.unit.test_bot_server import REQ, Runner, bot_server, post  # noqa: F401 (bot_server: a fixture)


async def test_patch_mode_writes_the_diff_and_never_commits(ai: FakeAnthropic, tmp_path: Path) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    out = PatchOut.beside(tmp_path / "fix.patch")
    s = settings(ai)
    sink = Collect()
    outcome = await run_fix(REPORT, s, client=mem, llm=make_llm(s), sinks=[sink], patch_out=out)
    assert outcome.ok and outcome.passed_all, outcome.error
    assert outcome.patch_path == str(out.patch) and outcome.log_path == str(out.log)
    assert outcome.pr_url is None and mem.commits == [] and mem.pulls == []
    assert not any(c.startswith(("commit", "checks")) for c in mem.calls), mem.calls
    ci = outcome.rounds[0].gate("ci")
    assert ci is not None and ci.status == "skipped" and ci.summary == CI_SKIPPED
    patch = out.patch.read_text()
    assert "-    return a * b" in patch and "+    return a / b" in patch
    log = out.log.read_text()
    assert "CI: ⏭️ skipped" in log and "Validation:** ✅ lint: passed" in log
    assert f"Patch written: {out.patch}" in sink.texts()
    assert mem.deleted  # the job is gone
    assert outcome.to_json()["patch_path"] == str(out.patch)


async def test_patch_mode_writes_the_restored_best_round(
    ai: FakeAnthropic, tmp_path: Path, monkeypatch
) -> None:
    import tests.unit.test_bot_fixer as tbf

    out = PatchOut.beside(tmp_path / "best.patch")
    original = tbf.run_fix

    async def with_patch_out(*a, **kw):  # type: ignore[no-untyped-def]
        return await original(*a, patch_out=out, **kw)

    monkeypatch.setattr(tbf, "run_fix", with_patch_out)
    mem = MemoryDockyard(FILES)
    outcome, _ = await round_one_is_best(ai, mem)
    assert outcome.ok and not outcome.passed_all and outcome.final_round == 1, outcome.error
    assert mem.work["calc.py"] == CALC.replace("a * b", "a / b")  # round 1 put back before the diff
    patch = out.patch.read_text()
    assert "+    return a / b" in patch and "/ /" not in patch
    log = out.log.read_text()
    assert "the patch carries round 1" in log and "before applying it" in log


async def test_an_unwritable_patch_is_a_failed_fix_not_a_crash(ai: FakeAnthropic, tmp_path: Path) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    out = PatchOut.beside(tmp_path / "gone" / "fix.patch")  # the folder vanished meanwhile
    s = settings(ai)
    req = FixRequest(title=REPORT.title, body=REPORT.body, clone_url="file:///srv/git/calc.git")
    outcome = await run_fix(req, s, client=mem, llm=make_llm(s), sinks=[], patch_out=out)
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.startswith(f"could not write {out.patch}: No such file or directory")
    assert mem.deleted


async def test_serve_refuses_a_clone_url_and_points_at_patch_out(bot_server: tuple[str, Runner]) -> None:  # noqa: F811
    url, runner = bot_server
    body = {k: v for k, v in REQ.items() if k != "repo"} | {"clone_url": "file:///srv/git/calc.git"}
    status, answer = await post(url, body)
    assert status == 400 and answer["error"]["code"] == "invalid_request"
    assert "--patch-out" in answer["error"]["message"] and runner.seen == []
    status, answer = await post(url, {**REQ, "clone_url": "file:///srv/git/calc.git"})
    assert status == 400 and "exactly one of repo" in answer["error"]["message"]


async def test_a_log_that_cannot_be_written_takes_the_patch_back(ai: FakeAnthropic, tmp_path: Path) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    out = PatchOut(tmp_path / "fix.patch", tmp_path / "gone" / "fix.log")
    s = settings(ai)
    outcome = await run_fix(REPORT, s, client=mem, llm=make_llm(s), sinks=[], patch_out=out)
    assert not outcome.ok and outcome.error is not None and str(out.log) in outcome.error
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240 (a test) -- both or neither
