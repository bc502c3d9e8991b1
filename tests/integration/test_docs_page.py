"""The API reference page (`GET /docs`) in headless Chromium (Debian's, through Playwright) with
every request to anything but the service refused: it renders the service's own /openapi.json,
shows the title and lists the operations, and loads nothing from elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import Service
from tests.integration.test_console import browser_page  # noqa: F401  (the fixture)

pytestmark = pytest.mark.docker


def test_the_docs_page_needs_no_token_and_names_only_its_own_assets(service: Service) -> None:
    page = requests.get(f"{service.url}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    script = requests.get(f"{service.url}/docs/redoc.standalone.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert len(script.content) > 100_000


def test_the_docs_page_renders_offline_and_lists_the_operations(
    service: Service,
    browser_page: Any,  # noqa: F811  (the fixture above)
    tmp_path: Path,
) -> None:
    page = browser_page
    origin = urlsplit(service.url).netloc
    elsewhere: list[str] = []
    loaded: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).netloc == origin:
            loaded.append(url)
            r.continue_()
        else:  # the network is closed to anything but the service
            elsewhere.append(url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{service.url}/docs")
    page.get_by_role("heading", name="dockyard control API").first.wait_for()
    assert page.title() == "dockyard control API"

    menu = page.locator("[role=menuitem], li[data-item-id] label, .menu-content label")
    menu.first.wait_for()
    text = page.locator("body").inner_text()
    for tag in ("jobs", "tools", "lint", "diff & commit", "audit"):
        assert tag in text.lower(), tag
    # POST /v1/jobs and a tool route: each a section of the middle panel, headed by its summary
    page.get_by_role("heading", name="Create a job: clone, start its sandbox").first.wait_for()
    page.get_by_role("heading", name="Read a file (line range, numbering)").first.wait_for()
    assert "/v1/jobs/{id}/tools/read_file" in page.content()
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)

    assert not elsewhere, f"the page asked for assets elsewhere: {elsewhere}"
    assert any(u.endswith("/openapi.json") for u in loaded) and any(u.endswith(".js") for u in loaded)
    assert not [e for e in errors if "Content Security Policy" in e], errors
