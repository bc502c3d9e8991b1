"""The SDK's sync client is generated from the async one (sdk/scripts/generate_sync.py, the unasync
library): the checked-in `_sync.py` is exactly what the script writes, a hand edit is caught, and the
twin shims the generated code calls define the same names."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from dockyard_client import _async_compat, _sync_compat

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "sdk" / "scripts" / "generate_sync.py"
SYNC = ROOT / "sdk" / "dockyard_client" / "_sync.py"
COMMAND = "python sdk/scripts/generate_sync.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sync", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sync_client_is_what_the_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (
        f"sdk/dockyard_client/_sync.py is out of date with _async.py: run `{COMMAND}` and commit the "
        f"result (never edit _sync.py by hand)\n{done.stdout}{done.stderr}"
    )


def test_the_generated_file_says_so_and_from_what() -> None:
    first = SYNC.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# GENERATED from _async.py by"), first
    assert COMMAND in first


def test_a_hand_edit_of_the_sync_client_fails_the_check_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = _script()
    target = tmp_path / "_sync.py"
    monkeypatch.setattr(gen, "TARGET", target)
    assert gen.main([]) == 0  # writes it
    assert target.read_text(encoding="utf-8") == SYNC.read_text(encoding="utf-8")
    assert gen.main(["--check"]) == 0

    edited = target.read_text(encoding="utf-8").replace("return Job(", "return  Job(", 1)
    assert edited != target.read_text(encoding="utf-8")
    target.write_text(edited, encoding="utf-8")
    capsys.readouterr()
    assert gen.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert "-            return  Job(" in out and "+            return Job(" in out  # the diff
    assert f"run `{COMMAND}`" in err
    assert target.read_text(encoding="utf-8") == edited  # --check writes nothing


def test_the_generated_code_is_sync_and_keeps_the_public_names() -> None:
    tree = ast.parse(_script().generate())
    asynchronous = (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)
    assert not [n for n in ast.walk(tree) if isinstance(n, asynchronous)]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    leftovers = {n for n in names if n.startswith(("Async", "Sync", "async", "aiter", "aread", "aclose"))}
    assert not leftovers
    assert "dockyard_client._sync_compat" in names and "asyncio" not in names
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == {"Dockyard", "Jobs", "Job", "Files", "Audit", "Images", "Config"}


def test_the_flavour_shims_are_twins() -> None:
    assert _async_compat.__all__ == _sync_compat.__all__
    for name in _async_compat.__all__:
        assert hasattr(_async_compat, name) and hasattr(_sync_compat, name), name
    assert (_async_compat.FLAVOUR, _sync_compat.FLAVOUR) == ("async", "sync")
