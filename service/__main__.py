"""`dockyard` command line: serve · images build · images list · audit verify · audit export · openapi."""

from __future__ import annotations

import argparse
import sys

from service.settings import ConfigError, Settings, load_images_config


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from service.app import build_app
    from service.logging import configure_logging

    configure_logging()
    settings.tokens()  # refuse to start open, before binding the port
    app = build_app(settings)
    # SIGTERM: stop accepting, let in-flight requests finish (up to the timeout), leave sandboxes running.
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        handle_signals=True,
        shutdown_timeout=settings.shutdown_timeout_s,
    )
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    """Offline, on the state dir (safe next to a running service: read-only)."""
    import json
    import sqlite3

    from service.audit import export_jsonl, iter_rows, open_readonly, verify_rows
    from service.trail import read_anchors

    try:
        conn = open_readonly(settings.state_dir)
    except (FileNotFoundError, sqlite3.Error) as e:
        print(f"dockyard: {e}", file=sys.stderr)
        return 2
    try:
        if args.audit_cmd == "verify":
            anchors = {} if args.no_anchors else read_anchors(settings.state_dir / "trail")
            keys = settings.audit_keys()
            result = verify_rows(iter_rows(conn), anchors, keys)
            print(json.dumps(result.__dict__))
            if keys is None:
                print(
                    "note: no DOCKYARD_AUDIT_KEY_FILE given: only the hash chain was checked "
                    "(a full rewrite of the state dir would pass)",
                    file=sys.stderr,
                )
            if not result.ok:
                print(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.reason}", file=sys.stderr)
                return 1
            return 0
        if args.output in (None, "-"):
            n = export_jsonl(conn, sys.stdout, job_id=args.job)
        else:
            with open(args.output, "w", encoding="utf-8") as out:
                n = export_jsonl(conn, out, job_id=args.job)
        print(f"exported {n} record(s)", file=sys.stderr)
        return 0
    except sqlite3.Error as e:
        print(f"dockyard: cannot read {settings.state_dir}: {e}", file=sys.stderr)
        return 2
    finally:
        conn.close()


def _images(settings: Settings, args: argparse.Namespace) -> int:
    from service.images import resolve_images
    from service.sandbox.docker.images import build_images, engine_client, missing_images

    cfg = load_images_config(settings.images_config)
    images = resolve_images(cfg, settings.images_config, settings)
    client = engine_client(timeout=600)
    if args.images_cmd == "list":
        missing = set(missing_images(client, images))
        for img in images.values():
            print(f"{img.name:12} {img.tag:40} {'missing' if img.tag in missing else 'present'}")
        return 0
    unknown = set(args.names) - set(images)
    if unknown:
        print(f"unknown image(s): {', '.join(sorted(unknown))}; known: {', '.join(images)}", file=sys.stderr)
        return 2
    outcome = build_images(
        client, images, extra_ca=settings.build_extra_ca, only=set(args.names) or None, force=args.force
    )
    print(", ".join(f"{n}: {o}" for n, o in outcome.items()))
    return 0


def _openapi(as_markdown: bool) -> int:
    import json

    from service.api.reference import markdown
    from service.app import openapi_document

    doc = openapi_document()
    sys.stdout.write(markdown(doc) if as_markdown else json.dumps(doc, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard", description="sandboxed executor for code-fix agents")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="run the control service")
    images = sub.add_parser("images", help="sandbox images")
    isub = images.add_subparsers(dest="images_cmd", required=True)
    build = isub.add_parser("build", help="build images whose content hash has no image yet")
    build.add_argument("names", nargs="*", help="only these images (and their parents)")
    build.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    isub.add_parser("list", help="show each image's tag and whether it is built")
    audit = sub.add_parser("audit", help="the audit log, offline on DOCKYARD_STATE_DIR")
    asub = audit.add_subparsers(dest="audit_cmd", required=True)
    verify = asub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad seq")
    verify.add_argument("--no-anchors", action="store_true", help="ignore the outcome trail's anchors")
    export = asub.add_parser("export", help="write records as JSON Lines")
    export.add_argument("--job", help="only this job's records")
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    openapi = sub.add_parser("openapi", help="print the OpenAPI document (no service, no engine needed)")
    openapi.add_argument("--markdown", action="store_true", help="as the API reference (docs/API.md)")
    mcp = sub.add_parser(
        "mcp", help="MCP for local clients: a stdio server forwarding to a running service's /mcp"
    )
    mcp.add_argument(
        "--stdio",
        action="store_true",
        required=True,
        help="serve MCP on stdin/stdout; reads DOCKYARD_API_URL and DOCKYARD_API_TOKEN",
    )
    args = parser.parse_args(argv)
    if args.cmd == "openapi":
        return _openapi(args.markdown)
    if args.cmd == "mcp":  # a client of a running service: none of the service's own settings
        from service.mcp.stdio import main as mcp_main
        from service.settings import ClientSettings

        return mcp_main(ClientSettings())
    try:
        settings = Settings()
        if args.cmd == "serve":
            return _serve(settings)
        if args.cmd == "audit":
            return _audit(settings, args)
        return _images(settings, args)
    except ConfigError as e:
        print(f"dockyard: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
