"""Which command runs a repository's tests and why (`rule`), how `paths` and re-runs narrow it."""

from __future__ import annotations

import pytest

from service.errors import Forbidden, PathOutsideWorkspace
from service.settings import REPO_ROOT, ImagesConfig, load_images_config
from service.tests_run.detect import REPORT, Selection, Skip, check_paths, narrow, rerun_argv, select


@pytest.fixture(scope="module")
def cfg() -> ImagesConfig:
    return load_images_config(REPO_ROOT / "sandbox-images" / "images.toml")


def pick(
    cfg: ImagesConfig, language: str, files: dict[str, str], command: list[str] | None = None
) -> Selection:
    root = {f for f in files if "/" not in f}
    got = select(cfg, language, root_files=root, tree=sorted(files), texts=files, command=command)
    assert isinstance(got, Selection), got
    return got


@pytest.mark.parametrize(
    ("files", "rule"),
    [
        ({"pytest.ini": "[pytest]\n"}, "pytest.ini"),
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"},
            "pyproject.toml:[tool.pytest.ini_options]",
        ),
        ({"tox.ini": "[tox]\n\n[pytest]\nminversion = 6\n"}, "tox.ini:[pytest]"),
        ({"setup.cfg": "[metadata]\nname = x\n\n[tool:pytest]\n"}, "setup.cfg:[tool:pytest]"),
        ({"tests/test_a.py": "", "pyproject.toml": "[project]\nname = 'x'\n"}, "tests/ with test_*.py"),
        ({"test_a.py": ""}, "test_*.py at the root"),
        ({"src/deep/test_hidden.py": "", "setup.cfg": "[flake8]\n"}, "ops default (images.toml)"),
    ],
)
def test_python_rules(cfg: ImagesConfig, files: dict[str, str], rule: str) -> None:
    sel = pick(cfg, "python", files)
    assert sel.rule == rule and sel.parser == "junit_xml"
    assert sel.command[:3] == ["python", "-m", "pytest"] and f"--junitxml={REPORT}" in sel.command


def test_node_rules(cfg: ImagesConfig) -> None:
    plain = pick(cfg, "node", {"package.json": '{"scripts": {"test": "node --test test/"}}'})
    assert plain.command == ["node", "--test", "--test-reporter=tap", "test/"]
    assert (plain.rule, plain.image) == ("package.json scripts.test", "node")
    jest = pick(cfg, "node", {"package.json": '{"scripts": {"test": "jest --ci && echo done"}}'})
    assert jest.command == ["npm", "test", "--silent"] and jest.image == "env-node"
    assert jest.rule == "package.json scripts.test (npm test)"
    npm_init = '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'
    default = pick(cfg, "node", {"package.json": npm_init})
    assert default.rule == "ops default (images.toml)" and default.command[:2] == ["node", "--test"]


def test_go_and_unsupported_languages(cfg: ImagesConfig) -> None:
    go = pick(cfg, "go", {"go.mod": "module x\n"})
    assert (go.rule, go.command, go.parser) == ("go.mod", ["go", "test", "-json", "./..."], "go_json")
    for language in ("shell", "generic", "cobol"):
        got = select(cfg, language, root_files=set(), tree=[], texts={}, command=None)
        assert isinstance(got, Skip) and "not configured" in got.reason


def test_custom_command_only_where_ops_allow_it(cfg: ImagesConfig) -> None:
    with pytest.raises(Forbidden, match="allow_custom_command"):
        select(cfg, "python", root_files=set(), tree=[], texts={}, command=["make", "test"])
    raw = cfg.model_dump()
    raw["languages"]["python"]["tests"]["allow_custom_command"] = True
    allowed = ImagesConfig.model_validate(raw)
    sel = pick(allowed, "python", {}, command=["make", "test"])
    assert (sel.command, sel.rule) == (["make", "test"], "request command")


def test_paths_and_reruns_narrow_the_run(cfg: ImagesConfig) -> None:
    py = pick(cfg, "python", {"pytest.ini": ""})
    assert narrow(py, ["tests/test_a.py::test_x"])[-1] == "tests/test_a.py::test_x"
    rerun = rerun_argv(py, narrow(py, ["tests"]), ["tests/test_a.py::test_x", "(exit status)"])
    assert rerun == [*py.command, "tests/test_a.py::test_x"]
    go = pick(cfg, "go", {"go.mod": ""})
    assert narrow(go, ["pkg/calc", "./cmd/..."]) == ["go", "test", "-json", "./pkg/calc", "./cmd/..."]
    again = rerun_argv(go, go.command, ["ex.com/m::TestMul/neg", "ex.com/m::TestAdd", "ex.com/x::(package)"])
    assert again == ["go", "test", "-json", "./...", "-run", "^(TestAdd|TestMul)$"]
    assert check_paths(["./tests/a.py::T::x", "pkg"]) == ["tests/a.py::T::x", "pkg"]
    for bad in ("../x", "/etc/passwd", ".git/config", "-k"):
        with pytest.raises(PathOutsideWorkspace):
            check_paths([bad])
