"""The bot reads the REAL service's answers through the client SDK's models, by its own port
(`bot.fixer.make_client`): the lint result with `LinterRun.new_count` (the field the old hand-copied
models lacked), the job, the editor tool's answer and the diff. The SDK's models are held to the live
/openapi.json by test_sdk_drift.py; this holds the bot to exactly those models."""

from __future__ import annotations

from pathlib import Path

import pytest
from dockyard_client import models as sdk_models

from bot.fixer import make_client
from bot.gates import lint_gate
from bot.settings import BotSettings
from tests.conftest import Service
from tests.integration.test_lint import make_repo

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def ruff_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    root: Path = tmp_path_factory.mktemp("bot-sdk") / "repo"
    files = {"pyproject.toml": "[tool.ruff.lint]\nselect = ['F']\n", "a.py": "import os\n"}
    return make_repo(root, files)


async def test_the_bot_reads_lint_results_through_the_sdk_models(service: Service, ruff_repo: str) -> None:
    settings = BotSettings.model_validate(
        {"api_url": service.url, "api_token": service.tokens["bot"], "anthropic_api_key": "k"}
    )
    async with make_client(settings) as port:
        job = await port.create_job(clone_url=ruff_repo, ref="main", labels={"app": "dockyard-bot-test"})
        try:
            assert type(job) is sdk_models.Job and job.status == "ready" and job.language == "python"
            edit = {"command": "str_replace", "path": "a.py", "old_str": "import os\n"}
            edited = await port.edit_tool(job.id, edit | {"new_str": "import json\nimport os\n"})
            assert type(edited) is sdk_models.EditResult and not edited.is_error, edited.content
            await port.write_file(job.id, "b.py", "import sys\n")

            result = await port.lint(job.id)
            assert type(result) is sdk_models.LintResult and result.status == "failed"
            ruff = {run.name: run for run in result.linters}["ruff"]
            assert type(ruff) is sdk_models.LinterRun and ruff.base_checked
            assert ruff.new_count == 2 == sum(d.new for d in ruff.diagnostics)
            assert {(d.path, d.line, d.code, d.new) for d in ruff.diagnostics} == {
                ("a.py", 1, "F401", True),
                ("a.py", 2, "F401", False),
                ("b.py", 1, "F401", True),
            }

            verdict = await lint_gate(port, job.id)
            assert verdict.status == "failed" and verdict.summary.startswith("2 new problem(s)")
            assert {(d["path"], d["line"]) for d in verdict.data["new"]} == {("a.py", 1), ("b.py", 1)}
            assert verdict.data["old"] == 1

            diff = await port.diff(job.id)
            assert type(diff) is sdk_models.DiffResult and {f.path for f in diff.files} == {"a.py", "b.py"}
        finally:
            await port.delete_job(job.id)
