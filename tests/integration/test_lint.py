"""Linters through the API on real language images: exact rule codes and lines, `new` judged
against base_sha, repository config picking the linter, and hostile linter plugins (an endless
loop, a memory hog, a write into the workspace) that must not hurt the job or the service."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Api, JobFactory, Service, _git

pytestmark = pytest.mark.docker


def make_repo(root: Path, files: dict[str, str]) -> str:
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "fixture")
    return root.as_uri()


def lint(api: Api, job: dict[str, Any], **body: Any) -> dict[str, Any]:
    r = api.post(f"/v1/jobs/{job['id']}/lint", body, timeout=300)
    assert r.status_code == 200, r.text[:2000]
    return r.json()  # type: ignore[no-any-return]


def linter(result: dict[str, Any], name: str) -> dict[str, Any]:
    runs = {run["name"]: run for run in result["linters"]}
    assert name in runs, f"{name} did not run: {result}"
    return runs[name]


def diags(run: dict[str, Any]) -> set[tuple[str, int, str, bool]]:
    return {(d["path"], d["line"], d["code"], d["new"]) for d in run["diagnostics"]}


# --- python ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ruff_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_repo(
        tmp_path_factory.mktemp("lint") / "ruffrepo",
        {"pyproject.toml": "[tool.ruff.lint]\nselect = ['F']\n", "a.py": "import os\n", "ok.py": "X = 1\n"},
    )


def test_ruff_new_vs_old_debt(api: Api, make_job: JobFactory, ruff_repo: str) -> None:
    job = make_job(clone_url=ruff_repo, language="python")
    # The old `import os` moves down a line: still old debt. json and sys are new.
    api.write(job["id"], "a.py", "import json\nimport os\n")
    api.write(job["id"], "b.py", "import sys\n")
    result = lint(api, job)
    ruff = linter(result, "ruff")
    assert result["status"] == "failed"
    assert ruff["rule"] == "config: pyproject.toml [tool.ruff]"
    assert diags(ruff) == {("a.py", 1, "F401", True), ("a.py", 2, "F401", False), ("b.py", 1, "F401", True)}
    assert ruff["new_count"] == 2 and ruff["base_checked"]
    assert ruff["files"] == 2 and not ruff["timed_out"] and not ruff["oom_killed"]
    assert ruff["image"].startswith("dockyard/python:")


def test_old_debt_alone_passes(api: Api, make_job: JobFactory, ruff_repo: str) -> None:
    job = make_job(clone_url=ruff_repo, language="python")
    api.write(job["id"], "a.py", "# a comment\nimport os\n")
    result = lint(api, job)
    assert result["status"] == "passed"
    assert diags(linter(result, "ruff")) == {("a.py", 2, "F401", False)}


def test_nothing_changed_runs_nothing(api: Api, make_job: JobFactory, ruff_repo: str) -> None:
    job = make_job(clone_url=ruff_repo, language="python")
    result = lint(api, job)
    assert (result["status"], result["linters"]) == ("passed", [])
    assert [(s["name"], s["reason"]) for s in result["skipped"]] == [
        ("ruff", "no file to check matches *.py, *.pyi")
    ]


def test_all_files_and_explicit_paths(api: Api, make_job: JobFactory, ruff_repo: str) -> None:
    job = make_job(clone_url=ruff_repo, language="python")
    everything = linter(lint(api, job, all_files=True), "ruff")
    assert diags(everything) == {("a.py", 1, "F401", False)} and everything["files"] == 2
    clean = lint(api, job, paths=["ok.py"])
    assert clean["status"] == "passed" and linter(clean, "ruff")["diagnostics"] == []
    bad = api.post(f"/v1/jobs/{job['id']}/lint", {"paths": ["../etc/passwd"]})
    api.error(bad, 400, "path_outside_workspace")
    unknown = api.post(f"/v1/jobs/{job['id']}/lint", {"linters": ["nope"]})
    api.error(unknown, 400, "invalid_request")


def test_default_linter_when_repo_has_no_config(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "plain", {"main.py": "print('hi')\n"})
    job = make_job(clone_url=url, language=None)  # detect
    assert job["language"] == "python"  # detected
    api.write(job["id"], "main.py", "def f(x):\n    return x\n")
    result = lint(api, job)
    ruff = linter(result, "ruff")
    assert result["status"] == "passed" and ruff["diagnostics"] == []
    assert ruff["rule"].startswith("default for python")


def test_flake8_from_setup_cfg(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(
        tmp_path / "f8",
        {"setup.cfg": "[metadata]\nname = x\n\n[flake8]\nmax-line-length = 100\n", "m.py": "X = 1\n"},
    )
    job = make_job(clone_url=url, language="python")
    api.write(job["id"], "m.py", "import os\nx=1\n")
    result = lint(api, job)
    f8 = linter(result, "flake8")
    assert [r["name"] for r in result["linters"]] == ["flake8"]  # the repo's own choice, not ruff
    assert f8["rule"] == "config: setup.cfg [flake8]"
    assert {(d["line"], d["column"], d["code"]) for d in f8["diagnostics"]} == {
        (1, 1, "F401"),
        (2, 2, "E225"),
    }


def test_mypy_from_pyproject(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "my", {"pyproject.toml": "[tool.mypy]\nstrict = false\n", "t.py": "X = 1\n"})
    job = make_job(clone_url=url, language="python")
    api.write(job["id"], "t.py", "def f() -> int:\n    return 'x'\n")
    run = linter(lint(api, job), "mypy")
    assert diags(run) == {("t.py", 2, "return-value", True)}


PYLINTRC = "[MAIN]\nload-plugins=evil\n"


def plugin_repo(root: Path, body: str) -> str:
    return make_repo(
        root, {".pylintrc": PYLINTRC, "evil.py": f"def register(linter):\n{body}\n", "m.py": "X = 1\n"}
    )


def test_pylint_plugin_that_loops_is_timed_out(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    job = make_job(
        clone_url=plugin_repo(tmp_path / "loop", "    while True:\n        pass"),
        language="python",
        limits={"lint_timeout_s": 5},
    )
    api.write(job["id"], "m.py", "X = 2\n")
    t0 = time.monotonic()
    result = lint(api, job)
    run = linter(result, "pylint")
    assert run["timed_out"] and result["status"] == "error"
    assert time.monotonic() - t0 < 60
    assert api.read(job["id"], "m.py")["content"] == "X = 2\n"  # the job stays usable


def test_pylint_plugin_that_eats_memory_is_oom_killed(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    body = "    hog = bytearray(3 * 1024 ** 3)\n    hog[::4096] = b'x' * len(hog[::4096])"
    job = make_job(
        clone_url=plugin_repo(tmp_path / "hog", body), language="python", limits={"memory_mb": 256}
    )
    api.write(job["id"], "m.py", "X = 2\n")
    result = lint(api, job)
    run = linter(result, "pylint")
    assert run["oom_killed"] and not run["timed_out"] and result["status"] == "error"
    assert api.read(job["id"], "m.py")["content"] == "X = 2\n"


def test_pylint_plugin_cannot_write_the_workspace(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    body = "    open('/workspace/pwned.txt', 'w').write('owned')"
    job = make_job(clone_url=plugin_repo(tmp_path / "write", body), language="python")
    api.write(job["id"], "m.py", "X = 2\n")
    run = linter(lint(api, job), "pylint")
    assert "Read-only file system" in run["output"]
    api.error(api.tool(job["id"], "read_file", path="pwned.txt"), 404, "file_not_found")


# --- node, go, shell -------------------------------------------------------------------------------


def test_eslint_flat_config(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    config = 'import js from "@eslint/js";\nexport default [js.configs.recommended];\n'
    url = make_repo(
        tmp_path / "es",
        {
            "eslint.config.mjs": config,
            "package.json": '{"type": "module"}\n',
            "a.js": "export const a = 1;\n",
        },
    )
    job = make_job(clone_url=url, language=None)  # detect
    assert job["language"] == "node"
    api.write(job["id"], "a.js", "export const a = 1;\nconst unused = 2;\n")
    run = linter(lint(api, job), "eslint")
    assert run["rule"] == "config: eslint.config.mjs"
    assert {(d["line"], d["column"], d["code"], d["new"]) for d in run["diagnostics"]} == {
        (2, 7, "no-unused-vars", True)
    }


def test_eslint_default_on_typescript(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "ts", {"x.ts": "export const a: number = 1;\n"})
    job = make_job(clone_url=url, language="node")
    api.write(job["id"], "x.ts", "export const a: number = 1;\nconst b: any = 2;\n")
    run = linter(lint(api, job), "eslint-default")
    codes = {(d["line"], d["code"]) for d in run["diagnostics"]}
    assert codes == {(2, "@typescript-eslint/no-unused-vars"), (2, "@typescript-eslint/no-explicit-any")}


def test_go_vet_and_gofmt(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    main = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}\n'
    url = make_repo(tmp_path / "go", {"go.mod": "module example.com/m\n\ngo 1.21\n", "main.go": main})
    job = make_job(clone_url=url, language=None)  # detect
    assert job["language"] == "go"
    bad = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Printf("%d\\n", "s")\n}\n'
    api.write(job["id"], "main.go", bad)
    api.write(job["id"], "util.go", "package main\nfunc   helper() int { return 1 }\n")
    result = lint(api, job)
    vet, fmt = linter(result, "go-vet"), linter(result, "gofmt")
    assert {(d["path"], d["line"], d["code"]) for d in vet["diagnostics"]} == {("main.go", 6, "vet")}
    assert {d["path"] for d in fmt["diagnostics"]} == {"util.go"}
    assert result["status"] == "failed"


def test_shellcheck(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "sh", {"run.sh": "#!/bin/sh\necho hi\n"})
    job = make_job(clone_url=url, language=None)  # detect
    assert job["language"] == "shell"
    api.write(job["id"], "run.sh", "#!/bin/sh\necho $1\n")
    run = linter(lint(api, job), "shellcheck")
    assert diags(run) == {("run.sh", 2, "SC2086", True)}


# --- ops config: missing image, reload ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ghost_service(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Any:
    """A second service whose config names a linter image that was never built."""
    root = tmp_path_factory.mktemp("ghost")
    images = root / "sandbox-images"
    shutil.copytree(REPO_ROOT / "sandbox-images", images)
    (images / "images.toml").write_text(
        (images / "images.toml").read_text()
        + '\n[images.ghost]\ncontext = "base"\nbuild_args = { GHOST = "1" }\n'
        + '\n[languages.generic.linters.ghostlint]\ncommand = ["true", "{files}"]\nparser = "flake8"\n'
        + 'files = ["*.txt"]\nimage = "ghost"\ndefault = true\n'
    )
    monkeypatch_module.setenv("DOCKYARD_IMAGES_CONFIG", str(images / "images.toml"))
    service = Service(root / "state", root)
    service.start()
    yield service, images / "images.toml"
    service.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_missing_image_is_an_error_and_the_job_stays_usable(
    ghost_service: Any, fixture_repo: Any, docker_client: Any
) -> None:
    service, _ = ghost_service
    api = Api(service, service.tokens["bot"])
    factory = JobFactory(api, fixture_repo, docker_client)
    try:
        job = factory(language="generic")
        api.write(job["id"], "note.txt", "hello\n")
        result = lint(api, job)
        run = linter(result, "ghostlint")
        assert result["status"] == "error"
        assert "not built" in run["error"] and "dockyard images build" in run["error"]
        assert api.read(job["id"], "note.txt")["content"] == "hello\n"
        ready = api.get("/readyz").json()
        assert "ghost" in ready["checks"]["missing_images"]
    finally:
        factory.cleanup()


def test_reload_keeps_running_config_on_mistakes(ghost_service: Any) -> None:
    service, config = ghost_service
    admin = Api(service, service.tokens["admin"])
    bot = Api(service, service.tokens["bot"])
    good = config.read_text()
    try:
        config.write_text(good.replace('parser = "flake8"', 'parser = "pep8"'))
        err = admin.error(admin.post("/v1/config/reload"), 400, "invalid_request")
        assert (
            "languages.generic.linters.ghostlint.parser" in err["message"] and str(config) in err["message"]
        )
        assert "ghostlint" in str(admin.get("/v1/config").json()["config"])  # still the old one
        admin.error(bot.post("/v1/config/reload"), 403, "forbidden")
        config.write_text(
            good.replace("[languages.generic.linters.ghostlint]", "[languages.generic.linters.g2]")
        )
        r = admin.post("/v1/config/reload")
        assert r.status_code == 200 and "g2" in str(r.json()["config"])
    finally:
        config.write_text(good)


def test_images_route_shows_linters(api: Api) -> None:
    body = api.get("/v1/images").json()
    langs = {lang["name"]: lang for lang in body["languages"]}
    ruff = next(lint for lint in langs["python"]["linters"] if lint["name"] == "ruff")
    assert ruff["default"] and "pyproject.toml:[tool.ruff]" in ruff["enabled_by"]
    assert ruff["image"].startswith("dockyard/python:")
    assert {i["name"] for i in body["images"] if i["present"]} >= {"base", "python", "node", "go", "shell"}
