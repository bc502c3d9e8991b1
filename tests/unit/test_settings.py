from pathlib import Path

import pytest

from service.settings import ConfigError, Settings, load_images_config, token_fingerprint

REPO = Path(__file__).resolve().parents[2]


def test_tokens_parse_roles_and_tenants() -> None:
    s = Settings(
        api_tokens="aaaaaaaaaaaaaaaa:bot, bbbbbbbbbbbbbbbb:auditor, cccccccccccccccc:bot:team-a, "
        "dddd:dddddddddddd:bot:team-a"
    )
    tokens = s.tokens()
    assert {t: i.role for t, i in tokens.items()} == {
        "aaaaaaaaaaaaaaaa": "bot",
        "bbbbbbbbbbbbbbbb": "auditor",
        "cccccccccccccccc": "bot",
        "dddd:dddddddddddd": "bot",  # a colon inside the token is kept
    }
    # Two tokens naming the same tenant share it; a token without one is a tenant of its own.
    assert tokens["cccccccccccccccc"].tenant == tokens["dddd:dddddddddddd"].tenant == "team-a"
    assert tokens["aaaaaaaaaaaaaaaa"].tenant == f"bot-{token_fingerprint('aaaaaaaaaaaaaaaa')}"
    assert tokens["aaaaaaaaaaaaaaaa"].tenant != tokens["bbbbbbbbbbbbbbbb"].tenant


def test_protected_branches_and_prefix() -> None:
    s = Settings(protected_branches="main,release/*", branch_prefix="")
    assert s.branch_refusal("main") is not None
    assert s.branch_refusal("release/1.2") is not None
    assert s.branch_refusal("fix/bug-42") is None
    s = Settings(protected_branches="", branch_prefix="dockyard/")
    assert "must start with 'dockyard/'" in (s.branch_refusal("fix/bug-42") or "")
    assert s.branch_refusal("dockyard/fix-42") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "no API tokens configured"),
        ("", "no API tokens configured"),
        ("aaaaaaaaaaaaaaaa", "token:role"),
        ("aaaaaaaaaaaaaaaa:root", "unknown role 'root'"),
        ("short:bot", "at least 16 characters"),
        ("aaaaaaaaaaaaaaaa:bot:bad tenant!", "tenant 'bad tenant!'"),
    ],
)
def test_tokens_refuse_bad_config(value: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(api_tokens=value).tokens()


def test_tokens_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# ops tokens\ncccccccccccccccc:admin\n")
    assert {t: i.role for t, i in Settings(api_tokens_file=f).tokens().items()} == {
        "cccccccccccccccc": "admin"
    }


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_MAX_JOBS", "3")
    monkeypatch.setenv("DOCKYARD_PORT", "9999")
    s = Settings()
    assert (s.max_jobs, s.port) == (3, 9999)


def test_shipped_images_config_loads_and_clamps() -> None:
    cfg = load_images_config(REPO / "sandbox-images" / "images.toml")
    applied = cfg.clamp({"memory_mb": 10**9, "cpus": 0.5, "pids": None})
    assert applied.memory_mb == cfg.limits.maxima.memory_mb
    assert applied.cpus == 0.5
    assert applied.pids == cfg.limits.defaults.pids


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "base" / "Dockerfile").write_text("FROM scratch\n")
    p = tmp_path / "images.toml"
    p.write_text(text)
    return p


GOOD = """
default_language = "generic"
[limits]
nofile = 1024
tmp_mb = 64
log_max_mb = 10
[limits.defaults]
memory_mb = 1024
cpus = 1.0
pids = 256
disk_mb = 2048
tool_timeout_s = 30
[limits.maxima]
memory_mb = 8192
cpus = 2.0
pids = 1024
disk_mb = 8192
tool_timeout_s = 300
[images.base]
context = "base"
[languages.generic]
image = "base"
detect = []
"""


def test_config_good(tmp_path: Path) -> None:
    assert load_images_config(_write(tmp_path, GOOD)).default_language == "generic"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace('image = "base"', 'image = "nope"'), "languages.generic.image"),
        (lambda t: t.replace("memory_mb = 1024", "memory_mb = 99999"), "maxima"),
        (
            lambda t: t.replace('default_language = "generic"', 'default_language = "cobol"'),
            "default_language",
        ),
        (lambda t: t.replace("cpus = 1.0", "cpus = 'lots'"), "limits.defaults.cpus"),
        (lambda t: t.replace('context = "base"', 'context = "missing"'), "no Dockerfile"),
        (lambda t: t + "\n[images.extra]\ncontext = 'base'\ncolour = 'red'\n", "images.extra.colour"),
        (lambda t: t.replace("[limits]", "[limits"), "not valid TOML"),
        (
            lambda t: t + '[languages.generic.linters.x]\ncommand = ["x", "{file}"]\n'
            'parser = "flake8"\nfiles = ["*"]\n',
            "languages.generic.linters.x.command",
        ),
        (
            lambda t: t + '[languages.generic.linters.x]\ncommand = ["x"]\nparser = "pep8"\nfiles = ["*"]\n',
            "languages.generic.linters.x.parser",
        ),
        (
            lambda t: t + '[languages.generic.linters.x]\ncommand = ["x"]\nparser = "flake8"\nfiles = ["*"]\n'
            'image = "ghost"\n',
            "linters.x.image names unknown image",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, mutate(GOOD))
    with pytest.raises(ConfigError) as e:
        load_images_config(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DOCKYARD_IMAGES_CONFIG"):
        load_images_config(tmp_path / "nope.toml")


async def test_the_backend_is_chosen_by_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pydantic

    from service.sandbox import make_backend
    from service.sandbox.docker import DockerBackend

    assert Settings(state_dir=tmp_path).backend == "docker"
    monkeypatch.setenv("DOCKYARD_BACKEND", "kubernetes")
    with pytest.raises(pydantic.ValidationError, match="backend"):
        Settings(state_dir=tmp_path)  # not one we have: refused at start, never a late surprise
    monkeypatch.setenv("DOCKYARD_BACKEND", "docker")
    backend = make_backend(Settings(state_dir=tmp_path, job_exec_concurrency=3), instance="dy-x")
    try:
        assert isinstance(backend, DockerBackend)
        assert backend._job_exec_slots == 3 and backend._own_labels["dockyard.instance"] == "dy-x"
    finally:
        await backend.close()
