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
