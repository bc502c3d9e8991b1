"""The console's templates (Jinja2 through aiohttp-jinja2, autoescape always on: records hold
attacker-chosen paths and argv) and the headers every console page carries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from service.console.sessions import PREFIX

ENV: web.AppKey[jinja2.Environment] = web.AppKey("console.jinja", jinja2.Environment)

# No script at all, no outside origin: only this service's stylesheet, forms posting to itself.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _short(value: str | None, n: int = 12) -> str:
    return value[:n] if value else ""


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        app_key=ENV,
        loader=jinja2.PackageLoader("service.console", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
        filters={"compact": _compact, "short": _short},
    )
    env.globals["prefix"] = PREFIX


def page(request: web.Request, template: str, context: Mapping[str, Any], status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, dict(context), app_key=ENV, status=status)
    response.headers.update(PAGE_HEADERS)
    return response


def error_page(request: web.Request, status: int, code: str, message: str) -> web.Response | None:
    """An error on a console route as a page (status and code kept), or None before setup."""
    if ENV not in request.app:
        return None
    context = {"status": status, "code": code, "message": message, "who": None}
    return page(request, "error.html", context, status)
