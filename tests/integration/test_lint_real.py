"""Lint verdicts on fixture repositories shaped like the real ones that went wrong (issue 11):
each checked against the same tool run natively (`docker run` of the same image on the same
files), so a difference is dockyard's, not the tool's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, JobFactory
from tests.integration.test_lint import diags, lint, linter, make_repo

pytestmark = pytest.mark.docker


def image_tag(api: Api, name: str) -> str:
    images = {i["name"]: i for i in api.get("/v1/images").json()["images"]}
    return str(images[name]["tag"])


def native(api: Api, image: str, root: Path, argv: list[str]) -> str:
    """The tool itself, in its image, on a plain copy of the files (no dockyard in between)."""
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{root}:/w:ro",
            "-w",
            "/w",
            image_tag(api, image),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_ruff_fix_true_repo_reports_the_real_finding(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    config = "[tool.ruff]\nfix = true\n[tool.ruff.lint]\nselect = ['F']\n"
    url = make_repo(tmp_path / "repo", {"pyproject.toml": config, "a.py": "X = 1\n"})
    job = make_job(clone_url=url, language="python")
    api.write(job["id"], "a.py", "import os\nX = 1\n")
    result = lint(api, job)
    ruff = linter(result, "ruff")
    assert diags(ruff) == {("a.py", 1, "F401", True)}  # not E902 Read-only file system
    assert "--no-fix" in ruff["command"]
    ref = write_tree(tmp_path / "native", {"pyproject.toml": config, "a.py": "import os\nX = 1\n"})
    got = json.loads(
        native(api, "python", ref, ["ruff", "check", "--no-fix", "--output-format", "json", "a.py"])
    )
    assert {(d["location"]["row"], d["code"]) for d in got} == {
        (d["line"], d["code"]) for d in ruff["diagnostics"]
    }
    version = native(api, "python", ref, ["ruff", "--version"]).strip()
    assert (ruff["tool_source"], ruff["version"]) == ("image", version)


def test_mypy_pretty_and_files_scope(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    files = {
        "mypy.ini": "[mypy]\npretty = true\nshow_error_end = true\nfiles = src\n",
        "src/m.py": "X = 1\n",
        "scripts/other.py": "Y = 1\n",  # outside the repo's scope: mypy never checks it there
    }
    bad = "def f() -> int:\n    return 'x'\n"
    url = make_repo(tmp_path / "repo", files)
    job = make_job(clone_url=url, language="python")
    api.write(job["id"], "src/m.py", bad)
    api.write(job["id"], "scripts/other.py", bad)
    run = linter(lint(api, job), "mypy")
    assert run["error"] is None and "its own scope (files)" in run["rule"]
    assert {(d["path"], d["line"], d["code"], d["new"]) for d in run["diagnostics"]} == {
        ("src/m.py", 2, "return-value", True)
    }
    assert not any(a.endswith(".py") for a in run["command"])  # the repo's scope, not our file list
    ref = write_tree(tmp_path / "native", {**files, "src/m.py": bad, "scripts/other.py": bad})
    out = native(api, "python", ref, ["mypy", "--cache-dir=/dev/null", "--no-pretty", "--hide-error-end"])
    assert "src/m.py:2:" in out and "scripts/other.py" not in out


def test_duplicate_message_new_mark_lands_on_the_injected_one(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    config = "[lint]\nselect = ['E711']\n"
    url = make_repo(tmp_path / "repo", {"ruff.toml": config, "a.py": "x = 1\ny = x == None\n"})
    job = make_job(clone_url=url, language="python")
    # The same message already exists further down; the injected copy is above it.
    api.write(job["id"], "a.py", "z = x == None\nx = 1\ny = x == None\n")
    result = lint(api, job)
    assert diags(linter(result, "ruff")) == {("a.py", 1, "E711", True), ("a.py", 3, "E711", False)}
    assert result["status"] == "failed"
    again = lint(api, job)  # the base result is reused: same verdict
    assert diags(linter(again, "ruff")) == {("a.py", 1, "E711", True), ("a.py", 3, "E711", False)}


def test_multi_language_repo_lints_every_language(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    files = {f"fixtures/p{i}/package.json": "{}\n" for i in range(12)}  # detected as node
    files |= {
        "app.py": "X = 1\n",
        "bin/deploy": "#!/usr/bin/env bash\necho hi\n",
        "web.js": "export const a = 1;\n",
    }
    files |= {"tool.rb": "puts 1\n", "README.md": "# x\n"}
    url = make_repo(tmp_path / "repo", files)
    job = make_job(clone_url=url, language=None)
    assert job["language"] == "node"
    api.write(job["id"], "app.py", "import os\n")
    api.write(job["id"], "bin/deploy", "#!/usr/bin/env bash\necho $1\n")  # extensionless: by its shebang
    api.write(job["id"], "web.js", "export const a = 1;\nconst unused = 2;\n")
    api.write(job["id"], "tool.rb", "puts 2\n")
    api.write(job["id"], "README.md", "# y\n")
    result = lint(api, job)
    runs = {r["name"]: r for r in result["linters"]}
    assert set(runs) == {"ruff", "shellcheck", "eslint-default"}
    assert runs["ruff"]["image"].startswith("dockyard/python:")
    assert runs["shellcheck"]["image"].startswith("dockyard/shell:")
    assert diags(runs["shellcheck"]) == {("bin/deploy", 2, "SC2086", True)}
    assert {(d["path"], d["code"]) for d in runs["eslint-default"]["diagnostics"]} == {
        ("web.js", "@typescript-eslint/no-unused-vars")
    }
    skipped = {(s["name"], s["reason"]) for s in result["skipped"]}
    assert ("*.rb", "no linter configured for *.rb (1 file)") in skipped
    assert not any("md" in name for name, _ in skipped)  # docs are not code
    ref = write_tree(tmp_path / "native", {"deploy": "#!/usr/bin/env bash\necho $1\n"})
    got = json.loads(native(api, "shell", ref, ["shellcheck", "--format=json1", "deploy"]))
    assert [(c["line"], c["code"]) for c in got["comments"]] == [(2, 2086)]


def test_xo_repo_is_linted_with_its_own_xo_from_its_environment(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    """The job's environment is fetched from the registry (npm, scripts off) and holds the repo's
    xo: lint runs THAT xo with the repo's xo config, not eslint defaults."""
    pkg = json.dumps(
        {"name": "x", "type": "module", "xo": {"space": True}, "devDependencies": {"xo": "^0.58.0"}}
    )
    url = make_repo(tmp_path / "repo", {"package.json": pkg, "index.js": "export const a = 1;\n"})
    job = make_job(clone_url=url, language="node")
    api.write(job["id"], "index.js", "export const a = 1;\nconst unused = 2;\n")
    result = lint(api, job)
    (run,) = result["linters"]
    assert run["name"] == "xo" and run["tool_source"] == "repo" and run["version"].startswith("0.58")
    assert run["command"][0].startswith("/env/node_modules/.bin/xo")
    assert [(d["line"], d["new"]) for d in run["diagnostics"] if "unused" in d["message"]] == [(2, True)]
    assert result["status"] == "failed"


