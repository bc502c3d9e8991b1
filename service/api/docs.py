"""`GET /docs`: the API reference page, Redoc rendering `/openapi.json`, every asset served by the
service itself from the installed `openapi-ui-bundles` package — no CDN, no token, works offline.

Redoc rather than Swagger UI: the packaged Swagger UI is 3.x, which refuses an OpenAPI 3.1
document; the packaged Redoc (2.x) reads 3.1, shows tags, examples, every error status's code
enum and the event stream's `oneOf` of events, and is one script with no "try it" calls to make
with a token the page would have to hold."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from aiohttp import web
from openapi_ui_bundles import redoc

from service.api.routing import Route

PREFIX = "/docs"
SCRIPT = "redoc.standalone.js"
LOGO = "logo-mini.svg"
_ASSETS = Path(redoc.static_path)
# The one asset the script fetches from elsewhere (its side menu's logo): the package ships it.
_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# The page loads only what the service serves (the script, the document); Redoc's styles are
# inline and its search runs in a blob: worker.
CSP = (
    "default-src 'none'; script-src 'self'; worker-src 'self' blob:; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Relative URLs: right behind a proxy that mounts the service under a prefix, too.
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dockyard control API</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="openapi.json" expand-responses="200,201" path-in-middle-panel="true"></redoc>
<script src="docs/{SCRIPT}"></script>
</body>
</html>
"""


def is_docs(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Content-Security-Policy": CSP})


@functools.cache
def _script() -> bytes:
    """The packaged script with its logo fetched from the service (relative to the page)."""
    return (_ASSETS / SCRIPT).read_bytes().replace(_CDN_LOGO, f"docs/{LOGO}".encode())


async def docs_script(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(_script)  # read once, off the event loop
    return web.Response(
        body=body, content_type="application/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


async def docs_logo(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_ASSETS / LOGO, headers={"Content-Type": "image/svg+xml"})


def routes() -> list[Route]:
    """The page and its script: public, like /openapi.json (pages, kept out of the document)."""
    return [
        Route("GET", PREFIX, docs_page, "API reference (Redoc)", None, media_type="text/html"),
        Route(
            "GET",
            f"{PREFIX}/{SCRIPT}",
            docs_script,
            "The reference page's script",
            None,
            media_type="application/javascript",
        ),
        Route(
            "GET",
            f"{PREFIX}/{LOGO}",
            docs_logo,
            "The reference page's logo",
            None,
            media_type="image/svg+xml",
        ),
    ]
