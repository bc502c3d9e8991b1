"""`dockyard-bot`'s command line as a user meets it (`python -m bot …` subprocesses): --version,
--help listing every option and every environment variable BotSettings reads (derived, so a new
setting cannot go missing), and usage mistakes or an unreachable service as one `dockyard-bot: …`
line with a non-zero exit, never a traceback. No Docker: nothing here reaches a live service."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import _parser
from bot.fixer import FixRequest, PatchOut, run_fix
from bot.settings import BotSettings
from tests.conftest import REPO_ROOT

# `python -m bot` imports the client SDK: the checkout's sdk/, installed or not
PYTHONPATH = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "sdk")])


def bot(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "ANTHROPIC_", "CODE_FIX_"))}
    base.update(DOCKYARD_API_TOKEN="t", ANTHROPIC_API_KEY="k", PYTHONUNBUFFERED="1", PYTHONPATH=PYTHONPATH)
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv],
        cwd=REPO_ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


FIX = ("fix", "--title", "divide() multiplies", "--body", "divide(6, 3) is 18")


def one_line(r: subprocess.CompletedProcess[str], code: int, needle: str) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == "", r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert needle in last, last
    return last


def test_version() -> None:
    r = bot("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dockyard-bot ") and len(r.stdout.split()) == 2


@pytest.mark.parametrize("argv", [("--help",), ("fix", "--help"), ("serve", "--help")])
def test_help_lists_every_environment_variable(argv: tuple[str, ...]) -> None:
    r = bot(*argv)
    assert r.returncode == 0, r.stderr
    wanted = [e for e in BotSettings.env_vars() if argv[0] != "fix" or not e.serve]
    assert len(wanted) >= 15
    for e in wanted:
        assert e.name in r.stdout, e.name
    for name in (
        "ANTHROPIC_CODE_FIX_MODEL",
        "CODE_FIX_MAX_ROUNDS",
        "CODE_FIX_MAX_FILES",
        "CODE_FIX_MAX_TOKENS",
        "CODE_FIX_CI_TIMEOUT",
        "DOCKYARD_API_URL",
        "DOCKYARD_API_TOKEN",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
    ):
        assert name in r.stdout, name


def test_every_setting_has_an_environment_name_and_a_description() -> None:
    names = [e.name for e in BotSettings.env_vars()]
    assert len(names) == len(BotSettings.model_fields) == len(set(names))
    assert all(e.description for e in BotSettings.env_vars())
    # the name --help shows is the one the settings read
    s = BotSettings.model_validate(
        {e.name: "7" for e in BotSettings.env_vars() if e.name == "CODE_FIX_MAX_ROUNDS"}
    )
    assert s.max_rounds == 7


def test_fix_help_lists_every_option() -> None:
    out = bot("fix", "--help").stdout
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    fix = sub.choices["fix"]
    options = [o for action in fix._actions for o in action.option_strings]
    assert "--patch-out" in options and "--clone-url" in options and "--log-out" in options
    for option in options:
        assert option in out, option
    assert "CI is skipped" in out and "DOCKYARD_CLONE_FILE_ROOTS" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--clone-url", "file:///srv/git/x.git"), "--clone-url needs --patch-out"),
        (
            ("--repo", "octo/x", "--clone-url", "file:///srv/x.git", "--patch-out", "x.patch"),
            "not allowed with",
        ),
        (("--patch-out", "x.patch"), "one of the arguments --repo --clone-url is required"),
        (
            ("--repo", "octo/x", "--patch-out", "x.patch", "--branch", "b"),
            "--branch and --base are for a pull",
        ),
        (("--repo", "octo/x", "--log-out", "x.log"), "--log-out goes with --patch-out"),
        (("--repo", "octo/x", "--patch-out", "/nonexistent-dir/x.patch"), "no directory /nonexistent-dir"),
        (("--repo", "octo/x", "--patch-out", "/tmp"), "cannot write --patch-out /tmp: it is a directory"),
        (("--repo", "not a repo"), "repo: String should match pattern"),
        (("--clone-url", "ftp://host/x.git", "--patch-out", "x.patch"), "clone_url: String should match"),
        (("--repo", "octo/x", "--body-file", "/nonexistent/report.md"), "cannot read --body-file"),
    ],
)
def test_usage_mistakes_exit_2_without_traceback(argv: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    fix = [a for a in FIX if a not in ("--body", "divide(6, 3) is 18")] if "--body-file" in argv else FIX
    r = subprocess.run(
        [sys.executable, "-m", "bot", *fix, *argv],
        cwd=tmp_path,  # relative patch paths land here
        env={**os.environ, "PYTHONPATH": PYTHONPATH, "DOCKYARD_API_TOKEN": "t", "ANTHROPIC_API_KEY": "k"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert needle in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_missing_or_bad_configuration_is_one_line() -> None:
    one_line(
        bot(*FIX, "--repo", "octo/x", CODE_FIX_MAX_ROUNDS="zero"), 2, "configuration: CODE_FIX_MAX_ROUNDS"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = PYTHONPATH
    r = subprocess.run(
        [sys.executable, "-m", "bot", *FIX, "--repo", "octo/x"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_line(r, 2, "DOCKYARD_API_TOKEN is not set")


def test_service_unreachable_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    patch = tmp_path / "fix.patch"
    r = bot(
        *FIX, "--clone-url", "file:///srv/git/x.git", "--patch-out", str(patch),
        DOCKYARD_API_URL=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    last = one_line(r, 1, "dockyard-bot: no patch written: ")
    assert f"127.0.0.1:{port}" in last
    assert not patch.exists()


def test_fix_request_takes_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one of repo"):
        FixRequest(title="t")
    with pytest.raises(ValueError, match="exactly one of repo"):
        FixRequest(title="t", repo="o/r", clone_url="file:///x")
    req = FixRequest(title="t", clone_url="https://user:secret@git.example/o/r.git")
    assert req.source == "https://git.example/o/r.git"  # credentials never shown
    assert PatchOut.beside(Path("a/b.patch")).log == Path("a/b.patch.log")


async def test_run_fix_refuses_a_clone_url_without_patch_out() -> None:
    s = BotSettings.model_validate({"api_token": "t", "anthropic_api_key": "k"})
    with pytest.raises(ValueError, match="give patch_out"):
        await run_fix(FixRequest(title="t", clone_url="file:///x"), s)
