"""The bot's configuration: environment variables (or a `.env` file), read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "claude-sonnet-5-5"
# fields read only by `dockyard-bot serve`
_SERVE = ("serve_", "concurrency", "queue_max", "users", "allowed_roles", "webhook_hosts")


@dataclass(frozen=True)
class EnvVar:
    """One environment variable of the bot, as `--help` shows it."""

    name: str
    default: str
    description: str
    serve: bool = False  # only `dockyard-bot serve` reads it


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class BotSettings(BaseSettings):
    """Every knob of `dockyard-bot`. Field names are for code; the environment uses the names in
    `validation_alias` (e.g. `ANTHROPIC_CODE_FIX_MODEL`), which are also accepted as keywords."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # the control service
    api_url: str = Field(
        "http://127.0.0.1:8080",
        validation_alias=_env("DOCKYARD_API_URL"),
        description="the dockyard control service",
    )
    api_token: SecretStr | None = Field(
        None, validation_alias=_env("DOCKYARD_API_TOKEN"), description="a `bot` token of the service"
    )
    api_timeout_s: float = Field(
        300, gt=0, validation_alias=_env("DOCKYARD_API_TIMEOUT"), description="per request (lint can be slow)"
    )

    # the model API
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=_env("ANTHROPIC_API_KEY"), description="the model API key"
    )
    anthropic_base_url: str | None = Field(
        None, validation_alias=_env("ANTHROPIC_BASE_URL"), description="the model API (unset: the SDK's)"
    )
    model: str = Field(
        DEFAULT_MODEL, validation_alias=_env("ANTHROPIC_CODE_FIX_MODEL"), description="the model id"
    )
    max_tokens: int = Field(
        8192, ge=256, validation_alias=_env("CODE_FIX_MAX_TOKENS"), description="output tokens per model call"
    )
    model_retries: int = Field(
        5, ge=0, validation_alias=_env("CODE_FIX_API_RETRIES"), description="SDK retries (429, 5xx, 529)"
    )
    model_timeout_s: float = Field(
        600, gt=0, validation_alias=_env("CODE_FIX_API_TIMEOUT"), description="per model call, seconds"
    )

    # the agent
    max_rounds: int = Field(
        3, ge=1, le=20, validation_alias=_env("CODE_FIX_MAX_ROUNDS"), description="fix rounds (1-20)"
    )
    max_files: int = Field(
        15, ge=1, validation_alias=_env("CODE_FIX_MAX_FILES"), description="distinct files the model may read"
    )
    max_turns: int = Field(
        40, ge=1, validation_alias=_env("CODE_FIX_MAX_TURNS"), description="model calls per round"
    )
    ci_timeout_s: float = Field(
        300,
        ge=0,
        validation_alias=_env("CODE_FIX_CI_TIMEOUT"),
        description="seconds to wait for CI (not used with --patch-out)",
    )
    job_ttl_s: int = Field(
        7200, ge=60, validation_alias=_env("CODE_FIX_JOB_TTL"), description="seconds until the job is reaped"
    )
    start_files: int = Field(
        3, ge=0, validation_alias=_env("CODE_FIX_START_FILES"), description="files shown up front"
    )

    # `dockyard-bot serve`
    serve_host: str = Field(
        "127.0.0.1", validation_alias=_env("DOCKYARD_BOT_HOST"), description="serve: address"
    )
    serve_port: int = Field(8090, validation_alias=_env("DOCKYARD_BOT_PORT"), description="serve: port")
    serve_token: SecretStr | None = Field(
        None, validation_alias=_env("DOCKYARD_BOT_TOKEN"), description="callers of serve send it as Bearer"
    )
    concurrency: int = Field(
        1, ge=1, le=64, validation_alias=_env("DOCKYARD_BOT_CONCURRENCY"), description="serve: fixes at once"
    )
    queue_max: int = Field(
        100, ge=1, validation_alias=_env("DOCKYARD_BOT_QUEUE_MAX"), description="serve: waiting requests"
    )
    users: str = Field(
        "", validation_alias=_env("DOCKYARD_BOT_USERS"), description="requester:role pairs, comma-separated"
    )
    allowed_roles: str = Field(
        "maintainer",
        validation_alias=_env("DOCKYARD_BOT_ALLOWED_ROLES"),
        description="serve: roles that may request fixes",
    )
    webhook_hosts: str = Field(
        "",
        validation_alias=_env("DOCKYARD_BOT_WEBHOOK_HOSTS"),
        description="allowed webhook hosts (empty: any)",
    )

    @classmethod
    def secret_env_names(cls) -> dict[str, str]:
        """Every secret (SecretStr) setting → its environment name; `<name>_FILE` reads it from a file."""
        out = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if field.annotation in (SecretStr, SecretStr | None) and isinstance(alias, AliasChoices):
                out[name] = str(alias.choices[0])
        return out

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """`ANTHROPIC_API_KEY_FILE=/run/secrets/…` and the like: a secret not given directly is read
        from the file its `_FILE` variable names (compose secrets), so it never sits in the env."""
        if not isinstance(data, dict):
            return data
        for name, env in cls.secret_env_names().items():
            path = os.environ.get(f"{env}_FILE")
            if not path or any(k in data for k in (name, env, env.lower())):
                continue
            try:
                data = {**data, name: Path(path).read_text().strip()}
            except OSError as e:
                raise ValueError(f"{env}_FILE: cannot read {path}: {e.strerror}") from e
        return data

    @field_validator("api_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/")

    def user_roles(self) -> dict[str, str]:
        """`DOCKYARD_BOT_USERS` as {requester: role}."""
        roles: dict[str, str] = {}
        for pair in self.users.replace("\n", ",").split(","):
            name, sep, role = pair.strip().rpartition(":")
            if sep and name.strip() and role.strip():
                roles[name.strip()] = role.strip()
        return roles

    def allowed_role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.allowed_roles.split(",") if r.strip())

    @classmethod
    def env_vars(cls) -> list[EnvVar]:
        """Every environment variable the bot reads, from the fields themselves (for `--help`)."""
        out = []
        for name, f in cls.model_fields.items():
            alias = f.validation_alias
            if not isinstance(alias, AliasChoices) or not isinstance(alias.choices[0], str):
                raise TypeError(f"BotSettings.{name} has no environment name")
            if f.default is None:
                default = "unset"
            elif f.annotation is str and f.default == "":
                default = "empty"
            else:
                default = str(f.default)
            out.append(EnvVar(alias.choices[0], default, f.description or "", serve=name.startswith(_SERVE)))
        return out

    def problems(self, *, serve: bool = False) -> list[str]:
        """What is missing to run, as sentences naming the variable to set."""
        out = []
        if self.api_token is None:
            out.append("DOCKYARD_API_TOKEN is not set (a `bot` token of the dockyard service)")
        if self.anthropic_api_key is None:
            out.append("ANTHROPIC_API_KEY is not set")
        if serve and self.serve_token is None:
            out.append("DOCKYARD_BOT_TOKEN is not set (the token callers of `dockyard-bot serve` must send)")
        return out
