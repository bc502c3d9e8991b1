import os
import stat
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from service.settings import Settings

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


# --- version, help, settings in --help ------------------------------------------------------------


def _no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr


def test_version_comes_from_the_package_metadata() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"dockyard {version('dockyard')}"


def test_every_setting_says_what_it_is() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_serve_help_lists_its_options_and_every_environment_variable() -> None:
    r = run("serve", "--help")
    assert r.returncode == 0
    assert "--port" in r.stdout and "--host" in r.stdout
    for name, info in Settings.model_fields.items():
        line = next(
            (ln for ln in r.stdout.splitlines() if ln.split()[:1] == [f"DOCKYARD_{name.upper()}"]), None
        )
        assert line is not None, f"DOCKYARD_{name.upper()} missing from `serve --help`"
        assert str(info.description).split()[0] in line


def test_subcommand_help_lists_the_environment_it_reads() -> None:
    for args, names in (
        (("token", "new"), ("DOCKYARD_STATE_DIR", "DOCKYARD_API_TOKENS_FILE")),
        (("images", "list"), ("DOCKYARD_IMAGES_CONFIG",)),
        (("audit", "verify"), ("DOCKYARD_STATE_DIR", "DOCKYARD_AUDIT_KEY_FILE")),
    ):
        r = run(*args, "--help")
        assert r.returncode == 0, r.stderr
        for name in names:
            assert name in r.stdout, (args, name)


# --- token new ----------------------------------------------------------------------------------


def test_token_new_prints_it_once_and_serve_reads_the_file(tmp_path: Path) -> None:
    r = run("token", "new", "--role", "bot", "--tenant", "team-a", DOCKYARD_STATE_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) >= 40 and ":" not in token and "\n" not in token
    assert token not in r.stderr and "team-a" in r.stderr and "only this once" in r.stderr
    path = tmp_path / "tokens"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"{token}:bot:team-a\n"
    second = run("token", "new", "--role", "auditor", DOCKYARD_STATE_DIR=str(tmp_path)).stdout.strip()
    assert second != token
    tokens = Settings(state_dir=tmp_path, api_tokens=None, api_tokens_file=None).tokens()
    assert tokens[token].role == "bot" and tokens[token].tenant == "team-a"
    assert tokens[second].role == "auditor"


def test_token_new_tightens_an_existing_file_and_honours_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "tokens"
    path.parent.mkdir()
    path.write_text("# ops' tokens\n")
    path.chmod(0o644)
    r = run("token", "new", "--role", "admin", "--file", str(path), DOCKYARD_STATE_DIR=str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# ops' tokens\n")
    assert f"DOCKYARD_API_TOKENS_FILE={path}" in r.stderr  # serve would not find it by itself
    assert not (tmp_path / "s" / "tokens").exists()


def test_token_new_no_file_only_prints(tmp_path: Path) -> None:
    r = run("token", "new", "--role", "bot", "--no-file", DOCKYARD_STATE_DIR=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip().startswith("dy_")
    assert not (tmp_path / "tokens").exists()


def test_token_new_refuses_a_bad_tenant_in_one_line(tmp_path: Path) -> None:
    r = run("token", "new", "--role", "bot", "--tenant", "no spaces", DOCKYARD_STATE_DIR=str(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("dockyard: --tenant") and len(r.stderr.strip().splitlines()) == 1
    _no_traceback(r)


def test_serve_without_tokens_says_how_to_make_one(tmp_path: Path) -> None:
    r = run("serve", DOCKYARD_STATE_DIR=str(tmp_path))
    assert r.returncode == 2 and "dockyard token new --role bot" in r.stderr
    _no_traceback(r)


# --- demo-repo ----------------------------------------------------------------------------------


def test_demo_repo_is_a_clonable_bare_repository(tmp_path: Path) -> None:
    from service.demo import FILES

    r = run("demo-repo", str(tmp_path / "git" / "calc.git"))
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    assert url == (tmp_path / "git" / "calc.git").as_uri()
    assert f"DOCKYARD_CLONE_FILE_ROOTS={tmp_path / 'git'}" in r.stderr
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", "-b", "main", url, str(checkout)], check=True, capture_output=True)
    for name, text in FILES.items():
        assert (checkout / name).read_text() == text
    config = (tmp_path / "git" / "calc.git" / "config").read_text()
    assert "bare = true" in config and "[remote" not in config
    again = run("demo-repo", str(tmp_path / "git" / "calc.git"))
    assert again.returncode == 0 and again.stdout.strip() == url and "kept" in again.stderr


def test_demo_repo_has_a_lint_finding_and_a_failing_test(tmp_path: Path) -> None:
    from service.demo import FILES

    assert "import os" in FILES["calc.py"]  # ruff F401
    namespace: dict[str, object] = {}
    exec(compile(FILES["calc.py"], "calc.py", "exec"), namespace)
    divide = namespace["divide"]
    assert callable(divide) and divide(6, 3) != 2  # tests/test_calc.py::test_divide fails
    assert "divide(6, 3) == 2" in FILES["tests/test_calc.py"]


def test_demo_repo_will_not_replace_a_folder_that_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    for extra in ((), ("--force",)):
        r = run("demo-repo", str(tmp_path / "precious"), *extra)
        assert r.returncode == 1 and r.stderr.startswith("dockyard: demo repository:")
        _no_traceback(r)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


# --- expected failures: one line, no traceback ------------------------------------------------------


def test_a_bad_setting_names_the_variable(tmp_path: Path) -> None:
    r = run("serve", DOCKYARD_PORT="eighty", DOCKYARD_STATE_DIR=str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.startswith("dockyard: configuration error: DOCKYARD_PORT='eighty'")
    _no_traceback(r)


def test_images_list_with_the_engine_away(tmp_path: Path) -> None:
    r = run("images", "list", DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("dockyard: the Docker engine did not answer")
    assert len(r.stderr.strip().splitlines()) == 1
    _no_traceback(r)


def test_audit_on_a_missing_state_dir(tmp_path: Path) -> None:
    for args in (("audit", "verify"), ("audit", "export")):
        r = run(*args, DOCKYARD_STATE_DIR=str(tmp_path / "nothing-here"))
        assert r.returncode == 2 and r.stderr.startswith("dockyard: no dockyard database at")
        _no_traceback(r)


def test_serve_on_a_state_dir_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    r = run(
        "serve",
        DOCKYARD_API_TOKENS="dy_" + "a" * 32 + ":bot",
        DOCKYARD_STATE_DIR=str(tmp_path / "a-file" / "state"),
        DOCKYARD_PORT="0",
    )
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith("dockyard: cannot start: [Errno 20] Not a directory")
    _no_traceback(r)


def test_serve_warns_about_a_tokens_file_others_can_read(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("dy_" + "b" * 32 + ":bot\n")
    tokens.chmod(0o644)
    bad = tmp_path / "images.toml"
    bad.write_text("[limits\n")  # stops the start right after the tokens are read
    r = run("serve", DOCKYARD_STATE_DIR=str(tmp_path), DOCKYARD_IMAGES_CONFIG=str(bad))
    assert f"dockyard: warning: the tokens file {tokens} is readable by others (mode 644)" in r.stderr
