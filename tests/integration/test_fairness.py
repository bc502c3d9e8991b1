"""Fair sharing of the engine workers: a storm of hung linters on one job cannot stall another
job's tool calls, nor the readiness probe.

With one shared pool, 20 lints whose pylint plugin sleeps held every engine thread and another
job's read_file waited until the linters timed out. Now linter boxes have a pool of their own and
tool execs another, so the second job's reads are all answered while the storm's calls are
still running (asserted as an order of events, not a time).
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Api, JobFactory
from tests.integration.test_lint import plugin_repo

pytestmark = pytest.mark.docker

STORM = 20
READS = 20
LINT_TIMEOUT_S = 10


def running_linters(docker_client: Any, job_id: str) -> int:
    return len(docker_client.containers.list(filters={"label": [f"dockyard.job={job_id}", "dockyard.lint"]}))


def test_hung_lint_storm_does_not_stall_another_tenants_reads(
    api: Api, make_job: JobFactory, docker_client: Any, tmp_path: Path
) -> None:
    """One tenant (team-a) runs the storm; another tenant (team-b) reads."""
    hostile = make_job(
        clone_url=plugin_repo(tmp_path / "sleepy", "    import time\n    time.sleep(3600)"),
        language="python",
        limits={"lint_timeout_s": LINT_TIMEOUT_S},
    )
    api.write(hostile["id"], "m.py", "X = 2\n")
    other = Api(api.service, api.service.tokens["bot_other"])
    victims = JobFactory(other, make_job.repo, docker_client)
    victim = victims()
    assert victim["tenant"] != hostile["tenant"]
    url = f"{api.service.url}/v1/jobs/{hostile['id']}/lint"
    headers = {"Authorization": f"Bearer {api.token}"}

    def lint_once() -> int:
        return requests.post(url, json={}, headers=headers, timeout=600).status_code

    with concurrent.futures.ThreadPoolExecutor(STORM) as pool:
        storm = [pool.submit(lint_once) for _ in range(STORM)]
        deadline = time.monotonic() + 60
        while running_linters(docker_client, hostile["id"]) == 0:  # the storm has reached the engine
            assert time.monotonic() < deadline, "no linter box of the storm ever started"
            assert not all(f.done() for f in storm), [f.result() for f in storm]
            time.sleep(0.2)

        for _ in range(READS):
            assert other.read(victim["id"], "README.md")["content"].startswith("# fixture")
        ready = api.get("/readyz")
        hung = running_linters(docker_client, hostile["id"])
        finished = [f.result() for f in storm if f.done()]

        # Every read was answered while the storm's linters were still hanging: none of its calls
        # had come back with a result yet (a 429 from a per-tenant cap is a refusal, not a result).
        assert [code for code in finished if code != 429] == [], finished
        assert hung >= 1 and len(finished) < STORM
        assert ready.status_code == 200, ready.text[:300]

        results = [f.result() for f in storm]
    victims.cleanup()
    assert set(results) <= {200, 429} and 200 in results, results