def test_xo_repo_without_environment_is_skipped_not_linted_with_eslint_defaults(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    # A dependency the registry does not have: the environment fails, so there is no xo to run.
    pkg = json.dumps(
        {
            "name": "x",
            "type": "module",
            "xo": {"space": True},
            "devDependencies": {"xo": "^0.58.0", "dockyard-test-no-such-package-4d1c": "1.0.0"},
        }
    )
    url = make_repo(tmp_path / "repo", {"package.json": pkg, "index.js": "export const a = 1;\n"})
    job = make_job(clone_url=url, language="node")
    api.write(job["id"], "index.js", "export const a = 1;\nconst unused = 2;\n")
    result = lint(api, job)
    assert result["linters"] == [] and result["status"] == "passed"
    reasons = {s["name"]: s["reason"] for s in result["skipped"]}
    assert "no dependency environment" in reasons["xo"] and "package.json" in reasons["xo"]


def test_output_over_the_cap_is_still_a_verdict_and_clamps_are_reported(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    url = make_repo(tmp_path / "repo", {"ruff.toml": "[lint]\nselect = ['F']\n", "a.py": "X = 1\n"})
    job = make_job(clone_url=url, language="python", limits={"output_cap_kb": 16, "lint_timeout_s": 100000})
    assert job["limits"]["clamped"]["lint_timeout_s"]["requested"] == 100000
    many = "".join(f"import mod{i}\n" for i in range(600))  # ~600 findings: far more than 16 KiB of JSON
    api.write(job["id"], "a.py", many)
    result = lint(api, job)
    ruff = linter(result, "ruff")
    assert ruff["error"] is None and result["status"] == "failed"
    assert ruff["new_count"] == 600 and ruff["output_truncated"] and len(ruff["output"]) <= 16 * 1024
    assert result["clamped"]["lint_timeout_s"] == job["limits"]["clamped"]["lint_timeout_s"]


def test_a_path_that_does_not_exist_is_404(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "repo", {"a.py": "X = 1\n"})
    job = make_job(clone_url=url, language="python")
    api.error(api.post(f"/v1/jobs/{job['id']}/lint", {"paths": ["a.py", "nope.py"]}), 404, "file_not_found")
    assert lint(api, job, paths=["a.py"])["status"] == "passed"


def big_script() -> str:
    """~4,000 lines whose data-flow analysis needs more than 1 GiB of shellcheck's memory."""
    lines = ["#!/usr/bin/env bash"]
    i = 0
    while len(lines) < 4000:
        i += 1
        lines += [
            f'if [ "$1" = {i} ]; then',
            f'  V{i % 400}="$2"',
            f"  W=$((W + {i}))",
            "else",
            f'  case $3 in a{i}) V{(i * 7) % 400}=x ;; *) echo "$V{(i * 3) % 400}" $W ;; esac',
            "fi",
            f'[ -n "$V{i % 400}" ] && echo $V{(i + 1) % 400}',
        ]
    return "\n".join(lines) + "\n"


def test_shellcheck_on_a_big_script_is_not_oom_killed_at_the_default(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    url = make_repo(tmp_path / "repo", {"big.sh": "#!/bin/sh\n"})
    job = make_job(clone_url=url, language="shell")  # the job's default memory is 1 GiB
    api.write(job["id"], "big.sh", big_script())
    run = linter(lint(api, job), "shellcheck")
    assert not run["oom_killed"] and run["error"] is None
    assert run["new_count"] > 1000


LEFTOVER_PLUGIN = """import os, subprocess, sys


def _sleeping():
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and open(f"/proc/{p}/cmdline", "rb").read().startswith(b"sleep\\x00300"):
                return True
        except OSError:
            pass
    return False


def register(linter):
    seen = os.path.exists("/tmp/leftover") or _sleeping()
    print("LEFTOVER-SEEN" if seen else "FRESH-BOX", file=sys.stderr)
    open("/tmp/leftover", "w").write("x")
    subprocess.Popen(["sleep", "300"], start_new_session=True, env={})  # no exec marker: escapes it
"""


def test_linter_box_is_reused_and_reset_between_runs(
    api: Api, make_job: JobFactory, tmp_path: Path, docker_client: Any
) -> None:
    files = {
        ".pylintrc": "[MAIN]\nload-plugins=leftover\n",
        "leftover.py": LEFTOVER_PLUGIN,
        "m.py": "X = 1\n",
    }
    job = make_job(clone_url=make_repo(tmp_path / "repo", files), language="python")
    outputs = []
    for n in (2, 3, 4):
        api.write(job["id"], "m.py", f"X = {n}\n")
        outputs.append(linter(lint(api, job), "pylint")["output"])
    assert all("FRESH-BOX" in o and "LEFTOVER-SEEN" not in o for o in outputs), outputs
    boxes = docker_client.containers.list(
        all=True, filters={"label": ["dockyard.lint=box", f"dockyard.job={job['id']}"]}
    )
    assert len(boxes) == 1  # one box for the three runs (and the tool probe)
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert docker_client.containers.list(all=True, filters={"label": f"dockyard.job={job['id']}"}) == []
    assert [v for v in docker_client.volumes.list() if job["id"] in v.name] == []


def test_base_run_happens_once_per_file_and_all_files_runs_no_base(
    api: Api, auditor_api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    url = make_repo(
        tmp_path / "repo",
        {"ruff.toml": "[lint]\nselect = ['F']\n", "a.py": "import os\n", "b.py": "import re\n"},
    )
    job = make_job(clone_url=url, language="python")
    api.write(job["id"], "a.py", "import sys\nimport os\n")

    def base_runs() -> int:
        r = auditor_api.get("/v1/audit", params={"limit": 1000, "job_id": job["id"]})
        return sum(
            1
            for rec in r.json()["records"]
            if rec["action"] == "lint" and rec["details"].get("at") == "base_sha"
        )

    first = linter(lint(api, job), "ruff")
    assert diags(first) == {("a.py", 1, "F401", True), ("a.py", 2, "F401", False)} and base_runs() == 1
    again = linter(lint(api, job), "ruff")
    assert diags(again) == diags(first) and again["base_checked"] and base_runs() == 1  # reused
    everything = linter(lint(api, job, all_files=True), "ruff")
    # b.py is unchanged: its finding is old without a run at base; a.py's base result is reused
    assert ("b.py", 1, "F401", False) in diags(everything) and base_runs() == 1


def test_eslintrc_repo_and_the_repos_ignores(api: Api, make_job: JobFactory, tmp_path: Path) -> None:
    rc = json.dumps(
        {
            "root": True,
            "extends": "eslint:recommended",
            "parserOptions": {"ecmaVersion": 2022},
            "ignorePatterns": ["dist/"],
        }
    )
    url = make_repo(
        tmp_path / "repo", {".eslintrc.json": rc, "a.js": "var a = 1;\nconsole.log(a);\n", "dist/b.js": "x\n"}
    )
    job = make_job(clone_url=url, language="node")
    api.write(job["id"], "a.js", "var a = 1;\nconsole.log(a);\nvar unused = 2;\n")
    api.write(job["id"], "dist/b.js", "var alsoUnused = 3;\n")  # the repo ignores dist/: not a finding
    result = lint(api, job)
    run = linter(result, "eslint-legacy")
    assert run["error"] is None and run["tool_source"] == "image" and run["version"].startswith("v9.")
    assert {(d["path"], d["line"], d["code"], d["new"]) for d in run["diagnostics"]} == {
        ("a.js", 2, "no-undef", False),  # `console` without an env: the repo's old debt
        ("a.js", 3, "no-unused-vars", True),
    }
    assert '"source"' not in run["output"]  # the lean formatter: no embedded file sources
    ref = write_tree(
        tmp_path / "native", {".eslintrc.json": rc, "a.js": "var a = 1;\nconsole.log(a);\nvar unused = 2;\n"}
    )
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            "ESLINT_USE_FLAT_CONFIG=false",
            "-v",
            f"{ref}:/w:ro",
            "-w",
            "/w",
            image_tag(api, "node"),
            "eslint",
            "--format",
            "json",
            "a.js",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    native_found = {(m["line"], m["ruleId"]) for f in json.loads(out) for m in f["messages"]}
    assert native_found == {(d["line"], d["code"]) for d in run["diagnostics"]}


def test_go_vet_without_the_modules_says_what_is_missing(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    gomod = "module example.com/m\n\ngo 1.21\n\nrequire github.com/google/uuid v1.6.0\n"
    main = 'package main\n\nimport "github.com/google/uuid"\n\nfunc main() { println(uuid.NewString()) }\n'
    url = make_repo(tmp_path / "repo", {"go.mod": gomod, "main.go": main})
    job = make_job(clone_url=url, language="go")
    api.write(job["id"], "main.go", main + "\nfunc helper() {}\n")
    result = lint(api, job)
    vet = linter(result, "go-vet")
    assert result["status"] == "error" and vet["tool_source"] == "image", vet
    assert "no dependency environment" in vet["error"] and vet["version"].startswith("go version go1.")


def test_repo_pinned_to_eslint_8_lints_with_its_own_eslint_8(
    api: Api, make_job: JobFactory, tmp_path: Path
) -> None:
    """The job's environment (fetched from the registry, scripts off) holds the repo's pinned
    eslint 8 and its `.eslintrc`: lint runs THAT eslint, says so, and judges new vs base with it."""
    pkg = json.dumps({"name": "x", "private": True, "devDependencies": {"eslint": "8.57.0"}})
    rc = json.dumps(
        {
            "root": True,
            "extends": "eslint:recommended",
            "parserOptions": {"ecmaVersion": 2022, "sourceType": "module"},
        }
    )
    url = make_repo(
        tmp_path / "repo",
        {"package.json": pkg, ".eslintrc.json": rc, "a.js": "export const a = 1;\nconst old = 2;\n"},
    )
    job = make_job(clone_url=url, language="node")
    api.write(job["id"], "a.js", "export const a = 1;\nconst old = 2;\nconst fresh = 3;\n")
    result = lint(api, job)
    run = linter(result, "eslint-legacy")  # the .eslintrc (eslint 8) table, not the image's eslint 9
    assert run["tool_source"] == "repo" and run["version"].lstrip("v").startswith("8.57"), run
    assert run["command"][0] == "/env/node_modules/.bin/eslint"
    found = {(d["line"], d["code"], d["new"]) for d in run["diagnostics"]}
    assert found == {(2, "no-unused-vars", False), (3, "no-unused-vars", True)}, found
    assert result["status"] == "failed"
