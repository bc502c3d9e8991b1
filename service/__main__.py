"""`dockyard` command line: serve · token new · demo-repo · images · audit · openapi · mcp --stdio.

A subcommand is one `_add_<name>(sub)` parser block (in `SUBCOMMANDS`) that sets `run=` to one
small function taking the parsed arguments. `--help` of each lists its options and the
environment variables it reads, derived from `Settings` (names and descriptions, never a hand
copy). An expected failure is one `dockyard: …` line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from service import __version__
from service.settings import (
    ROLES,
    TENANT_RE,
    ConfigError,
    Settings,
    TokenInfo,
    load_images_config,
    token_fingerprint,
)

if TYPE_CHECKING:
    from aiohttp import web

ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))
ENV_HEADING = "environment"
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a writer killed by SIGPIPE


class CliError(Exception):
    """An expected failure: printed as one `dockyard: …` line, exit `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- settings: the environment, and its help ------------------------------------------------------


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field}".upper()


def _settings() -> Settings:
    """The environment as Settings; a bad value is a ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as e:
        lines = []
        for err in e.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            lines.append(f"{env_name(field) if field else '(settings)'}={err.get('input')!r}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from e


def env_help(fields: Iterable[str] | None, model: type[BaseSettings] = Settings) -> str:
    """The environment variables a subcommand reads (None: every setting), from the settings class
    itself (the service's `Settings`, or `ClientSettings` for a client of a running service)."""
    names = list(model.model_fields) if fields is None else list(fields)
    width = max(len(env_name(n)) for n in names) + 2
    lines = [f"{ENV_HEADING} (also read from ./.env; prefix {ENV_PREFIX}):"]
    for name in names:
        info = model.model_fields[name]
        default = info.default
        shown = "" if default in (PydanticUndefined, None, "") else f" [default: {default}]"
        lines.append(f"  {env_name(name):<{width}}{info.description or ''}{shown}")
    return "\n".join(lines)


class _HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped as usual; the environment table (the epilog) kept as laid out."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(ENV_HEADING):
            return text
        return super()._fill_text(text, width, indent)


def _subparser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    *,
    env: Iterable[str] | None = (),
    description: str | None = None,
    env_model: type[BaseSettings] = Settings,
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with the environment it reads (`env=None`: all of it)."""
    env_list = None if env is None else list(env)
    return sub.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=env_help(env_list, env_model) if env_list is None or env_list else None,
        formatter_class=_HelpFormatter,
    )


def _out(line: str) -> None:
    print(line, flush=True)


def _note(line: str) -> None:
    print(f"dockyard: {line}", file=sys.stderr, flush=True)


# --- serve --------------------------------------------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _subparser(
        sub,
        "serve",
        "run the control service",
        env=None,
        description=(
            "Run the control service. It prints `listening on http://HOST:PORT` once it serves; "
            "SIGTERM or Ctrl-C stops accepting, lets requests in flight finish (up to "
            f"{env_name('shutdown_timeout_s')}), ends event streams and leaves every sandbox running."
        ),
    )
    p.add_argument("--host", help=f"address to listen on (overrides {env_name('host')})")
    p.add_argument(
        "--port", type=int, help=f"port to listen on, 0 for any free one (overrides {env_name('port')})"
    )
    p.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from service.app import build_app
    from service.logging import configure_logging

    settings = _settings()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging()
    tokens = settings.tokens()  # refuse to start open, before anything else
    banner = [f"  state dir  {settings.state_dir}", f"  tokens     {_tokens_loaded(settings, tokens)}"]
    app = build_app(settings)
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_run_service(app, settings, banner))
    finally:
        # As aiohttp's run_app: what is left is cancelled; no wait on worker threads.
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    _out("dockyard: stopped")
    return 0


