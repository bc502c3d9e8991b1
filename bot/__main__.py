"""`dockyard-bot` (same as `python -m bot`): fix · serve.

    dockyard-bot fix --repo owner/name [--ref main] --title "…" (--body "…" | --body-file F)
                     [--branch …] [--progress-webhook URL] [--requested-by NAME]
    dockyard-bot serve

`fix` exits 0 when a draft PR was opened (also a best attempt that did not pass every gate, which
it says), 1 when none could be, 2 on a usage or configuration mistake, 130 when interrupted; its
last line on stdout is the PR URL. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from bot.settings import BotSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard-bot", description="turn a bug report into a draft PR")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fix = sub.add_parser("fix", help="fix one bug report and open a draft pull request")
    fix.add_argument("--repo", required=True, help="GitHub owner/name")
    fix.add_argument(
        "--ref", default=None, help="branch, tag or sha to start from (default: the default branch)"
    )
    fix.add_argument("--title", required=True, help="the bug report's title")
    body = fix.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="the bug report's text")
    body.add_argument("--body-file", type=Path, help="read the bug report's text from this file ('-': stdin)")
    fix.add_argument("--branch", default=None, help="branch for the fix (default: dockyard-bot/<title>-<id>)")
    fix.add_argument(
        "--progress-webhook", default=None, metavar="URL", help="POST progress here (Discord-compatible)"
    )
    fix.add_argument(
        "--base", default=None, help="the PR's base branch (default: --ref if a branch, else the default)"
    )
    fix.add_argument("--requested-by", default=None, help="who asked (goes into the commit and PR)")
    fix.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout before the URL")
    sub.add_parser("serve", help="queue fix requests over HTTP (DOCKYARD_BOT_HOST/PORT)")
    return parser


def _fail(message: str, code: int = 2) -> int:
    print(f"dockyard-bot: {message}", file=sys.stderr)
    return code


async def _fix(args: argparse.Namespace, settings: BotSettings) -> int:
    import json

    from bot.fixer import FixRequest, run_fix
    from bot.progress import Sink, TerminalSink, WebhookSink

    if args.body_file is not None:
        text = sys.stdin.read() if str(args.body_file) == "-" else args.body_file.read_text()
    else:
        text = args.body
    try:
        req = FixRequest(
            repo=args.repo,
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
        return _fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    sinks: list[Sink] = [TerminalSink(sys.stderr)]
    if req.webhook:
        sinks.append(WebhookSink(req.webhook))
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    outcome = await run_fix(req, settings, sinks=sinks)
    if args.json:
        print(json.dumps(outcome.to_json()), flush=True)
    if not outcome.ok:
        print(f"dockyard-bot: no pull request: {outcome.error}", file=sys.stderr)
        return 1
    if not outcome.passed_all:
        print("dockyard-bot: the draft PR is a best attempt: not every validation passed", file=sys.stderr)
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
    web.run_app(app, host=settings.serve_host, port=settings.serve_port, print=None, handle_signals=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
