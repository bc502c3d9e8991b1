"""`dockyard-bot` (same as `python -m bot`): fix · serve.

    dockyard-bot fix (--repo owner/name | --clone-url URL) [--ref main] --title "…"
                     (--body "…" | --body-file F) [--patch-out FILE [--log-out FILE]]
                     [--branch …] [--base …] [--progress-webhook URL] [--requested-by NAME] [--json]
    dockyard-bot serve
    dockyard-bot --version

`fix` opens a draft PR, or with `--patch-out FILE` writes the patch (`git apply`-able) to FILE and
the process log to FILE.log (or `--log-out`) instead: no commit, no PR, CI skipped and said so; a
`--clone-url` job (file:// under the service's DOCKYARD_CLONE_FILE_ROOTS, or http(s)) needs it.
It exits 0 when the PR was opened or the patch written (also a best attempt that did not pass every
gate, which it says), 1 when nothing could be, 2 on a usage or configuration mistake, 130 when
interrupted; its last line on stdout is the PR URL or the patch path. Progress goes to stderr.
Every expected failure is one `dockyard-bot: …` line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError

from bot.settings import BotSettings

DISTRIBUTIONS = ("dockyard-bot", "dockyard")  # whichever distribution ships this package


def version() -> str:
    for dist in DISTRIBUTIONS:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown (not installed)"


def env_help(*, serve: bool | None = None) -> str:
    """The environment variables the bot reads, from `BotSettings` (`serve`: only those of serve,
    False: only those of fix, None: all)."""
    rows = [e for e in BotSettings.env_vars() if serve is None or e.serve == serve]
    width = max(len(e.name) for e in rows)
    lines = ["environment variables (also read from ./.env):"]
    for e in rows:
        text = f"{e.description} (default: {e.default})" if e.description else f"(default: {e.default})"
        wrapped = textwrap.wrap(text, 100 - width - 4) or [""]
        lines.append(f"  {e.name.ljust(width)}  {wrapped[0]}")
        lines += [f"  {' ' * width}  {more}" for more in wrapped[1:]]
    return "\n".join(lines)


FIX_EPILOG = """\
exit status: 0 the PR was opened or the patch written (also a best attempt that did not pass
every gate, which it says); 1 nothing could be; 2 a usage or configuration mistake; 130
interrupted. The last line on stdout is the PR URL, or with --patch-out the patch path.

