"""The wheel is a working, NON-editable install: it carries `sandbox-images` (images.toml and every
image's build context, as `service/sandbox_images`), so an installed `dockyard` outside the checkout
finds its ops file by default and computes the same image tags the checkout builds; its metadata
states the license and uses ranges, with the bot's model SDK as the `bot` extra.

The wheel is built offline (no build isolation: hatchling comes with the test extra) and installed
with `--no-deps` into a fresh venv that sees the shared site-packages for the dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

from bot import _entry
from service.images import resolve_images
from service.settings import REPO_ROOT, Settings, load_images_config

pytestmark = pytest.mark.timeout(300)

PROBE = """
import json, shutil, sys
import service
from service.images import resolve_images
from service.settings import Settings, load_images_config
s = Settings(api_tokens="t" * 20 + ":bot", base_image=None)
cfg = load_images_config(s.images_config)
tags = {n: i.tag for n, i in resolve_images(cfg, s.images_config, s).items()}
print(json.dumps({"service": service.__file__, "images_config": str(s.images_config), "tags": tags,
                  "dockyard": shutil.which("dockyard"), "prefix": sys.prefix}))
"""


def _clean_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "PYTHON"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=240,
    )
    [whl] = out.glob("dockyard-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(env_dir)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    elsewhere = root / "cwd"  # not the checkout: nothing there stands in for the installed package
    elsewhere.mkdir()
    probe = subprocess.run(
        [str(bin_dir / "python"), "-c", PROBE], cwd=elsewhere, env=_clean_env(bin_dir),
        capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    return {"bin": bin_dir, "cwd": elsewhere, **json.loads(probe.stdout)}


def test_the_wheel_carries_every_file_of_sandbox_images(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    src = REPO_ROOT / "sandbox-images"
    expected = {
        "service/sandbox_images/" + p.relative_to(src).as_posix()
        for p in src.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "service/sandbox_images/images.toml" in expected
    assert sorted(expected - names) == []
    assert "service/console/templates/base.html" in names and "bot/__main__.py" in names


def test_the_metadata_states_the_license_and_uses_ranges(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in z.namelist())
    assert meta["License-Expression"] == "Apache-2.0"
    requires = meta.get_all("Requires-Dist") or []
    assert [r for r in requires if "==" in r.split(";")[0]] == [], "exact pins: use a range"
    service_deps = [r for r in requires if "extra ==" not in r]
    assert not [r for r in service_deps if r.startswith("anthropic")], "the model SDK is the bot extra's"
    assert any(r.startswith("anthropic") and "extra == 'bot'" in r for r in requires)
    assert any(r.startswith("githubkit") for r in service_deps)
    assert any(r.startswith("hishel<2") for r in service_deps)  # githubkit 0.16 breaks with hishel 2


def test_an_installed_wheel_finds_images_toml_outside_the_checkout(installed: dict[str, Any]) -> None:
    prefix = Path(installed["prefix"])
    assert Path(installed["service"]).is_relative_to(prefix), installed["service"]
    config = Path(installed["images_config"])
    assert config.is_relative_to(prefix) and not config.is_relative_to(REPO_ROOT), config
    assert config.parts[-3:] == ("service", "sandbox_images", "images.toml")
    # The same images the checkout builds (`dockyard images build` there): same content-hash tags.
    s = Settings(api_tokens="t" * 20 + ":bot", base_image=None)
    checkout = REPO_ROOT / "sandbox-images" / "images.toml"
    ours = {n: i.tag for n, i in resolve_images(load_images_config(checkout), checkout, s).items()}
    assert installed["tags"] == ours


def test_the_installed_console_script_runs(installed: dict[str, Any]) -> None:
    assert installed["dockyard"] is not None and Path(installed["dockyard"]).parent == installed["bin"]
    r = subprocess.run(
        [installed["dockyard"], "--help"], cwd=installed["cwd"], env=_clean_env(installed["bin"]),
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_dockyard_bot_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_entry, "BOT_EXTRA_MODULES", ("anthropic", "dockyard_no_such_module"))
    assert _entry.main(["serve"]) == 2
    assert "pip install 'dockyard[bot]'" in capsys.readouterr().err


def test_the_changelog_has_this_version_and_the_license_is_the_stated_one() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert f"\n## [{project['version']}] - " in changelog, "CHANGELOG.md: add an entry for this version"
    assert "## [Unreleased]" in changelog
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text().splitlines()[1]
