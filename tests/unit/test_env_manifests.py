"""Manifests: what is collected from a checkout per ecosystem, and the environment key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.env.manifests import ManifestError, collect, read_confined


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_python_requirements_and_includes_inside_the_repo(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "-r reqs/base.txt\n-r ../outside.txt\nsix\n",
            "requirements-dev.txt": "-c constraints.txt\npytest\n",
            "constraints.txt": "pytest<9\n",
            "reqs/base.txt": "iniconfig\n",
            "notes.txt": "not a manifest\n",
            "pyproject.toml": "[project]\nname = 'x'\n",
        },
    )
    (tmp_path.parent / "outside.txt").write_text("evil\n")
    m = collect(tmp_path, "python")
    assert m is not None and m.ecosystem == "python"
    assert set(m.files) == {
        "requirements.txt",
        "requirements-dev.txt",
        "constraints.txt",
        "reqs/base.txt",
        "pyproject.toml",
    }


def test_a_lock_wins_over_requirements(tmp_path: Path) -> None:
    write(tmp_path, {"uv.lock": "version = 1\n", "poetry.lock": "", "requirements.txt": "six\n"})
    m = collect(tmp_path, "python")
    assert m is not None and set(m.files) == {"uv.lock"}
    (tmp_path / "uv.lock").unlink()
    m = collect(tmp_path, "python")
    assert m is not None and set(m.files) == {"poetry.lock"}


def test_node_lockfile_and_what_is_only_noted(tmp_path: Path) -> None:
    write(
        tmp_path, {"package.json": "{}", "package-lock.json": "{}", ".npmrc": "registry=x", "yarn.lock": ""}
    )
    m = collect(tmp_path, "node")
    assert m is not None
    assert set(m.files) == {"package.json", "package-lock.json"}  # .npmrc is never collected
    assert m.present == {".npmrc", "yarn.lock"} and m.unsupported is None


def test_yarn_only_is_unsupported_and_says_so(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": "{}", "yarn.lock": ""})
    m = collect(tmp_path, "node")
    assert m is not None and m.unsupported is not None and "yarn.lock" in m.unsupported


def test_go_and_languages_without_manifests(tmp_path: Path) -> None:
    assert collect(tmp_path, "go") is None
    write(tmp_path, {"go.mod": "module x\n", "go.sum": ""})
    m = collect(tmp_path, "go")
    assert m is not None and set(m.files) == {"go.mod", "go.sum"}
    assert collect(tmp_path, "shell") is None and collect(tmp_path, "generic") is None


def test_links_are_never_followed(tmp_path: Path) -> None:
    secret = tmp_path.parent / "host-secret"
    secret.write_text("root:x:0:0\n")
    os.symlink(secret, tmp_path / "requirements.txt")
    with pytest.raises(ManifestError):
        collect(tmp_path, "python")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path.parent, tmp_path / "up")
    with pytest.raises(ManifestError):
        read_confined(tmp_path, "up/host-secret")
    with pytest.raises(ManifestError):
        read_confined(tmp_path, "../host-secret")


def test_key_changes_with_every_input(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "six\n"})
    m = collect(tmp_path, "python")
    assert m is not None
    base = m.key("dockyard/python:aaa", "dockyard/env-python:bbb")
    assert base == m.key("dockyard/python:aaa", "dockyard/env-python:bbb")
    assert base != m.key("dockyard/python:ccc", "dockyard/env-python:bbb")
    assert base != m.key("dockyard/python:aaa", "dockyard/env-python:ddd")
    write(tmp_path, {"requirements.txt": "six==1.16.0\n"})
    m2 = collect(tmp_path, "python")
    assert m2 is not None and m2.key("dockyard/python:aaa", "dockyard/env-python:bbb") != base
