"""`dockyard demo-repo`: a local bare git repository holding a small real Python project to try
jobs on without GitHub: `calc.py` has a lint finding (an unused import) and a bug that a test
catches (`divide` multiplies), so read, lint, test, edit and diff all have something to show."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FILES: dict[str, str] = {
    "README.md": "# calc\n\nA tiny calculator: `divide()` multiplies (see tests/test_calc.py).\n",
    "pyproject.toml": (
        '[project]\nname = "calc"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n\n'
        "[tool.ruff]\nline-length = 100\n\n"
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "calc.py": (
        '"""A tiny calculator."""\n\nimport os\n\n\n'
        "def add(a: float, b: float) -> float:\n    return a + b\n\n\n"
        "def divide(a: float, b: float) -> float:\n    return a * b\n"
    ),
    "tests/test_calc.py": (
        "from calc import add, divide\n\n\n"
        "def test_add() -> None:\n    assert add(2, 3) == 5\n\n\n"
        "def test_divide() -> None:\n    assert divide(6, 3) == 2\n"
    ),
}

# A fixed identity and date: the demo's commit is the same on every machine.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "dockyard demo",
    "GIT_AUTHOR_EMAIL": "demo@dockyard.invalid",
    "GIT_COMMITTER_NAME": "dockyard demo",
    "GIT_COMMITTER_EMAIL": "demo@dockyard.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


class DemoRepoError(Exception):
    """The demo repository could not be made (a message fit to print)."""


@dataclass(frozen=True)
class DemoRepo:
    path: Path
    created: bool

    @property
    def clone_url(self) -> str:
        return self.path.as_uri()

    @property
    def file_root(self) -> Path:
        """The DOCKYARD_CLONE_FILE_ROOTS entry that lets the service clone it."""
        return self.path.parent


def _git(*args: str, cwd: Path) -> None:
    try:
        subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**os.environ, **_GIT_ENV},
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError as e:
        raise DemoRepoError("git is not installed (the service needs it too)") from e
    except subprocess.CalledProcessError as e:
        raise DemoRepoError(f"git {args[0]} failed: {e.stderr.strip() or e.returncode}") from e


def make_demo_repo(path: Path, *, force: bool = False) -> DemoRepo:
    """A bare repository at `path` (branch `main`, one commit); an existing one is kept unless `force`."""
    path = path.expanduser().resolve()
    if path.exists():
        if not force:
            if (path / "HEAD").is_file() and (path / "objects").is_dir():
                return DemoRepo(path, created=False)
            raise DemoRepoError(f"{path} exists and is not a git repository; pick another folder")
        if not (path / "HEAD").is_file():
            raise DemoRepoError(f"{path} is not a git repository: not replacing it")
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dockyard-demo-") as tmp:
        work = Path(tmp)
        for name, text in FILES.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        _git("init", "-q", "-b", "main", cwd=work)
        _git("add", "-A", cwd=work)
        _git("-c", "commit.gpgsign=false", "commit", "-q", "-m", "calc: add and divide", cwd=work)
        _git("clone", "-q", "--bare", "--no-hardlinks", str(work), str(path), cwd=work)
        _git("remote", "remove", "origin", cwd=path)  # nothing points at the temporary tree
    return DemoRepo(path, created=True)
