"""pytest fixtures for the fake GitHub (registered from tests/conftest.py via `pytest_plugins`).

- `fake_github` (session): a started FakeGitHub on 127.0.0.1 (stopped at the end of the session).
- `fake_gh` (function): the same fake, with faults, the request log, `errors` and check/status scripts
  cleared before the test, and faults cleared after it; the test fails if the fake hit a bug of its
  own (see `FakeGitHub.errors`).
- `fake_github_env` (session): the service environment for the fake (`github_env(fake)`).
- `make_github_repo` (function): creates a uniquely named repo in the fake, returns (owner, name).
- `fake_anthropic` (session): a started FakeAnthropic (the Messages API) on 127.0.0.1.
- `ai` (function): the same fake, its scripts and request log cleared before and after the test;
  the test fails if the fake refused a request as malformed (see `FakeAnthropic.errors`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.github import FakeGitHub, github_env

__all__ = [
    "FakeGitHub",
    "ai",
    "fake_anthropic",
    "fake_gh",
    "fake_github",
    "fake_github_env",
    "github_env",
    "make_github_repo",
]


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture
def ai(fake_anthropic: FakeAnthropic) -> Iterator[FakeAnthropic]:
    fake_anthropic.reset()
    yield fake_anthropic
    errors = fake_anthropic.errors
    fake_anthropic.reset()
    assert not errors, f"the fake model API refused the bot's requests: {errors}"


@pytest.fixture(scope="session")
def fake_github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tmp_path_factory.mktemp("fake-github"))
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_gh(fake_github: FakeGitHub) -> Iterator[FakeGitHub]:
    fake_github.reset()
    try:
        yield fake_github
        errors = "\n".join(fake_github.errors)
        assert not errors, f"the fake GitHub hit a bug of its own:\n{errors}"
    finally:
        fake_github.clear_faults()


@pytest.fixture(scope="session")
def fake_github_env(fake_github: FakeGitHub) -> dict[str, str]:
    return github_env(fake_github)


@pytest.fixture
def make_github_repo(fake_github: FakeGitHub) -> Callable[..., tuple[str, str]]:
    """`make_github_repo(files, owner=fake.owner, prefix="repo", **create_repo_kwargs) -> (owner, name)`."""

    def make(
        files: Mapping[str, bytes | str] | None = None,
        *,
        owner: str | None = None,
        prefix: str = "repo",
        **kwargs: Any,
    ) -> tuple[str, str]:
        owner = owner or fake_github.owner
        name = f"{prefix}-{secrets.token_hex(4)}"
        fake_github.create_repo(owner, name, files or {"README.md": "# hello\n"}, **kwargs)
        return owner, name

    return make
