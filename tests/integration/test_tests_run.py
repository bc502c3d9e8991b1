"""Test runs through the API on real language images: the repo's own runner picked, failures
judged `new` against base_sha, hostile tests (a hang, a memory hog, a write into the repo) that
must not hurt the job, the diff or the service, and a dependency from the job's environment."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, JobFactory
from tests.integration.test_lint import make_repo

pytestmark = pytest.mark.docker

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
PY_TESTS = (
    "from calc import add, mul\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n\n\n"
    "def test_old_broken():\n    assert add(1, 1) == 3, 'broken since forever'\n"
)


def run_tests(api: Api, job: dict[str, Any], **body: Any) -> dict[str, Any]:
    r = api.post(f"/v1/jobs/{job['id']}/test", body, timeout=600)
    assert r.status_code == 200, r.text[:2000]
    return r.json()  # type: ignore[no-any-return]


def failures(result: dict[str, Any]) -> dict[str, bool]:
    return {f["id"]: f["new"] for f in result["failures"]}


@pytest.fixture(scope="module")
def py_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_repo(
        tmp_path_factory.mktemp("tests") / "pyrepo",
        {
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
            "calc.py": CALC,
            "tests/test_calc.py": PY_TESTS,
        },
    )


@pytest.fixture(scope="module")
def py_job(make_job: JobFactory, py_repo: str) -> dict[str, Any]:
    return make_job(clone_url=py_repo, language="python")


def test_python_old_failure_is_not_new(api: Api, py_job: dict[str, Any]) -> None:
    result = run_tests(api, py_job)
    assert result["status"] == "passed", result
    assert result["rule"] == "pyproject.toml:[tool.pytest.ini_options]"
    assert result["command"][:3] == ["python", "-m", "pytest"]
    assert result["counts"] == {"passed": 2, "failed": 1, "skipped": 0, "errors": 0}
    assert failures(result) == {"tests/test_calc.py::test_old_broken": False}
    old = result["failures"][0]
    assert (
        old["path"] == "tests/test_calc.py" and old["line"] == 12 and "broken since forever" in old["message"]
    )
    assert result["base_checked"] and result["tool_source"] == "image"
    assert result["image"].startswith("dockyard/python:") and not result["timed_out"]


def test_python_breaking_a_passing_test_is_new(api: Api, make_job: JobFactory, py_repo: str) -> None:
    job = make_job(clone_url=py_repo, language="python")
    api.write(job["id"], "calc.py", CALC.replace("return a + b", "return a - b"))
    result = run_tests(api, job)
    assert result["status"] == "failed", result
    assert failures(result) == {
        "tests/test_calc.py::test_add": True,
        "tests/test_calc.py::test_old_broken": False,
    }
    new = next(f for f in result["failures"] if f["new"])
    assert not new["flaky"] and "assert -1 == 5" in new["message"]
    # `paths` narrows the run to one node id: the broken test is not in it.
    narrow = run_tests(api, job, paths=["tests/test_calc.py::test_mul"])
    assert narrow["status"] == "passed" and narrow["counts"]["passed"] == 1 and narrow["failures"] == []
    bad = api.post(f"/v1/jobs/{job['id']}/test", {"paths": ["../etc/passwd"]})
    api.error(bad, 400, "path_outside_workspace")
    # A custom command is ops' call (allow_custom_command is off for python).
    api.error(api.post(f"/v1/jobs/{job['id']}/test", {"command": ["sh", "-c", "true"]}), 403, "forbidden")


def test_python_hang_is_timed_out_and_the_job_stays_usable(
    api: Api, make_job: JobFactory, py_repo: str
) -> None:
    job = make_job(clone_url=py_repo, language="python")
    api.write(job["id"], "tests/test_hang.py", "import time\n\n\ndef test_hang():\n    time.sleep(600)\n")
    t0 = time.monotonic()
    result = run_tests(api, job, timeout_s=8)
    assert time.monotonic() - t0 < 120
    assert result["timed_out"] and result["status"] == "failed", result
    assert result["limits"]["timeout_s"] == 8 and result["clamped"] == []
    assert api.get("/healthz").status_code == 200
    assert api.read(job["id"], "calc.py")["content"] == CALC
    clamped = run_tests(api, job, timeout_s=10**6, paths=["tests/test_calc.py::test_add"])
    assert clamped["status"] == "passed" and clamped["counts"]["passed"] == 1
    assert clamped["clamped"] == ["timeout_s"] and clamped["limits"]["timeout_s"] == 300


def test_python_memory_hog_is_oom_killed(api: Api, make_job: JobFactory, py_repo: str) -> None:
    job = make_job(clone_url=py_repo, language="python", limits={"memory_mb": 256, "disk_mb": 64})
    api.write(
        job["id"], "tests/test_hog.py", "def test_hog():\n    b = bytearray(2 * 1024**3)\n    assert b\n"
    )
    result = run_tests(api, job)
    assert result["oom_killed"] and result["status"] == "failed", result
    assert result["limits"]["memory_mb"] == 256
    assert api.read(job["id"], "calc.py")["content"] == CALC


def test_python_writes_into_the_repo_never_reach_the_diff(
    api: Api, make_job: JobFactory, py_repo: str
) -> None:
    job = make_job(clone_url=py_repo, language="python")
    api.write(
        job["id"],
        "tests/test_writer.py",
        "import pathlib\n\n\ndef test_writes():\n"
        "    pathlib.Path('written_by_test.txt').write_text('x')\n"
        "    pathlib.Path('calc.py').write_text('oops')\n",
    )
    result = run_tests(api, job, paths=["tests/test_writer.py"])
    assert result["status"] == "passed" and result["counts"]["passed"] == 1, result
    diff = api.get(f"/v1/jobs/{job['id']}/diff").json()
    assert [f["path"] for f in diff["files"]] == ["tests/test_writer.py"]
    assert api.read(job["id"], "calc.py")["content"] == CALC


def test_python_dependency_from_the_env(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(
        tmp_path / "envrepo",
        {
            "requirements.txt": "six==1.16.0\n",
            "tests/test_six.py": "import six\n\n\ndef test_six():\n    assert six.__version__ == '1.16.0'\n",
        },
    )
    job = make_job(clone_url=url, language="python")
    deadline = time.monotonic() + 300
    while api.job(job["id"])["env"]["status"] == "building" and time.monotonic() < deadline:
        time.sleep(2)
    assert api.job(job["id"])["env"]["status"] == "ready", api.job(job["id"])["env"]
    result = run_tests(api, job)
    assert result["status"] == "passed" and result["counts"]["passed"] == 1, result
    assert result["rule"] == "tests/ with test_*.py" and result["tool_source"] == "image+env"
    assert result["env"] == "ready"


def test_no_tests_and_unsupported_languages_say_skipped_reason(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    url = make_repo(tmp_path / "notests", {"main.py": "print('hi')\n", "run.sh": "echo hi\n"})
    py = run_tests(api, make_job(clone_url=url, language="python"))
    assert py["status"] == "passed" and py["skipped_reason"].startswith("no tests found"), py
    sh = run_tests(api, make_job(clone_url=url, language="shell"))
    assert sh["status"] == "passed" and sh["command"] == [] and "not configured" in sh["skipped_reason"]


# --- node -----------------------------------------------------------------------------------------

NODE_LIB = "exports.add = (a, b) => a + b;\nexports.mul = (a, b) => a * b;\n"
NODE_TESTS = (
    "const test = require('node:test');\nconst assert = require('node:assert');\n"
    "const { add, mul } = require('../lib.js');\n"
    "test('add', () => { assert.strictEqual(add(2, 3), 5); });\n"
    "test('mul', () => { assert.strictEqual(mul(2, 3), 6); });\n"
    "test('old broken', () => { assert.strictEqual(add(1, 1), 3); });\n"
)


def test_node_test_runner_new_vs_old(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(
        tmp_path / "noderepo",
        {
            "package.json": '{"name": "n", "version": "1.0.0", "scripts": {"test": "node --test"}}\n',
            "lib.js": NODE_LIB,
            "test/lib.test.js": NODE_TESTS,
        },
    )
    job = make_job(clone_url=url, language="node")
    clean = run_tests(api, job)
    assert clean["status"] == "passed" and clean["rule"] == "package.json scripts.test", clean
    assert clean["command"] == ["node", "--test", "--test-reporter=tap"]
    assert clean["counts"]["passed"] == 2 and failures(clean) == {"old broken": False}
    api.write(job["id"], "lib.js", NODE_LIB.replace("a * b", "a + b"))
    broken = run_tests(api, job)
    assert broken["status"] == "failed" and failures(broken) == {"mul": True, "old broken": False}
    mul = next(f for f in broken["failures"] if f["id"] == "mul")
    assert mul["path"] == "test/lib.test.js" and mul["line"] == 5 and "5 !== 6" in mul["message"]


def test_node_hang_is_timed_out_and_test_writes_never_reach_the_diff(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    url = make_repo(
        tmp_path / "nodehang",
        {
            "package.json": '{"name": "n", "version": "1.0.0", "scripts": {"test": "node --test"}}\n',
            "lib.js": NODE_LIB,
            "test/lib.test.js": NODE_TESTS,
        },
    )
    job = make_job(clone_url=url, language="node")
    api.write(
        job["id"],
        "test/writer.test.js",
        "const test = require('node:test');\nconst fs = require('node:fs');\n"
        "test('writes', () => { fs.writeFileSync('lib.js', 'oops'); fs.writeFileSync('new.txt', 'x'); });\n",
    )
    wrote = run_tests(api, job)
    assert "writes" not in failures(wrote), wrote
    assert [f["path"] for f in api.get(f"/v1/jobs/{job['id']}/diff").json()["files"]] == ["test/writer.test.js"]
    assert api.read(job["id"], "lib.js")["content"] == NODE_LIB
    api.write(
        job["id"], "test/hang.test.js", "const test = require('node:test');\ntest('hang', () => { for (;;) {} });\n"
    )
    hung = run_tests(api, job, timeout_s=8)
    assert hung["timed_out"] and hung["status"] == "failed", hung
    assert api.get("/healthz").status_code == 200 and api.read(job["id"], "lib.js")["content"] == NODE_LIB


def test_node_npm_script_tap_or_exit_code(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(
        tmp_path / "npmrepo",
        {
            "package.json": '{"name": "n", "version": "1.0.0", '
            '"scripts": {"test": "node --test test/ && node check.js"}}\n',
            "lib.js": NODE_LIB,
            "check.js": "process.exit(require('./lib.js').add(1, 1) === 2 ? 0 : 1);\n",
            "test/lib.test.js": NODE_TESTS.replace("test('old broken'", "test.skip('old broken'"),
        },
    )
    job = make_job(clone_url=url, language="node")
    clean = run_tests(api, job)
    assert clean["status"] == "passed" and clean["rule"] == "package.json scripts.test (npm test)", clean
    assert clean["command"] == ["npm", "test", "--silent"] and clean["image"].startswith("dockyard/env-node:")
    assert clean["counts"] == {"passed": 2, "failed": 0, "skipped": 1, "errors": 0}
    # check.js fails but prints no TAP of its own: the exit code is the verdict, new against base.
    api.write(job["id"], "check.js", "process.exit(1);\n")
    broken = run_tests(api, job)
    assert broken["status"] == "failed" and failures(broken) == {"(exit status)": True}, broken


# --- go -------------------------------------------------------------------------------------------

GO_LIB = (
    "package calc\n\nfunc Add(a, b int) int { return a + b }\n\nfunc Mul(a, b int) int { return a * b }\n"
)
GO_TESTS = (
    'package calc\n\nimport "testing"\n\n'
    'func TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatalf("add: got %d", Add(2, 3))\n\t}\n}\n\n'
    'func TestMul(t *testing.T) {\n\tif Mul(2, 3) != 6 {\n\t\tt.Fatalf("mul: got %d", Mul(2, 3))\n\t}\n}\n\n'
    'func TestOldBroken(t *testing.T) {\n\tt.Fatal("broken since forever")\n}\n'
)


def test_go_test_json_new_vs_old(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(
        tmp_path / "gorepo",
        {"go.mod": "module example.com/calc\n\ngo 1.21\n", "calc.go": GO_LIB, "calc_test.go": GO_TESTS},
    )
    job = make_job(clone_url=url, language="go")
    api.write(job["id"], "calc.go", GO_LIB.replace("a * b", "a - b"))
    result = run_tests(api, job)
    assert result["status"] == "failed" and result["rule"] == "go.mod", result["output"]
    assert failures(result) == {"example.com/calc::TestMul": True, "example.com/calc::TestOldBroken": False}
    assert result["counts"] == {"passed": 1, "failed": 2, "skipped": 0, "errors": 0}
    mul = next(f for f in result["failures"] if f["new"])
    assert "mul: got -1" in mul["message"] and mul["line"] == 13
