"""compose.yaml passes no secret as an environment value (`docker inspect` would show it): each
secret setting reaches the service as a compose secret file under /run/secrets, through its
`_FILE` variant, and every secret file setting is wired or documented there. (tests/e2e/test_compose.py
runs the stack and checks `docker inspect` itself.)"""

from __future__ import annotations

from typing import Any

import yaml

from bot.settings import BotSettings
from service.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "compose.yaml"
# Every secret's environment name, the service's and the bot's: none may be an environment value.
SECRET_VALUES = {Settings.env_name(n) for n, f in Settings.secret_names().items() if f is not None} | set(
    BotSettings.secret_env_names().values()
)


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _service(name: str = "dockyard") -> tuple[dict[str, Any], dict[str, Any]]:
    doc = _doc()
    return doc["services"][name], doc.get("secrets") or {}


def _env(service: dict[str, Any]) -> dict[str, str | None]:
    entries = service.get("environment") or []
    if isinstance(entries, dict):
        return {k: None if v is None else str(v) for k, v in entries.items()}
    return {e.split("=", 1)[0]: (e.split("=", 1)[1] if "=" in e else None) for e in entries}


def test_no_secret_value_is_passed_as_environment() -> None:
    assert {"DOCKYARD_API_TOKENS", "ANTHROPIC_API_KEY"} <= SECRET_VALUES
    for name, service in _doc()["services"].items():
        leaked = sorted(SECRET_VALUES & set(_env(service)))
        assert leaked == [], f"services.{name}: pass {leaked} as files (_FILE + a compose secret)"


def test_every_FILE_variable_points_at_a_mounted_compose_secret() -> None:
    for service_name in _doc()["services"]:
        service, declared = _service(service_name)
        mounted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []}
        wired = {k: v for k, v in _env(service).items() if k.endswith("_FILE")}
        for var, value in wired.items():
            assert value is not None and value.startswith("/run/secrets/"), var
            name = value.removeprefix("/run/secrets/")
            assert name in mounted and "file" in declared[name], f"{var}: {name} is not a mounted secret"
    assert "DOCKYARD_API_TOKENS_FILE" in _env(_service()[0])  # the service refuses to start without tokens


def test_the_bot_service_gets_each_of_its_secrets_as_a_file() -> None:
    env = _env(_service("bot")[0])
    for var in BotSettings.secret_env_names().values():
        assert (env.get(f"{var}_FILE") or "").startswith("/run/secrets/"), var


def test_every_secret_file_setting_is_wired_or_documented() -> None:
    text = COMPOSE.read_text()
    for name, file_field in Settings.secret_names().items():
        var = Settings.env_name(file_field or name)
        assert f"{var}=/run/secrets/" in text, f"{var} is neither wired nor shown (commented) in compose.yaml"
