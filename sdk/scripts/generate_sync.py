"""Write dockyard_client/_sync.py from dockyard_client/_async.py (the unasync library), or check it.

    python sdk/scripts/generate_sync.py           # (re)write _sync.py
    python sdk/scripts/generate_sync.py --check   # exit 1 when _sync.py is not what it would write

`_async.py` is the one source of the client's calls. unasync drops `async` / `await`, maps its own
tokens (`__aenter__`, `AsyncIterator`, ...) and the REPLACEMENTS below; what truly differs between the
flavours is in the twin shims `_async_compat.py` / `_sync_compat.py`, never in `_sync.py` by hand.
A dev tool: unasync is in dockyard's `test` extra, the SDK does not need it at run time.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]  # no stubs, no py.typed

PACKAGE = Path(__file__).resolve().parent.parent / "dockyard_client"
SOURCE = PACKAGE / "_async.py"
TARGET = PACKAGE / "_sync.py"
COMMAND = "python sdk/scripts/generate_sync.py"

# Token for token (whole names only), on top of unasync's own.
REPLACEMENTS = {
    # the public names: Dockyard, not unasync's default SyncDockyard
    "AsyncDockyard": "Dockyard",
    "AsyncJobs": "Jobs",
    "AsyncJob": "Job",
    "AsyncFiles": "Files",
    "AsyncAudit": "Audit",
    "AsyncImages": "Images",
    "AsyncConfig": "Config",
    # httpx and httpx-sse
    "AsyncClient": "Client",
    "aclose": "close",
    "aread": "read",
    "aconnect_sse": "connect_sse",
    "aiter_sse": "iter_sse",
    # the flavour's shims
    "_async_compat": "_sync_compat",
}

HEADER = (
    f"# GENERATED from _async.py by `{COMMAND}` (unasync): edit _async.py, not this file.\n"
    # An async generator cannot `yield from`, so its loops stay loops here.
    "# ruff: noqa: UP028\n"
)


def generate() -> str:
    """What `_sync.py` should hold: unasync's output of `_async.py` under the header."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "dockyard_client"
        work.mkdir()
        shutil.copyfile(SOURCE, work / SOURCE.name)
        rule = unasync.Rule(fromdir="/_async.py", todir="/_sync.py", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(work / SOURCE.name)], rules=[rule])
        return HEADER + (work / TARGET.name).read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when _sync.py is out of date")
    args = parser.parse_args(argv)
    want = generate()
    have = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if not args.check:
        if have != want:
            TARGET.write_text(want, encoding="utf-8")
            print(f"wrote {TARGET}")
        return 0
    if have == want:
        return 0
    diff = difflib.unified_diff(
        have.splitlines(keepends=True), want.splitlines(keepends=True), str(TARGET), "from _async.py"
    )
    sys.stdout.writelines(diff)
    print(f"\n{TARGET} is not generated from {SOURCE.name}: run `{COMMAND}`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
