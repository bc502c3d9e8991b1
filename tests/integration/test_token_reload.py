"""Tokens reload with the config (POST /v1/config/reload and SIGHUP): DOCKYARD_API_TOKENS_FILE is
read again, a new token works and a removed one stops working without a restart; a broken file
keeps the running tokens and says why."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.integration.aux_service import AuxService, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def reloadable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuxService, Path]]:
    root = tmp_path_factory.mktemp("token-reload")
    tokens_file = root / "tokens"
    tokens_file.write_text("")
    svc = AuxService(root, DOCKYARD_API_TOKENS_FILE=str(tokens_file))
    svc.start()
    try:
        yield svc, tokens_file
    finally:
        svc.discard()


def new_token() -> str:
    return "file-" + secrets.token_hex(16)


def status(svc: AuxService, token: str) -> int:
    return Api(svc, token).get("/v1/jobs", params={"limit": 1}).status_code


def test_reload_adds_and_removes_file_tokens(reloadable: tuple[AuxService, Path]) -> None:
    svc, tokens_file = reloadable
    admin = Api(svc, svc.tokens["admin"])  # from DOCKYARD_API_TOKENS: stays whatever the file says
    first, second = new_token(), new_token()
    tokens_file.write_text(f"# the file's bots\n{first}:bot:team-file\n")
    assert status(svc, first) == 401  # not read until a reload
    r = admin.post("/v1/config/reload")
    assert r.status_code == 200, r.text
    assert status(svc, first) == 200
    tokens_file.write_text(f"{second}:bot:team-file\n")
    assert admin.post("/v1/config/reload").status_code == 200
    assert status(svc, second) == 200
    err = Api.error(Api(svc, first).get("/v1/jobs"), 401, "unauthorized")
    assert "unknown token" in err["message"]
    assert status(svc, svc.tokens["bot"]) == 200  # the environment's tokens are kept
    # the reload is audited with fingerprints, never the token itself
    audit = Api(svc, svc.tokens["auditor"]).get("/v1/audit", params={"action": "config.reload"}).json()
    last = audit["records"][-1]
    assert last["outcome"] == "ok" and second not in str(audit) and first not in str(audit)


def test_sighup_reloads_the_tokens(reloadable: tuple[AuxService, Path]) -> None:
    svc, tokens_file = reloadable
    token = new_token()
    tokens_file.write_text(f"{token}:auditor\n")
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: status(svc, token) == 200, what="the SIGHUP-reloaded token to work")


def test_a_broken_tokens_file_keeps_the_running_tokens(reloadable: tuple[AuxService, Path]) -> None:
    svc, tokens_file = reloadable
    admin = Api(svc, svc.tokens["admin"])
    good = new_token()
    tokens_file.write_text(f"{good}:bot\n")
    assert admin.post("/v1/config/reload").status_code == 200
    for broken in ("short:bot\n", f"{new_token()}:wizard\n"):
        tokens_file.write_text(broken)
        err = Api.error(admin.post("/v1/config/reload"), 400, "invalid_request")
        assert "DOCKYARD_API_TOKENS" in err["message"] and "running one stays" in err["message"]
        assert status(svc, good) == 200
    tokens_file.unlink()
    err = Api.error(admin.post("/v1/config/reload"), 400, "invalid_request")
    assert "DOCKYARD_API_TOKENS_FILE" in err["message"] and status(svc, good) == 200
    tokens_file.write_text("")
    assert admin.post("/v1/config/reload").status_code == 200
    assert status(svc, good) == 401
