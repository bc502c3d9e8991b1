"""The auditors' console in headless Chromium (Debian's, through Playwright): log in with an
auditor token, see a job's timeline after its tool calls, its diff; tamper a record in the
service's SQLite file and see the first bad record highlighted. Screenshots are kept under the
test's tmp dir, and copied to tests/artifacts/console/ when DOCKYARD_TEST_ARTIFACTS is set."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Api, FixtureRepo
from tests.integration.aux_service import audit, aux

pytestmark = pytest.mark.docker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "console"


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (scripts/setup.sh installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


class Shots:
    def __init__(self, page: Any, root: Path):
        self.page = page
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []

    def __call__(self, name: str) -> None:
        path = self.root / f"{len(self.paths) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)

    def keep(self) -> None:
        kept = list(self.paths)
        if os.environ.get("DOCKYARD_TEST_ARTIFACTS"):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            kept += [Path(shutil.copy2(p, ARTIFACTS / p.name)) for p in self.paths]
        for path in kept:
            print(f"console screenshot: {path}")


def test_console_shows_a_timeline_and_a_tampered_chains_first_bad_record(
    tmp_path: Path, fixture_repo: FixtureRepo, docker_client: Any, browser_page: Any
) -> None:
    page = browser_page
    shots = Shots(page, tmp_path / "screenshots")
    try:
        with aux(tmp_path / "svc", fixture_repo, docker_client) as (svc, api, make_job):
            job = make_job()
            api.write(job["id"], "src/new.py", "print('hi')\n")
            api.tool_ok(
                job["id"], "replace_in_file", path="src/app.py", old="return x + 1", new="return x + 2"
            )
            api.read(job["id"], "README.md")
            writes = audit(api, job_id=job["id"], action="tool.write_file")
            assert len(writes) == 1

            # No session: the console answers 401 and says where to log in.
            page.goto(f"{svc.url}/console")
            assert page.locator("[data-testid=error]").is_visible()
            page.goto(f"{svc.url}/console/login")
            page.fill("input[name=token]", svc.tokens["auditor"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{svc.url}/console")
            assert page.locator("[data-testid=who]").inner_text().startswith("auditor-")
            jobs = page.locator("[data-testid=jobs]")
            assert job["id"] in jobs.inner_text()
            shots("jobs")

            page.click(f"text={job['id']}")
            page.wait_for_url(f"**/console/jobs/{job['id']}")
            timeline = page.locator("[data-testid=records]")
            text = timeline.inner_text()
            for action in ("job.create", "tool.write_file", "tool.replace_in_file", "tool.read_file"):
                assert action in text, action
            row = page.locator(f"#seq-{writes[0]['seq']}")
            assert "src/new.py" in row.inner_text()
            assert writes[0]["content_sha256"][:12] in row.inner_text()
            assert "Chain verified" in page.locator("[data-testid=chain]").inner_text()
            shots("timeline")

            page.click("text=Diff")
            page.wait_for_url(f"**/console/jobs/{job['id']}/diff")
            patch = page.locator("[data-testid=patch]").inner_text()
            assert "+print('hi')" in patch and "+    return x + 2" in patch
            shots("diff")

            # Tamper: alter the middle record of the job in the service's own SQLite file.
            altered = audit(api, job_id=job["id"], action="tool.replace_in_file")[0]["seq"]
            with svc.db() as db:
                db.execute("UPDATE audit SET exit_code = 99 WHERE seq = ?", (altered,))
            page.goto(f"{svc.url}/console/audit")
            chain = page.locator("[data-testid=chain]")
            assert "BROKEN" in chain.inner_text() and f"#{altered}" in chain.inner_text()
            page.click("[data-testid=first-bad]")
            page.wait_for_url(f"**/console/audit?after={altered - 1}#seq-{altered}")
            bad = page.locator("tr.bad")
            assert bad.count() == 1 and bad.get_attribute("data-seq") == str(altered)
            assert bad.is_visible()
            shots("tampered-audit")

            page.goto(f"{svc.url}/console/jobs/{job['id']}")
            assert page.locator("tr.bad").get_attribute("data-seq") == str(altered)
            shots("tampered-timeline")

            # Logging out ends the session: the console asks for a login again.
            page.click("text=Log out")
            page.wait_for_url(f"{svc.url}/console/login")
            response = page.goto(f"{svc.url}/console")
            assert response is not None and response.status == 401
            # The console's cookie is not a bearer token for the API.
            assert Api(svc, None).get("/v1/audit").status_code == 401
    finally:
        shots.keep()
