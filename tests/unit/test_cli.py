import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    r = run("serve", DOCKYARD_STATE_DIR=str(tmp_path))
    assert r.returncode == 2
    assert "DOCKYARD_API_TOKENS" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_names_a_broken_images_config(tmp_path: Path) -> None:
    bad = tmp_path / "images.toml"
    bad.write_text("default_language = 'generic'\n[limits\n")
    r = run(
        "serve",
        DOCKYARD_API_TOKENS="a" * 16 + ":bot",
        DOCKYARD_IMAGES_CONFIG=str(bad),
        DOCKYARD_STATE_DIR=str(tmp_path),
    )
    assert r.returncode == 2
    assert str(bad) in r.stderr and "not valid TOML" in r.stderr
