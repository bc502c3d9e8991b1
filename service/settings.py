"""All configuration, read in one place.

`Settings` is the service's environment (prefix `DOCKYARD_`, a `.env` file too). The ops file
`sandbox-images/images.toml` (languages, images, limits and their maxima) is loaded and
validated by `load_images_config`, whose errors name the file, the key and the fix.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.audit import AuditKeys

Role = Literal["bot", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("bot", "auditor", "admin")
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class TokenInfo:
    """What one configured bearer token is: its role and the tenant whose jobs it drives."""

    role: Role
    tenant: str


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@functools.cache
def _host_memory_mb() -> int:
    """Physical memory of this host in MiB (0 when it cannot be read); read once."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGED_IMAGES = Path(__file__).resolve().parent / "sandbox_images"  # in a wheel (pyproject force-include)


def default_images_config() -> Path:
    """The ops file when DOCKYARD_IMAGES_CONFIG is unset: the checkout's `sandbox-images/` (a clone,
    an editable install), else the copy a wheel ships inside the package (`service/sandbox_images`)."""
    checkout = REPO_ROOT / "sandbox-images" / "images.toml"
    return checkout if checkout.is_file() else PACKAGED_IMAGES / "images.toml"


# --- secrets: declared once ----------------------------------------------------------------------
# A secret setting X is declared with `secret(...)`, and its file variant X_file (env
# DOCKYARD_X_FILE, e.g. a compose secret under /run/secrets) with `secret_file(...)`. Every secret
# has its file variant (checked at import), neither a secret nor its file's path shows in
# GET /v1/config, and `Settings.secret_value(X)` reads the value or, when unset, its file (at
# call time, so a rotated file is read again on reload). Secrets that exist only as files (the
# audit key, the SIEM collector's token) are declared with `secret_file(...)` alone.
_SECRET = "dockyard_secret"
_SECRET_FILE = "dockyard_secret_file"


def secret(description: str) -> Any:
    """A secret setting (never shown, never logged); declare its `<name>_file` variant too."""
    return Field(None, description=description, json_schema_extra={_SECRET: True})


def secret_file(description: str) -> Any:
    """A file holding a secret: a path (shown as a path, never its content)."""
    return Field(None, description=description, json_schema_extra={_SECRET_FILE: True})


def _marked(field: Any, key: str) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(key))