def _tokens_loaded(settings: Settings, tokens: dict[str, TokenInfo]) -> str:
    """How many tokens of each role and from where (never a token); warns of a readable file."""
    roles = {role: sum(1 for t in tokens.values() if t.role == role) for role in ROLES}
    sources = [env_name("api_tokens")] if settings.api_tokens else []
    tokens_file = settings.tokens_file()
    if tokens_file is not None:
        sources.append(str(tokens_file))
        with contextlib.suppress(OSError):
            mode = tokens_file.stat().st_mode & 0o777
            if mode & 0o077:
                _note(
                    f"warning: the tokens file {tokens_file} is readable by others (mode {mode:o}): chmod 600"
                )
    loaded = ", ".join(f"{n} {role}" for role, n in roles.items() if n)
    return f"{loaded} (from {', '.join(sources)})"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _run_service(app: web.Application, settings: Settings, banner: list[str]) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting and let what is in flight finish."""
    from aiohttp import web

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            grace = settings.shutdown_timeout_s
            _out(f"dockyard: still shutting down (requests in flight get up to {grace:g} s)")
            return
        _out(f"dockyard: {signal.Signals(signum).name} received, shutting down…")
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout_s, keepalive_timeout=75.0
    )
    try:
        try:
            await runner.setup()  # the lifecycle's start: state dir, store, engine, reconcile
        except (OSError, sqlite3.Error) as e:
            raise CliError(f"cannot start: {e}") from e
        site = web.TCPSite(runner, settings.host, settings.port, backlog=128)
        try:
            await site.start()
        except OSError as e:
            raise CliError(
                f"cannot listen on {settings.host}:{settings.port}: {os.strerror(e.errno) if e.errno else e} "
                f"(set {env_name('port')} or --port)"
            ) from e
        host, port = runner.addresses[0][:2]
        url = _url(str(host), int(port))
        _out(f"dockyard {__version__}: listening on {url}")
        for line in [*banner, f"  API docs   {url}/docs  (contract: {url}/openapi.json)"]:
            _out(line)
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


# --- token new ----------------------------------------------------------------------------------


def _add_token(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="API tokens")
    tsub = token.add_subparsers(dest="token_cmd", required=True, metavar="{new}")
    new = _subparser(
        tsub,
        "new",
        "make a strong random token, print it once and keep it in the tokens file serve reads",
        env=("state_dir", "api_tokens_file"),
        description=(
            "Make a strong random bearer token and print it (only this once) on stdout, so "
            "`TOKEN=$(dockyard token new --role bot)` works. The entry token:role[:tenant] is appended "
            f"to --file, default {env_name('api_tokens_file')} or <state dir>/tokens, created with mode "
            "0600. serve reads that file at start."
        ),
    )
    new.add_argument("--role", required=True, choices=ROLES, help="what the token may do")
    new.add_argument("--tenant", help="the tenant whose jobs it drives (default: a tenant of its own)")
    new.add_argument("--file", type=Path, help="tokens file to append to (default: the one serve reads)")
    new.add_argument(
        "--no-file", action="store_true", help="only print it (add it to DOCKYARD_API_TOKENS yourself)"
    )
    new.set_defaults(run=_token_new)


def _append_private(path: Path, line: str) -> None:
    """Append a line to a file only its owner may read or write (created 0600, tightened if wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _token_new(args: argparse.Namespace) -> int:
    if args.tenant is not None and not TENANT_RE.match(args.tenant):
        raise CliError(
            f"--tenant {args.tenant!r}: use letters, digits, '.', '_', '-' (at most 64, starting with a "
            "letter or digit)",
            EXIT_CONFIG,
        )
    token = f"dy_{secrets.token_urlsafe(32)}"  # 256 bits; never ':' or ','
    entry = f"{token}:{args.role}" + (f":{args.tenant}" if args.tenant else "")
    tenant = args.tenant or f"{args.role}-{token_fingerprint(token)}"
    if not args.no_file:
        settings = _settings()
        path = (args.file or settings.api_tokens_file or settings.default_tokens_file).expanduser().resolve()
        try:
            _append_private(path, entry + "\n")
        except OSError as e:
            raise CliError(f"cannot write the tokens file {path}: {e.strerror or e}") from e
        where = f"appended to {path} (mode 0600)"
        if args.file is not None and path != settings.tokens_file():
            where += f"; serve reads it with {env_name('api_tokens_file')}={path}"
        else:
            where += "; serve reads it at start"
    else:
        where = f"not stored: add {entry.split(':', 1)[1]!r} after it in {env_name('api_tokens')}"
    _out(token)
    _note(f"new {args.role} token for tenant {tenant}, {where}. It is shown only this once.")
    return 0


# --- demo-repo ----------------------------------------------------------------------------------


DEMO_DEFAULT = Path(".dockyard-demo/calc.git")


def _add_demo_repo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _subparser(
        sub,
        "demo-repo",
        "make a local bare git repository with a small Python project to try jobs on",
        description=(
            "Make a bare git repository (branch main) holding a tiny Python project with a lint "
            "finding and a failing test, and print its clone URL and the "
            f"{env_name('clone_file_roots')} value serve needs to clone it."
        ),
    )
    p.add_argument("dir", nargs="?", type=Path, default=DEMO_DEFAULT, help=f"where (default: {DEMO_DEFAULT})")
    p.add_argument("--force", action="store_true", help="recreate it when it exists")
    p.set_defaults(run=_demo_repo)


def _demo_repo(args: argparse.Namespace) -> int:
    from service.demo import DemoRepoError, make_demo_repo

    try:
        repo = make_demo_repo(args.dir, force=args.force)
    except (DemoRepoError, OSError) as e:
        raise CliError(f"demo repository: {e}") from e
    _out(repo.clone_url)
    _note(
        f"{'made' if repo.created else 'kept the existing'} demo repository {repo.path} (branch main); "
        f"serve clones it with {env_name('clone_file_roots')}={repo.file_root}"
    )
    return 0


# --- images -------------------------------------------------------------------------------------

IMAGES_ENV = ("images_config", "base_image", "build_extra_ca")


def _add_images(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    images = sub.add_parser("images", help="sandbox images")
    isub = images.add_subparsers(dest="images_cmd", required=True)
    build = _subparser(isub, "build", "build images whose content hash has no image yet", env=IMAGES_ENV)
    build.add_argument("names", nargs="*", help="only these images (and their parents)")
    build.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    build.set_defaults(run=_images)
    listing = _subparser(isub, "list", "show each image's tag and whether it is built", env=IMAGES_ENV)
    listing.set_defaults(run=_images)


def _images(args: argparse.Namespace) -> int:
    import docker

    from service.images import resolve_images
    from service.sandbox.docker.images import build_images, engine_client, missing_images

    settings = _settings()
    cfg = load_images_config(settings.images_config)
    images = resolve_images(cfg, settings.images_config, settings)
    try:
        client = engine_client(timeout=600)
        if args.images_cmd == "list":
            missing = set(missing_images(client, images))
            for img in images.values():
                _out(f"{img.name:12} {img.tag:40} {'missing' if img.tag in missing else 'present'}")
            return 0
        unknown = set(args.names) - set(images)
        if unknown:
            raise CliError(f"unknown image(s): {', '.join(sorted(unknown))}; known: {', '.join(images)}", 2)
        outcome = build_images(
            client, images, extra_ca=settings.build_extra_ca, only=set(args.names) or None, force=args.force
        )
    except docker.errors.DockerException as e:
        raise CliError(
            f"the Docker engine did not answer (is it running? DOCKER_HOST?): {_first_line(e)}"
        ) from e
    _out(", ".join(f"{n}: {o}" for n, o in outcome.items()))
    return 0


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# --- audit --------------------------------------------------------------------------------------

AUDIT_ENV = ("state_dir", "audit_key_file")


def _add_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help=f"the audit log, offline on {env_name('state_dir')}")
    asub = audit.add_subparsers(dest="audit_cmd", required=True)
    verify = _subparser(
        asub, "verify", "check the hash chain; exit 1 naming the first bad seq", env=AUDIT_ENV
    )
    verify.add_argument("--no-anchors", action="store_true", help="ignore the outcome trail's anchors")
    verify.set_defaults(run=_audit)
    export = _subparser(asub, "export", "write records as JSON Lines", env=("state_dir",))
    export.add_argument("--job", help="only this job's records")
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.set_defaults(run=_audit)


def _audit(args: argparse.Namespace) -> int:
    """Offline, on the state dir (safe next to a running service: read-only)."""
    import json

    from service.audit import export_jsonl, iter_rows, open_readonly, verify_rows
    from service.trail import read_anchors

    settings = _settings()
    try:
        conn = open_readonly(settings.state_dir)
    except (FileNotFoundError, sqlite3.Error) as e:
        raise CliError(str(e), EXIT_CONFIG) from e
    try:
        if args.audit_cmd == "verify":
            anchors = {} if args.no_anchors else read_anchors(settings.state_dir / "trail")
            keys = settings.audit_keys()
            result = verify_rows(iter_rows(conn), anchors, keys)
            _out(json.dumps(result.__dict__))
            if keys is None:
                print(
                    f"note: no {env_name('audit_key_file')} given: only the hash chain was checked "
                    "(a full rewrite of the state dir would pass)",
                    file=sys.stderr,
                )
            if not result.ok:
                print(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.reason}", file=sys.stderr)
                return 1
            return 0
        if args.output in (None, "-"):
            n = export_jsonl(conn, sys.stdout, job_id=args.job)
            sys.stdout.flush()  # a closed pipe shows here, inside the handled region
        else:
            try:
                with open(args.output, "w", encoding="utf-8") as out:
                    n = export_jsonl(conn, out, job_id=args.job)
            except OSError as e:
                raise CliError(f"cannot write {args.output}: {e.strerror or e}") from e
        print(f"exported {n} record(s)", file=sys.stderr)
        return 0
    except sqlite3.Error as e:
        raise CliError(f"cannot read {settings.state_dir}: {e}", EXIT_CONFIG) from e
    finally:
        conn.close()


# --- openapi ------------------------------------------------------------------------------------


def _add_openapi(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _subparser(sub, "openapi", "print the OpenAPI document (no service, no engine needed)")
    p.add_argument("--markdown", action="store_true", help="as the API reference (docs/API.md)")
    p.set_defaults(run=_openapi)


def _openapi(args: argparse.Namespace) -> int:
    import json

    from service.api.reference import markdown
    from service.app import openapi_document

    doc = openapi_document()
    sys.stdout.write(markdown(doc) if args.markdown else json.dumps(doc, indent=2) + "\n")
    return 0


# --- mcp ----------------------------------------------------------------------------------------


def _add_mcp(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from service.settings import ClientSettings

    p = _subparser(
        sub,
        "mcp",
        "MCP for local clients: a stdio server forwarding to a running service's /mcp",
        env=None,
        env_model=ClientSettings,
    )
    p.add_argument("--stdio", action="store_true", required=True, help="serve MCP on stdin/stdout")
    p.set_defaults(run=_mcp)


def _mcp(args: argparse.Namespace) -> int:
    # A client of a running service: none of the service's own settings are read.
    from service.mcp.stdio import main as mcp_main
    from service.settings import ClientSettings

    return mcp_main(ClientSettings())


# --- the parser and the one place failures become exit codes -------------------------------------

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_serve,
    _add_token,
    _add_demo_repo,
    _add_images,
    _add_audit,
    _add_openapi,
    _add_mcp,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockyard",
        description="dockyard: a sandboxed executor service for AI code-fix agents",
        epilog=f"Every setting is an environment variable ({ENV_PREFIX}…): see `dockyard serve --help`.",
    )
    parser.add_argument("--version", action="version", version=f"dockyard {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _broken_pipe() -> int:
    # Python's recipe: point stdout at /dev/null so the interpreter's final flush stays quiet.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    _note("output closed before the end (broken pipe)")
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    from service.errors import DockyardError

    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], Any] = args.run
    try:
        return int(run(args))
    except CliError as e:
        _note(e.message)
        return e.code
    except ConfigError as e:
        _note(f"configuration error: {e}")
        return EXIT_CONFIG
    except DockyardError as e:
        _note(e.message)
        return EXIT_FAILURE
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
