"""The `dockyard-bot` console script: the bot needs its extra (`pip install 'dockyard[bot]'`).

The service's distribution ships `bot/` too, but the model SDK and the client SDK (`dockyard-client`)
are the `bot` extra's, not service dependencies: without them, one line saying what to install
instead of an ImportError mid-run.
"""

from __future__ import annotations

import importlib.util
import sys

BOT_EXTRA_MODULES = ("anthropic", "dockyard_client")  # the model SDK and the client SDK


def main(argv: list[str] | None = None) -> int:
    missing = [m for m in BOT_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"dockyard-bot: {', '.join(missing)} is not installed: pip install 'dockyard[bot]'",
            file=sys.stderr,
        )
        return 2
    from bot.__main__ import main as bot_main

    return bot_main(argv)