class ConfigError(Exception):
    """A configuration mistake, with a message fit to print at start-up."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(8080, ge=0, le=65535, description="port the API listens on (0: any free port)")
    state_dir: Path = Field(
        Path("./.dockyard"), description="the state: database, staging, outcome trail, tokens file"
    )
    api_tokens: str | None = secret(
        "bearer tokens, comma-separated token:role[:tenant] (role bot, auditor or admin)"
    )
    api_tokens_file: Path | None = secret_file(
        "file of token:role[:tenant] lines; default: <state dir>/tokens when it exists; re-read on reload"
    )
    images_config: Path = Field(
        default_factory=default_images_config,
        description="the ops file (languages, images, limits); default: sandbox-images/images.toml",
    )
    github_api_url: str = Field("https://api.github.com", description="GitHub (Enterprise) REST API base")
    github_web_url: str = Field("https://github.com", description="GitHub (Enterprise) web and git host")
    github_app_id: str | None = Field(None, description="GitHub App id: enables jobs on repo owner/name")
    github_app_private_key: str | None = secret("the GitHub App's private key (PEM; \\n for newlines)")
    github_app_private_key_file: Path | None = secret_file("file holding the GitHub App's private key (PEM)")
    max_jobs: int = Field(32, ge=1, description="live jobs in all (429 over it)")

    # Tenants and protections: one place for every per-tenant cap and branch rule.
    tenant_max_jobs: int = Field(8, ge=1, description="live jobs one tenant may hold (429 over it)")
    tenant_max_execs: int = Field(16, ge=1, description="tool calls one tenant may run at once")
    tenant_max_runs: int = Field(4, ge=1, description="lint/test boxes one tenant may run at once")
    tenant_max_waiting: int = Field(
        32, ge=0, description="calls of one tenant that may wait for a slot; more are 429"
    )
    tenant_wait_s: float = Field(300, gt=0, description="longest wait for a slot before 429")
    host_budget_mb: int | None = Field(
        None,
        ge=256,
        description="sum of live jobs' memory_mb + disk_mb + tmp_mb admitted; default: 80% of host RAM",
    )
    protected_branches: str = Field(
        "main,master,develop,release/*,releases/*,gh-pages",
        description="comma-separated fnmatch patterns no commit may target (besides the default branch)",
    )
    branch_prefix: str = Field("", description="when set, every commit branch must start with it")

    # GitHub (beyond the contract's table; all optional).
    github_timeout_s: float = Field(30, gt=0, description="per-request timeout for the GitHub API")
    github_max_retries: int = Field(3, ge=0, description="retries of 5xx / network errors / rate limits")
    github_retry_base_s: float = Field(1.0, ge=0, description="backoff base: base * 2**attempt")
    github_max_retry_wait_s: float = Field(60, ge=0, description="longest Retry-After honoured")
    github_no_ci_grace_s: float = Field(60, ge=0, description="no check or status by then: no_ci")
    github_poll_interval_s: float = Field(10, gt=0, description="checks polling interval under wait_s")
    github_commit_author_name: str = Field("dockyard[bot]", description="author name of commits")
    github_commit_author_email: str = Field(
        "dockyard[bot]@users.noreply.github.com", description="author email of commits"
    )

    # Operational knobs beyond the contract's table (all optional).
    # Where boxes run (service/sandbox/: make_backend). Only the Docker engine so far.
    backend: Literal["docker"] = Field("docker", description="sandbox backend: where job boxes run")
    # Engine workers, one bounded pool each, so no kind of call can starve another (see
    # sandbox/docker/engine.py).
    docker_exec_threads: int = Field(16, ge=1, description="engine workers for tool execs in job boxes")
    docker_run_threads: int = Field(4, ge=1, description="engine workers for one-shot boxes (linters)")
    docker_control_threads: int = Field(8, ge=2, description="engine workers for job box lifecycle/control")
    job_exec_concurrency: int = Field(4, ge=1, description="tool execs one job runs at once (others wait)")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body")
    read_cap_bytes: int = Field(256 * 1024, ge=1024, description="read_file content cap")
    write_cap_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="write_file/replace content cap")
    output_cap_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024, description="any exec's output cap")
    clone_timeout_s: float = Field(300, gt=0, description="a clone's deadline")
    clone_schemes: str = Field("https,http,file", description="URL schemes clone_url may use")
    # Clone sources and caps (service/clone_policy.py, service/clone.py).
    clone_file_roots: str = Field("", description="file:// clone roots, comma-separated; default none")
    clone_allow_hosts: str = Field(
        "", description="hosts (host or host:port, comma-separated) cloned even on a private address"
    )
    max_clone_mb: int | None = Field(None, ge=1, description="largest checkout; default: the job's disk_mb")
    max_tree_depth: int = Field(64, ge=1, description="deepest path (components) a clone may hold")
    max_tree_entries: int = Field(200_000, ge=1, description="files + folders a clone may hold")
    max_dir_entries: int = Field(20_000, ge=1, description="entries one folder of a clone may hold")
    sandbox_runtime: str | None = Field(None, description="OCI runtime for job boxes, e.g. runsc")
    sandbox_user: str = Field("1000:1000", description="uid:gid the job box runs as")
    base_image: str | None = Field(None, description="BASE_IMAGE build arg for the base sandbox image")
    build_extra_ca: Path | None = Field(None, description="CA bundle trusted during image builds only")

    # Recovery, reaping, the outcome trail (all optional).
    reap_interval_s: float = Field(30, gt=0, description="how often expired jobs and orphans are reaped")
    outcome_trail: bool = Field(True, description="commit each ended job's outcome to <state_dir>/trail")
    shutdown_timeout_s: float = Field(60, ge=0, description="SIGTERM: how long in-flight requests may finish")
    audit_key_file: Path | None = secret_file(
        "HMAC keys authenticating the audit chain; must live outside the state dir"
    )

    # SIEM delivery of audit records (service/siem/; unset = off).
    siem_syslog: str | None = Field(
        None, description="syslog receiver (RFC 5424): udp://host:514, tcp://host:601 or tls://host:6514"
    )
    siem_syslog_ca: Path | None = Field(
        None, description="CA bundle the tls:// receiver's certificate must chain to; default: system CAs"
    )
    siem_syslog_facility: int = Field(13, ge=0, le=23, description="syslog facility (13: log audit)")
    siem_syslog_hostname: str | None = Field(None, description="HOSTNAME in syslog messages; default: ours")
    siem_http: str | None = Field(
        None, description='HTTP(S) collector: batches are POSTed as {"records": [...]} (GET /v1/audit shape)'
    )
    siem_http_token_file: Path | None = secret_file("file of the bearer token sent to the HTTP collector")
    siem_http_ca: Path | None = Field(None, description="CA bundle of an https:// collector; default: system")
    siem_batch: int = Field(100, ge=1, le=5000, description="records per delivery (one HTTP POST)")
    siem_interval_s: float = Field(
        5, gt=0, description="idle poll of the log; new records are sent as they commit anyway"
    )
    siem_timeout_s: float = Field(10, gt=0, description="connect / send deadline of one delivery")
    siem_retry_max_s: float = Field(30, gt=0, description="longest backoff between delivery retries")
    siem_stop_timeout_s: float = Field(5, ge=0, description="at shutdown: how long sinks may catch up")

    # Dependency environments (service/env/; all optional).
    env_enabled: bool = Field(True, description="build a job's dependency environment from its manifests")
    env_cache_mb: int = Field(8192, ge=64, description="size budget of cached environments (LRU beyond it)")
    env_fetch_timeout_s: float = Field(600, gt=0, description="one fetch box's deadline")
    env_install_timeout_s: float = Field(600, gt=0, description="one install box's deadline")
    env_memory_mb: int = Field(2048, ge=128, description="memory of a fetch or install box")
    env_disk_mb: int = Field(4096, ge=64, description="largest single file a fetch or install box may write")
    env_wait_s: float = Field(
        300, ge=0, description="how long lint waits for a job's environment still being built"
    )
    env_max_builds: int = Field(2, ge=1, description="environment builds running at once")
    env_retry_s: float = Field(600, ge=0, description="a failed environment is retried after this long")
    env_ca_bundle: Path | None = Field(
        Path("/etc/ssl/certs/ca-certificates.crt"),
        description="CA bundle trusted by fetch boxes (PIP_CERT, NODE_EXTRA_CA_CERTS, SSL_CERT_FILE)",
    )

    # Server-sent events (GET /v1/jobs/{id}/events; all optional).
    sse_replay_max: int = Field(1000, ge=1, description="past events replayed at most (the newest)")
    sse_max_streams: int = Field(256, ge=1, description="open event streams, all jobs (then 429)")
    sse_max_streams_per_job: int = Field(16, ge=1, description="open event streams per job (then 429)")
    sse_ping_interval_s: float = Field(15, gt=0, description="keep-alive comment on an idle stream")

    # The auditors' console (/console; service/console/).
    console_session_ttl_s: float = Field(
        8 * 3600, gt=0, description="a console login lasts this long (then the auditor logs in again)"
    )
    console_max_sessions: int = Field(
        1000, ge=1, description="console sessions held at once (the oldest ends first beyond it)"
    )
    console_cookie_secure: bool = Field(
        False, description="mark the console's session cookie Secure (set it when served over TLS)"
    )
    # Idempotency-Key on POST /v1/jobs and POST /v1/jobs/{id}/commit (service/idempotency.py).
    idempotency_ttl_s: float = Field(
        24 * 3600, gt=0, description="how long a first answer is kept for replay under its Idempotency-Key"
    )

    @classmethod
    def secret_names(cls) -> dict[str, str | None]:
        """Every secret setting → its file variant's field (None: a secret that is only a file)."""
        fields = cls.model_fields
        values = {n for n, f in fields.items() if _marked(f, _SECRET)}
        files = {n for n, f in fields.items() if _marked(f, _SECRET_FILE)}
        for name in values:
            if f"{name}_file" not in files:
                raise TypeError(f"secret setting {name!r} has no {name}_file variant (secret_file)")
        out: dict[str, str | None] = {n: f"{n}_file" for n in values}
        out |= {f: None for f in files if f.removesuffix("_file") not in values}
        return out

    @classmethod
    def hidden_fields(cls) -> frozenset[str]:
        """What GET /v1/config leaves out: every secret value and its file variant's path."""
        return frozenset(n for name, f in cls.secret_names().items() if f is not None for n in (name, f))

    @classmethod
    def env_name(cls, field: str) -> str:
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    def secret_value(self, name: str) -> str | None:
        """A secret's value, else its file's content (read now), else None."""
        value: str | None = getattr(self, name)
        if value:
            return value
        file_field = self.secret_names()[name]
        path: Path | None = getattr(self, file_field) if file_field else None
        if path is None:
            return None
        try:
            return path.read_text()
        except OSError as e:
            raise ConfigError(f"{self.env_name(file_field or name)}: cannot read {path}: {e}") from e

    @field_validator("state_dir", "images_config")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    def tokens(self) -> dict[str, TokenInfo]:
        """Parse `token:role[:tenant]` entries; refuse to run without any.

        A token without a tenant is its own tenant, named after its role and fingerprint
        (`bot-1a2b3c4d5e6f`), so two such tokens never see each other's jobs.
        """
        text = self.api_tokens or ""
        tokens_file = self.tokens_file()
        if tokens_file is not None:
            try:
                text += "," + tokens_file.read_text()
            except OSError as e:
                raise ConfigError(f"DOCKYARD_API_TOKENS_FILE: cannot read {tokens_file}: {e}") from e
        tokens: dict[str, TokenInfo] = {}
        for raw in text.replace("\n", ",").split(","):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            parts: list[str] = entry.split(":")
            tenant: str | None = None
            role: str = ""
            token = ""
            if len(parts) >= 3 and parts[-2] in ROLES:
                token, role, tenant = ":".join(parts[:-2]), parts[-2], parts[-1]
            elif len(parts) >= 2:
                token, role = ":".join(parts[:-1]), parts[-1]
            if not token:
                raise ConfigError(
                    "DOCKYARD_API_TOKENS: each entry must be 'token:role' or 'token:role:tenant' "
                    "(role one of bot, auditor, admin)"
                )
            if role not in ROLES:
                raise ConfigError(f"DOCKYARD_API_TOKENS: unknown role {role!r}; use bot, auditor or admin")
            if len(token) < 16:
                raise ConfigError("DOCKYARD_API_TOKENS: tokens must be at least 16 characters long")
            if tenant is not None and not TENANT_RE.match(tenant):
                raise ConfigError(
                    f"DOCKYARD_API_TOKENS: tenant {tenant!r}: use letters, digits, '.', '_', '-' "
                    "(at most 64, starting with a letter or digit)"
                )
            tokens[token] = TokenInfo(role, tenant or f"{role}-{token_fingerprint(token)}")
        if not tokens:
            raise ConfigError(
                "no API tokens configured: run `dockyard token new --role bot` (kept in "
                f"{self.default_tokens_file}), or set DOCKYARD_API_TOKENS='token:role,...' "
                "or DOCKYARD_API_TOKENS_FILE; the service refuses to run open"
            )
        return tokens

    @property
    def default_tokens_file(self) -> Path:
        """Where `dockyard token new` keeps tokens, and serve reads them, unless DOCKYARD_API_TOKENS_FILE."""
        return self.state_dir / "tokens"

    def tokens_file(self) -> Path | None:
        """The tokens file serve reads: DOCKYARD_API_TOKENS_FILE, else <state dir>/tokens when it exists."""
        if self.api_tokens_file is not None:
            return self.api_tokens_file
        return self.default_tokens_file if self.default_tokens_file.is_file() else None

    def github_private_key(self) -> str | None:
        if self.github_app_private_key:
            return self.github_app_private_key.replace("\\n", "\n")
        return self.secret_value("github_app_private_key")

    def github_configured(self) -> bool:
        return bool(self.github_app_id) and (
            bool(self.github_app_private_key) or self.github_app_private_key_file is not None
        )

    def audit_keys(self) -> AuditKeys | None:
        """The audit chain's keys from DOCKYARD_AUDIT_KEY_FILE (first line signs; older lines verify)."""
        path = self.audit_key_file
        if path is None:
            return None
        resolved = path.expanduser().resolve()
        if resolved == self.state_dir or self.state_dir in resolved.parents:
            raise ConfigError(
                "DOCKYARD_AUDIT_KEY_FILE must live outside DOCKYARD_STATE_DIR: whoever can rewrite the "
                "state dir must not be able to read the key"
            )
        try:
            lines = resolved.read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"DOCKYARD_AUDIT_KEY_FILE: cannot read {resolved}: {e}") from e
        keys = [ln.strip().encode() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not keys or any(len(k) < 32 for k in keys):
            raise ConfigError(
                "DOCKYARD_AUDIT_KEY_FILE: one key per line, each at least 32 characters "
                "(e.g. `openssl rand -hex 32`); the first line signs, older keys below it verify"
            )
        return AuditKeys.of(keys)

    def host_budget(self) -> int:
        """MiB of host memory live jobs may hold in total (their memory, workspace and /tmp)."""
        if self.host_budget_mb is not None:
            return self.host_budget_mb
        total = _host_memory_mb()
        return max(1024, total * 4 // 5) if total else 16 * 1024

    def branch_refusal(self, branch: str) -> str | None:
        """Why ops protect this branch name, or None when a commit may target it."""
        if self.branch_prefix and not branch.startswith(self.branch_prefix):
            return f"commit branches must start with {self.branch_prefix!r} (DOCKYARD_BRANCH_PREFIX)"
        for pattern in (p.strip() for p in self.protected_branches.split(",")):
            if pattern and fnmatchcase(branch, pattern):
                return (
                    f"branch {branch!r} matches the protected pattern {pattern!r} "
                    "(DOCKYARD_PROTECTED_BRANCHES)"
                )
        return None

    def allowed_clone_schemes(self) -> frozenset[str]:
        return frozenset(s.strip().lower() for s in self.clone_schemes.split(",") if s.strip())


Settings.secret_names()  # a secret declared without its file variant fails here, at import


# --- the ops file: sandbox-images/images.toml ---------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Resource limits of one sandbox. Every field is also a maximum in `[limits.maxima]`."""

    memory_mb: int = Field(ge=16)
    cpus: float = Field(gt=0)
    pids: int = Field(ge=16)
    disk_mb: int = Field(ge=16)
    tool_timeout_s: int = Field(ge=1)
    lint_timeout_s: int = Field(120, ge=1, description="a linter run's deadline")
    output_cap_kb: int = Field(1024, ge=16, description="raw linter output kept per run")

    @classmethod
    def of_job(cls, stored: dict[str, Any]) -> Limits:
        """A job's applied limits from its record (which also carries what was clamped)."""
        return cls(**{k: v for k, v in stored.items() if k in cls.model_fields})


class LimitsSection(_Strict):
    defaults: Limits
    maxima: Limits
    nofile: int = Field(1024, ge=64)
    fsize_mb: int | None = Field(None, ge=1, description="largest single file; default: disk_mb")
    tmp_mb: int = Field(64, ge=1, description="size of the box's /tmp tmpfs")
    log_max_mb: int = Field(10, ge=1, description="container log cap (json-file max-size)")
    lint_capture_mb: int = Field(
        32, ge=1, description="a linter's output read for parsing; output_cap_kb only cuts what is shown"
    )

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> LimitsSection:
        for name in Limits.model_fields:
            if getattr(self.defaults, name) > getattr(self.maxima, name):
                raise ValueError(
                    f"defaults.{name} is above maxima.{name}: lower the default or raise the maximum"
                )
        return self


class ImageSpec(_Strict):
    """A sandbox image built from a folder of sandbox-images/."""

    context: str = Field(description="folder under sandbox-images/ holding the Dockerfile")
    dockerfile: str = "Dockerfile"
    parent: str | None = Field(None, description="image of this file whose tag becomes BASE_IMAGE")
    build_args: dict[str, str] = Field(default_factory=dict)


ParserName = Literal[
    "ruff_json", "flake8", "pylint_json", "mypy", "eslint_json", "go_vet", "gofmt", "shellcheck_json"
]
PLACEHOLDERS = ("{files}", "{dirs}")
# FILE, FILE:[section] (ini/toml), FILE:key.path (a JSON key, e.g. package.json:devDependencies.xo)
_CONFIG_RULE = re.compile(r"^[^:\[\]]+(?::(?:\[[^\]]+\]|[A-Za-z0-9_@$.-]+))?$")


class LinterSpec(_Strict):
    """One linter of a language: what enables it, how it runs, how its output is read."""

    command: list[str] = Field(
        min_length=1, description="argv; {files} expands to the files to lint, {dirs} to their folders (./x)"
    )
    parser: ParserName
    files: list[str] = Field(min_length=1, description="glob patterns of the files this linter checks")
    enabled_by: list[str] = Field(
        default_factory=list,
        description="repo files enabling it: 'NAME' (a glob) or 'NAME:[section]' (setup.cfg:[flake8])",
    )
    default: bool = Field(False, description="run it when the repo configures no linter of this language")
    image: str | None = Field(None, description="an [images] entry; default: the language's image")
    timeout_s: int | None = Field(None, ge=1, description="default: limits.defaults.lint_timeout_s")
    memory_mb: int | None = Field(None, ge=16)
    cpus: float | None = Field(None, gt=0)
    pids: int | None = Field(None, ge=16)
    tmp_mb: int | None = Field(None, ge=1, description="the linter box's /tmp size; default: limits.tmp_mb")
    runtime: str | None = Field(None, description="OCI runtime, e.g. runsc where ops installed gVisor")
    env: dict[str, str] = Field(default_factory=dict)
    # The repository's own tool, from its dependency environment (mounted read-only at /env).
    repo_command: str | None = Field(
        None, description="the repo's own tool in its environment (/env/...): replaces command[0] when there"
    )
    repo_requires: str | None = Field(
        None, description="path in the environment that makes it the repo's run; default: repo_command"
    )
    repo_env: dict[str, str] = Field(default_factory=dict, description="extra env when the repo's tool runs")
    repo_only: bool = Field(False, description="the image has no such tool: runs only from the environment")
    version_command: list[str] = Field(
        default_factory=lambda: ["{tool}", "--version"], description="prints the version; {tool}: its path"
    )
    # The linter's own file scope (mypy's `files =`): then it runs on what the repo scopes.
    scope_keys: list[str] = Field(
        default_factory=list, description="settings of the enabling config that declare the files to check"
    )
    scope_command: list[str] | None = Field(
        None, description="argv when the repo declares the scope; only the linted files' findings are kept"
    )
    shebangs: list[str] = Field(
        default_factory=list, description="interpreters (sh, bash) whose extensionless scripts it checks"
    )

    @field_validator("command", "scope_command")
    @classmethod
    def _placeholders(cls, v: list[str] | None) -> list[str] | None:
        for arg in v or []:
            for token in re.findall(r"\{[^}]*\}", arg):
                if token not in PLACEHOLDERS or arg != token:
                    raise ValueError(
                        f"unknown placeholder {arg!r}: use {' or '.join(PLACEHOLDERS)} as a whole argument"
                    )
        return v

    @field_validator("enabled_by")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        for rule in v:
            if not _CONFIG_RULE.match(rule):
                raise ValueError(
                    f"enabled_by entry {rule!r}: write 'FILE', 'FILE:[section]' or 'FILE:json.key'"
                )
        return v


TestParserName = Literal["junit_xml", "go_json", "tap"]


class TestSpec(_Strict):
    __test__: ClassVar[bool] = False  # not a pytest class

    """A language's test runs ([languages.L.tests]): ops' default command and the box's caps."""

    command: list[str] = Field(min_length=1, description="ops' default argv when the repo has no own rule")
    parser: TestParserName
    image: str | None = Field(None, description="an [images] entry; default: the language's image")
    script_image: str | None = Field(
        None, description="image for the repo's own package.json script (needs npm); default: image"
    )
    timeout_s: int = Field(300, ge=1, description="a test run's deadline (requests are clamped to it)")
    memory_mb: int | None = Field(None, ge=16, description="default: the job's memory_mb")
    cpus: float | None = Field(None, gt=0)
    pids: int | None = Field(None, ge=16)
    tmp_mb: int = Field(256, ge=1, description="the box's scratch space on top of the workspace copy")
    allow_custom_command: bool = Field(False, description="may a request's `command` replace the rule")
    env: dict[str, str] = Field(default_factory=dict)


class LanguageSpec(_Strict):
    image: str = Field(description="name of an entry of [images]")
    detect: list[str] = Field(default_factory=list, description="glob patterns that detect the language")
    linters: dict[str, LinterSpec] = Field(default_factory=dict)
    tests: TestSpec | None = Field(None, description="how the language's tests run; None: not supported")


class ImagesConfig(_Strict):
    limits: LimitsSection
    images: dict[str, ImageSpec]
    languages: dict[str, LanguageSpec]
    default_language: str

    @model_validator(mode="after")
    def _references(self) -> ImagesConfig:
        for name, img in self.images.items():
            if img.parent is not None and img.parent not in self.images:
                raise ValueError(f"images.{name}.parent names unknown image {img.parent!r}")
        for name, lang in self.languages.items():
            if lang.image not in self.images:
                raise ValueError(
                    f"languages.{name}.image names unknown image {lang.image!r}; add [images.{lang.image}]"
                )
            for image in (lang.tests.image, lang.tests.script_image) if lang.tests else ():
                if image is not None and image not in self.images:
                    raise ValueError(f"languages.{name}.tests names unknown image {image!r}")
            for lname, linter in lang.linters.items():
                if linter.image is not None and linter.image not in self.images:
                    raise ValueError(
                        f"languages.{name}.linters.{lname}.image names unknown image {linter.image!r}"
                    )
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not a key of [languages]")
        return self

    def clamp(self, requested: dict[str, Any] | None) -> Limits:
        """Requested limits over the defaults, each clamped to the ops maximum (other keys ignored)."""
        values = self.limits.defaults.model_dump()
        for key, value in (requested or {}).items():
            if value is not None and key in Limits.model_fields:
                values[key] = min(value, getattr(self.limits.maxima, key))
        return Limits(**values)

    def clamped(self, requested: dict[str, Any] | None) -> dict[str, dict[str, float]]:
        """The requested limits above the ops maximum: key → {requested, maximum} (what clamp cut)."""
        out: dict[str, dict[str, float]] = {}
        for key, value in (requested or {}).items():
            if value is not None and key in Limits.model_fields:
                maximum = getattr(self.limits.maxima, key)
                if value > maximum:
                    out[key] = {"requested": value, "maximum": maximum}
        return out


def load_images_config(path: Path) -> ImagesConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path}: file not found; set DOCKYARD_IMAGES_CONFIG to the images.toml path"
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        cfg = ImagesConfig.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError(f"{path}: invalid configuration:\n" + "\n".join(lines)) from e
    base = path.parent
    for name, img in cfg.images.items():
        dockerfile = base / img.context / img.dockerfile
        if not dockerfile.is_file():
            raise ConfigError(
                f"{path}: images.{name}: no Dockerfile at {dockerfile}; fix images.{name}.context"
            )
    return cfg


class ClientSettings(BaseSettings):
    """What a local client of a running service reads (`dockyard mcp --stdio`): the same
    variables the bot reads, not the service's own configuration."""

    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", env_file=".env", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8080", description="the running service (DOCKYARD_API_URL)")
    api_token: SecretStr | None = Field(None, description="a token of the service (DOCKYARD_API_TOKEN)")

    @field_validator("api_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/")
