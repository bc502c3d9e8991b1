import pytest

from service.errors import InvalidRequest
from service.lint.detect import select
from service.lint.runner import expand
from service.settings import ImagesConfig

CFG = ImagesConfig.model_validate(
    {
        "default_language": "generic",
        "limits": {
            "defaults": {"memory_mb": 512, "cpus": 1, "pids": 128, "disk_mb": 512, "tool_timeout_s": 30},
            "maxima": {"memory_mb": 1024, "cpus": 2, "pids": 256, "disk_mb": 1024, "tool_timeout_s": 60},
        },
        "images": {"base": {"context": "base"}, "python": {"context": "python", "parent": "base"}},
        "languages": {
            "generic": {"image": "base"},
            "python": {
                "image": "python",
                "detect": ["*.py"],
                "linters": {
                    "ruff": {
                        "command": ["ruff", "check", "{files}"],
                        "parser": "ruff_json",
                        "files": ["*.py"],
                        "enabled_by": ["ruff.toml", "pyproject.toml:[tool.ruff]"],
                        "default": True,
                    },
                    "flake8": {
                        "command": ["flake8", "{files}"],
                        "parser": "flake8",
                        "files": ["*.py"],
                        "enabled_by": [".flake8", "setup.cfg:[flake8]", "tox.ini:[flake8]"],
                    },
                },
            },
        },
    }
)


def names(picks):  # type: ignore[no-untyped-def]
    return [(p.name, p.rule) for p in picks]


def test_default_when_repo_has_no_config() -> None:
    picks, _ = select(CFG, root_files={"a.py"}, texts={}, targets=["a.py", "README.md"], requested=None)
    assert names(picks) == [("ruff", "default for python: the repository configures no python linter")]
    assert picks[0].files == ["a.py"]


def test_repo_config_selects_and_says_why() -> None:
    texts = {
        "setup.cfg": "[metadata]\nname = x\n[flake8]\nmax-line-length = 100\n",
        "pyproject.toml": "[tool.ruff.lint]\nselect = ['E']\n",
    }
    picks, _ = select(
        CFG, root_files={"setup.cfg", "pyproject.toml"}, texts=texts, targets=["src/a.py"], requested=None
    )
    assert names(picks) == [
        ("ruff", "config: pyproject.toml [tool.ruff]"),
        ("flake8", "config: setup.cfg [flake8]"),
    ]


def test_section_must_be_present() -> None:
    picks, _ = select(
        CFG, root_files={"setup.cfg"}, texts={"setup.cfg": "[metadata]\n"}, targets=["a.py"], requested=None
    )
    assert names(picks)[0][0] == "ruff"  # setup.cfg without [flake8] does not enable flake8


def test_no_matching_files_means_no_run() -> None:
    picks, skips = select(CFG, root_files={".flake8"}, texts={}, targets=["docs/x.md"], requested=None)
    assert picks == [] and skips[0].name == "flake8"


def test_requested_unknown_linter() -> None:
    with pytest.raises(InvalidRequest, match="eslint"):
        select(CFG, root_files=set(), texts={}, targets=["a.py"], requested=["eslint"])


def test_expand_placeholders() -> None:
    assert expand(["vet", "{dirs}", "--", "{files}"], ["a.go", "pkg/b.go", "-x.go"]) == [
        "vet",
        ".",
        "./pkg",
        "--",
        "a.go",
        "pkg/b.go",
        "./-x.go",
    ]


# --- every language, shebangs, JSON keys, the linter's own scope (issue 11) ---------------------

from service.lint.detect import declares_scope, enabled, interpreter  # noqa: E402
from service.settings import load_images_config  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402

SHIPPED = load_images_config(REPO_ROOT / "sandbox-images" / "images.toml")


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("#!/usr/bin/env bash", "bash"),
        ("#!/bin/sh -e", "sh"),
        ("#!/usr/bin/env -S bash -eu", "bash"),
        ("#!/usr/bin/python3.11", "python"),
        ("echo hi", None),
        ("", None),
    ],
)
def test_interpreter_from_shebang(line: str, name: str | None) -> None:
    assert interpreter(line) == name


def test_extensionless_script_goes_to_its_interpreters_linter_and_unlinted_kinds_are_said() -> None:
    targets = ["bin/deploy", "a.py", "tool.rb", "lib/x.rb", "README.md", "Makefile", "run", "web.js"]
    picks, skips = select(
        SHIPPED,
        root_files=set(),
        texts={},
        targets=targets,
        requested=None,
        shebangs={"bin/deploy": "bash", "run": "ruby"},
    )
    files = {p.name: p.files for p in picks}
    assert files == {"ruff": ["a.py"], "eslint-default": ["web.js"], "shellcheck": ["bin/deploy"]}
    reasons = {s.name: s.reason for s in skips}
    assert reasons == {
        "*.rb": "no linter configured for *.rb (2 files)",
        "ruby scripts": "no linter configured for ruby scripts (1 file)",
    }  # README.md (docs) and Makefile (no shebang) are not code anyone expects linted


def test_xo_is_enabled_by_a_package_json_key_and_replaces_the_eslint_default() -> None:
    pkg = '{"name": "x", "devDependencies": {"xo": "^0.58.0"}}'
    picks, _ = select(
        SHIPPED, root_files={"package.json"}, texts={"package.json": pkg}, targets=["i.js"], requested=None
    )
    assert [(p.name, p.rule) for p in picks] == [("xo", "config: package.json devDependencies.xo")]
    plain, _ = select(
        SHIPPED, root_files={"package.json"}, texts={"package.json": "{}"}, targets=["i.js"], requested=None
    )
    assert [p.name for p in plain] == ["eslint-default"]


@pytest.mark.parametrize(
    ("name", "text", "scoped"),
    [
        ("mypy.ini", "[mypy]\nfiles = src\n", True),
        ("mypy.ini", "[mypy]\nstrict = true\n[mypy-files.*]\nignore_errors = true\n", False),
        ("pyproject.toml", "[tool.mypy]\nfiles = ['src']\n", True),
        ("pyproject.toml", "[tool.mypy]\nstrict = true\n[tool.other]\nfiles = 1\n", False),
        ("setup.cfg", "[metadata]\nname = x\n[mypy]\nfiles=pkg\n", True),
    ],
)
def test_mypy_scope_is_the_repos_files_setting(name: str, text: str, scoped: bool) -> None:
    spec = SHIPPED.languages["python"].linters["mypy"]
    hit = enabled(spec, {name}, {name: text})
    assert hit is not None and declares_scope(spec, hit, {name: text}) is scoped
