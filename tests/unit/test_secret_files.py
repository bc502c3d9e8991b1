"""Secrets as files: every secret setting of the service and the bot has a `_FILE` variant (so
compose can mount it under /run/secrets instead of putting it in the environment, where
`docker inspect` shows it), declared once, and neither a secret nor its file shows in /v1/config."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from bot.settings import BotSettings
from service.api.health import _config_view
from service.app_keys import JOBS
from service.settings import ConfigError, Settings, secret
from tests.fakes.jobs import harness

TOKEN = "tok-" + "s" * 28
PEM = "-----BEGIN PRIVATE KEY-----\nMIIsecretpem\n-----END PRIVATE KEY-----\n"


def test_the_service_declares_its_secrets_with_file_variants() -> None:
    names = Settings.secret_names()
    assert names["api_tokens"] == "api_tokens_file"
    assert names["github_app_private_key"] == "github_app_private_key_file"
    # secrets that only exist as files
    assert names["audit_key_file"] is None and names["siem_http_token_file"] is None
    for value, file in names.items():
        assert file is None or file in Settings.model_fields, value


def test_each_secret_is_read_from_its_FILE_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, file_field in Settings.secret_names().items():
        if file_field is None:
            continue
        monkeypatch.delenv(Settings.env_name(name), raising=False)
        f = tmp_path / name
        f.write_text(f"{TOKEN}:bot\n" if name == "api_tokens" else PEM)
        monkeypatch.setenv(Settings.env_name(file_field), str(f))
    s = Settings()
    assert s.secret_value("github_app_private_key") == PEM
    assert s.github_private_key() == PEM and s.github_configured() is False  # no app id: still off
    assert set(s.tokens()) == {TOKEN}
    # read at call time: a rotated file is what the next read (a reload) sees
    (tmp_path / "github_app_private_key").write_text("rotated")
    assert s.secret_value("github_app_private_key") == "rotated"


def test_an_unreadable_secret_file_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    s = Settings(github_app_private_key_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="DOCKYARD_GITHUB_APP_PRIVATE_KEY_FILE: cannot read"):
        s.github_private_key()


def test_a_secret_without_a_file_variant_is_refused() -> None:
    class Broken(Settings):
        webhook_secret: str | None = secret("a secret someone forgot to give a file variant")

    with pytest.raises(TypeError, match=r"webhook_secret.*webhook_secret_file"):
        Broken.secret_names()


async def test_no_secret_and_no_secret_path_in_get_v1_config(tmp_path: Path) -> None:
    pem = PEM.replace("\n", "\\n")
    secrets = {"api_tokens": f"{TOKEN}:admin", "github_app_private_key": pem}
    async with harness(tmp_path / "state", tmp_path, **secrets) as h:
        view = _config_view(SimpleNamespace(app={JOBS: h.jobs}))  # type: ignore[arg-type]
        shown = json.dumps(view.model_dump(mode="json"))
    assert TOKEN not in shown and "MIIsecretpem" not in shown
    assert not Settings.hidden_fields() & set(view.settings)
    assert "github_app_id" in view.settings  # the rest is still there


def test_the_bot_reads_each_secret_from_its_FILE_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = BotSettings.secret_env_names()
    assert set(names.values()) == {"DOCKYARD_API_TOKEN", "ANTHROPIC_API_KEY", "DOCKYARD_BOT_TOKEN"}
    for env in names.values():
        monkeypatch.delenv(env, raising=False)
        (tmp_path / env).write_text(f"value-of-{env}\n")
        monkeypatch.setenv(f"{env}_FILE", str(tmp_path / env))
    monkeypatch.setenv("DOCKYARD_BOT_TOKEN", "from-the-env-wins")
    s = BotSettings()
    got: dict[str, Any] = {n: getattr(s, n).get_secret_value() for n in names}
    assert got == {
        "api_token": "value-of-DOCKYARD_API_TOKEN",
        "anthropic_api_key": "value-of-ANTHROPIC_API_KEY",
        "serve_token": "from-the-env-wins",
    }
    assert s.problems(serve=True) == []


def test_the_bot_names_an_unreadable_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY_FILE", str(tmp_path / "nope"))
    with pytest.raises(ValidationError, match="ANTHROPIC_API_KEY_FILE: cannot read"):
        BotSettings()