--patch-out FILE: the whole loop (lint, tests, self-review) runs; CI is skipped (nothing is
pushed) and the log says so. FILE gets the patch (git apply on the job's base commit), FILE.log
(or --log-out) the process log: rounds, gates, verdicts, usage. No GitHub App is needed for a
--clone-url job: file:///… under the service's DOCKYARD_CLONE_FILE_ROOTS, or http(s)://…
"""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="dockyard-bot",
        description="turn a bug report into a draft PR (or a patch file) through the dockyard service",
        epilog=env_help(),
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="{fix,serve}")
    fix = sub.add_parser(
        "fix",
        help="fix one bug report: a draft pull request, or a patch file (--patch-out)",
        description="Fix one bug report: a draft pull request, or with --patch-out a patch file.",
        epilog=FIX_EPILOG + "\n" + env_help(serve=False),
        formatter_class=fmt,
    )
    source = fix.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", help="GitHub owner/name (cloned by the service with its GitHub App)")
    source.add_argument(
        "--clone-url",
        metavar="URL",
        help="any git URL the service may clone (file://, http(s)://); needs --patch-out",
    )
    fix.add_argument(
        "--ref", default=None, help="branch, tag or sha to start from (default: the default branch)"
    )
    fix.add_argument("--title", required=True, help="the bug report's title")
    body = fix.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="the bug report's text")
    body.add_argument("--body-file", type=Path, help="read the bug report's text from this file ('-': stdin)")
    fix.add_argument(
        "--patch-out",
        type=Path,
        metavar="FILE",
        help="write the final patch here instead of opening a PR (no commit, no PR, CI skipped)",
    )
    fix.add_argument(
        "--log-out", type=Path, metavar="FILE", help="with --patch-out: the process log (default: FILE.log)"
    )
    fix.add_argument("--branch", default=None, help="branch for the fix (default: dockyard-bot/<title>-<id>)")
    fix.add_argument(
        "--progress-webhook", default=None, metavar="URL", help="POST progress here (Discord-compatible)"
    )
    fix.add_argument(
        "--base", default=None, help="the PR's base branch (default: --ref if a branch, else the default)"
    )
    fix.add_argument("--requested-by", default=None, help="who asked (goes into the commit and PR)")
    fix.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout before the URL")
    sub.add_parser(
        "serve",
        help="queue fix requests over HTTP (DOCKYARD_BOT_HOST/PORT)",
        description="Queue fix requests over HTTP: POST /v1/fixes, GET /v1/fixes/{id}.",
        epilog=env_help(),
        formatter_class=fmt,
    )
    return parser


def _fail(message: str, code: int = 2) -> int:
    print(f"dockyard-bot: {message}", file=sys.stderr)
    return code


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with `fix`'s arguments beyond what argparse checks (None: nothing)."""
    if args.patch_out is None:
        if args.clone_url is not None:
            return "--clone-url needs --patch-out FILE (a pull request needs a GitHub --repo)"
        if args.log_out is not None:
            return "--log-out goes with --patch-out"
        return None
    if args.branch is not None or args.base is not None:
        return "--branch and --base are for a pull request; --patch-out opens none"
    for what, path in (("--patch-out", args.patch_out), ("--log-out", _log_path(args))):
        problem = _unwritable(path)
        if problem is not None:
            return f"cannot write {what} {path}: {problem}"
    if _log_path(args).resolve() == args.patch_out.resolve():
        return "--log-out must not be the patch file"
    return None


def _log_path(args: argparse.Namespace) -> Path:
    from bot.fixer import PatchOut

    return PatchOut.beside(args.patch_out, args.log_out).log


def _unwritable(path: Path) -> str | None:
    """Why `path` cannot be written (checked up front, before a job or a model call is spent)."""
    if path.is_dir():
        return "it is a directory"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"no directory {parent}"
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "permission denied"
    return None


def _report_text(args: argparse.Namespace) -> str:
    if args.body_file is None:
        return str(args.body)
    if str(args.body_file) == "-":
        return sys.stdin.read()
    return Path(args.body_file).read_text(encoding="utf-8")


async def _fix(args: argparse.Namespace, settings: BotSettings) -> int:
    import json

    from bot.fixer import FixRequest, PatchOut, run_fix
    from bot.progress import Sink, TerminalSink, WebhookSink

    try:
        text = _report_text(args)
    except (OSError, UnicodeDecodeError) as e:
        return _fail(f"cannot read --body-file {args.body_file}: {getattr(e, 'strerror', None) or e}")
    try:
        req = FixRequest(
            repo=args.repo,
            clone_url=args.clone_url,
            ref=args.ref,
            title=args.title,
            body=text,
            branch=args.branch,
            base=args.base,
            requested_by=args.requested_by,
            webhook=args.progress_webhook,
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        return _fail(f"{where + ': ' if where else ''}{first['msg']}")
    patch_out = PatchOut.beside(args.patch_out, args.log_out) if args.patch_out is not None else None
    sinks: list[Sink] = [TerminalSink(sys.stderr)]
    if req.webhook:
        sinks.append(WebhookSink(req.webhook))
    # Ctrl-C and SIGTERM cancel the fix from the event loop itself (not from a Python signal handler
    # running between two bytecodes, as asyncio.run's own SIGINT handler does): the cancellation
    # reaches whatever the fix awaits, which deletes the job on its way out.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    stopped_by: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        stopped_by.append(sig)
        if task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    try:
        outcome = await run_fix(req, settings, sinks=sinks, patch_out=patch_out)
    except asyncio.CancelledError:
        if not stopped_by:
            raise
        if stopped_by[0] == signal.SIGINT:
            print("dockyard-bot: interrupted; the job was deleted", file=sys.stderr)
            return 130
        print("dockyard-bot: stopped; the job was deleted", file=sys.stderr)
        return 143
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if args.json:
        print(json.dumps(outcome.to_json()), flush=True)
    if not outcome.ok:
        what = "no patch written" if patch_out is not None else "no pull request"
        print(f"dockyard-bot: {what}: {outcome.error}", file=sys.stderr)
        return 1
    if not outcome.passed_all:
        what = "the patch" if patch_out is not None else "the draft PR"
        print(f"dockyard-bot: {what} is a best attempt: not every validation passed", file=sys.stderr)
    if patch_out is not None:
        print(
            f"dockyard-bot: CI skipped (--patch-out: nothing pushed); process log: {outcome.log_path}",
            file=sys.stderr,
        )
        print(outcome.patch_path, flush=True)
    else:
        print(outcome.pr_url, flush=True)
    return 0


def _serve(settings: BotSettings) -> int:
    from aiohttp import web

    from bot.server import build_app

    app = build_app(settings)
    print(
        f"dockyard-bot serving on http://{settings.serve_host}:{settings.serve_port} "
        f"(concurrency {settings.concurrency}, dockyard at {settings.api_url})",
        file=sys.stderr,
    )
    try:
        web.run_app(app, host=settings.serve_host, port=settings.serve_port, print=None, handle_signals=True)
    except OSError as e:
        return _fail(f"cannot listen on {settings.serve_host}:{settings.serve_port}: {e.strerror or e}", 1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd == "fix":
        problem = _usage_problem(args)
        if problem is not None:
            return _fail(problem)
    try:
        settings = BotSettings()
    except ValidationError as e:
        first = e.errors()[0]
        return _fail(f"configuration: {'.'.join(map(str, first['loc']))}: {first['msg']}")
    problems = settings.problems(serve=args.cmd == "serve")
    if problems:
        return _fail("; ".join(problems))
    if args.cmd == "serve":
        return _serve(settings)
    try:
        return asyncio.run(_fix(args, settings))
    except KeyboardInterrupt:
        print("dockyard-bot: interrupted; the job was deleted", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("dockyard-bot: stopped; the job was deleted", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
