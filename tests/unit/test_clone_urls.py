"""The clone source policy and the tree caps, without network (literal IPs, `localhost`, a stubbed
resolver) and without a service."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from service import clone_policy
from service.clone import MIB, CloneCaps, TreeCheck, _size_capped
from service.clone_policy import check_syntax, classify, redact_url, vet_clone_url
from service.errors import CloneSourceForbidden, InvalidRequest, RepoTooLarge
from service.settings import Settings

ALLOWED = frozenset({"https", "file"})


def settings(tmp_path: Path, **kw: Any) -> Settings:
    kw.setdefault("state_dir", tmp_path / "state")
    return Settings(api_tokens="x" * 16 + ":bot", **kw)


def vet(url: str, s: Settings) -> Any:
    return asyncio.run(vet_clone_url(url, s))


def forbidden(url: str, s: Settings) -> dict[str, Any]:
    with pytest.raises(CloneSourceForbidden) as e:
        vet(url, s)
    assert e.value.status == 400 and e.value.code == "clone_source_forbidden"
    assert "s3cr3t" not in e.value.message and "s3cr3t" not in repr(e.value.details)
    return e.value.details


# --- syntax ---------------------------------------------------------------------------------------


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://x-access-token:ghs_SECRET@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("https://a@b:SECRET@host:8443/r") == "https://host:8443/r"
    assert redact_url("file:///srv/r") == "file:///srv/r"


@pytest.mark.parametrize(
    "url",
    ["ext::sh -c touch% /tmp/pwned", "/srv/repo", "git@github.com:o/r.git", "-u/x://y", "https://h/\nx"],
)
def test_malformed_clone_url_is_invalid_request(url: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check_syntax(url, ALLOWED)
    assert e.value.code == "invalid_request"


@pytest.mark.parametrize("url", ["ssh://host/r", "git://host/r", "http://host/r"])
def test_scheme_outside_clone_schemes_is_forbidden(url: str) -> None:
    with pytest.raises(CloneSourceForbidden) as e:
        check_syntax(url, ALLOWED)
    assert e.value.details["allowed_schemes"] == ["file", "https"]


# --- addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.1", "private"),
        ("192.168.0.10", "private"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fd12:3456::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("fec0::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "reserved"),  # NAT64 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_classified(addr: str, why: str) -> None:
    assert classify(ipaddress.ip_address(addr)) == why


@pytest.mark.parametrize("addr", ["8.8.8.8", "93.184.216.34", "192.0.2.10", "100.128.0.1", "2606:4700::1111"])
def test_public_addresses_pass(addr: str) -> None:
    # 192.0.2.0/24 is documentation space: the package registries resolve there on this machine.
    assert classify(ipaddress.ip_address(addr)) is None


# --- http(s) --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/o/r.git",
        "https://localhost/o/r.git",
        "http://localhost./o/r.git",
        "http://[::1]:9/r",
        "http://[::ffff:127.0.0.1]/r",
        "http://2130706433/r",
        "http://0x7f.1/r",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/r",
        "https://someone:s3cr3t@192.168.1.1/r.git",
        "http://127.0.0.1:99999/r",
        "http:///r",
    ],
)
def test_non_public_hosts_are_forbidden(tmp_path: Path, url: str) -> None:
    s = settings(tmp_path, clone_schemes="https,http,file")
    details = forbidden(url, s)
    assert details["reason"]


def test_every_resolved_address_must_be_public(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_resolve(host: str, port: int) -> list[Any]:
        assert (host, port) == ("git.example", 443)
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.9.8.7")]

    monkeypatch.setattr(clone_policy, "resolve", fake_resolve)
    details = forbidden("https://git.example/o/r.git", settings(tmp_path))
    assert details["address_class"] == "private"
    assert "10.9.8.7" not in str(details)  # no internal address handed back


def test_public_host_is_pinned_to_the_checked_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_resolve(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("2606:4700::1111")]

    monkeypatch.setattr(clone_policy, "resolve", fake_resolve)
    src = vet("https://Git.Example:8443/o/r.git", settings(tmp_path))
    assert src.url == "https://Git.Example:8443/o/r.git"
    assert src.env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.curloptResolve",
        "GIT_CONFIG_VALUE_0": "git.example:8443:8.8.8.8,[2606:4700::1111]",
    }


def test_configured_git_host_is_allowed_on_its_port_only(tmp_path: Path) -> None:
    s = settings(tmp_path, github_web_url="http://127.0.0.1:4567", clone_schemes="http")
    src = vet("http://127.0.0.1:4567/o/r.git", s)
    assert src.url == "http://127.0.0.1:4567/o/r.git" and src.env == {}
    forbidden("http://127.0.0.1:4568/o/r.git", s)


def test_ops_allowlist(tmp_path: Path) -> None:
    s = settings(
        tmp_path, clone_schemes="http,https", clone_allow_hosts="localhost:8080, [::1], git.internal"
    )
    vet("http://localhost:8080/r.git", s)
    vet("https://[::1]:1234/r.git", s)
    forbidden("http://localhost:8081/r.git", s)


def test_credentials_leave_the_url_for_a_header(tmp_path: Path) -> None:
    s = settings(tmp_path, clone_schemes="https", clone_allow_hosts="git.internal")
    src = vet("https://bot:p%40ss-s3cr3t@git.internal/o/r.git", s)
    assert src.url == "https://git.internal/o/r.git"
    assert src.env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    basic = base64.b64encode(b"bot:p@ss-s3cr3t").decode()
    assert src.env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {basic}"
    assert {"p@ss-s3cr3t", "p%40ss-s3cr3t", basic} <= set(src.secrets)


def test_network_schemes_beyond_http_are_host_checked(tmp_path: Path) -> None:
    s = settings(tmp_path, clone_schemes="ssh,git")
    forbidden("ssh://git@127.0.0.1/x.git", s)
    forbidden("git://10.0.0.1/x.git", s)


# --- file:// --------------------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    (allowed / "repo" / ".git" / "objects" / "info").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "repo" / ".git").mkdir(parents=True)
    return {"allowed": allowed, "outside": outside, "repo": allowed / "repo", "state": tmp_path / "state"}


def test_file_urls_are_off_without_roots(tmp_path: Path, roots: dict[str, Path]) -> None:
    details = forbidden(roots["repo"].as_uri(), settings(tmp_path))
    assert "DOCKYARD_CLONE_FILE_ROOTS" in details["reason"]


def test_file_url_under_a_root_is_allowed_canonically(tmp_path: Path, roots: dict[str, Path]) -> None:
    s = settings(tmp_path, clone_file_roots=str(roots["allowed"]))
    assert vet(roots["repo"].as_uri(), s).url == roots["repo"].as_uri()
    assert vet("file://localhost" + str(roots["repo"]) + "/./", s).url == roots["repo"].as_uri()


def test_file_url_escapes_are_forbidden(tmp_path: Path, roots: dict[str, Path]) -> None:
    s = settings(tmp_path, clone_file_roots=str(roots["allowed"]))
    forbidden(roots["outside"].joinpath("repo").as_uri(), s)
    forbidden(f"file://{roots['allowed']}/../outside/repo", s)
    forbidden(f"file://{roots['allowed']}/%2e%2e/outside/repo", s)
    os.symlink(roots["outside"] / "repo", roots["allowed"] / "link")
    forbidden((roots["allowed"] / "link").as_uri(), s)
    forbidden(f"file://otherhost{roots['repo']}", s)
    forbidden(f"file://u:s3cr3t@{roots['repo']}", s)


def test_state_dir_is_never_a_source(tmp_path: Path, roots: dict[str, Path]) -> None:
    (roots["state"] / "trail" / ".git").mkdir(parents=True)
    s = settings(tmp_path, clone_file_roots=str(tmp_path))
    details = forbidden((roots["state"] / "trail").as_uri(), s)
    assert "state dir" in details["reason"]
    os.symlink(roots["state"] / "trail", roots["allowed"] / "trail-link")
    forbidden((roots["allowed"] / "trail-link").as_uri(), s)


def test_git_data_pointing_out_of_the_roots_is_forbidden(tmp_path: Path, roots: dict[str, Path]) -> None:
    s = settings(tmp_path, clone_file_roots=str(roots["allowed"]))
    gitfile = roots["allowed"] / "gitfile"
    gitfile.mkdir()
    (gitfile / ".git").write_text(f"gitdir: {roots['outside'] / 'repo' / '.git'}\n")
    forbidden(gitfile.as_uri(), s)
    (roots["repo"] / ".git" / "objects" / "info" / "alternates").write_text(
        str(roots["outside"] / "repo" / ".git" / "objects") + "\n"
    )
    forbidden(roots["repo"].as_uri(), s)


# --- tree caps ------------------------------------------------------------------------------------

CAPS = CloneCaps(max_bytes=MIB, bytes_setting="X_MB", max_depth=4, max_entries=50, max_dir_entries=5)


def record(path: str | bytes, kind: str = "blob", size: int = 10) -> bytes:
    raw = path.encode() if isinstance(path, str) else path
    shown = str(size) if kind == "blob" else "-"
    mode = {"blob": "100644", "tree": "040000", "commit": "160000"}[kind]
    return f"{mode} {kind} {'a' * 40} {shown:>7}\t".encode() + raw + b"\0"


def check(*records: bytes, chunk: int = 7) -> TreeCheck:
    tc = TreeCheck(CAPS)
    data = b"".join(records)
    for i in range(0, len(data), chunk):  # records split across chunks anywhere
        tc.feed(data[i : i + chunk])
    tc.finish()
    return tc


def too_large(*records: bytes) -> dict[str, Any]:
    with pytest.raises(RepoTooLarge) as e:
        check(*records)
    assert e.value.status == 413 and e.value.code == "repo_too_large"
    return e.value.details


def test_a_tree_within_the_caps_passes() -> None:
    tc = check(
        record("a", "tree"), record("a/b", "tree"), record("a/b/c.txt", size=100), record("sub", "commit")
    )
    assert (tc.entries, tc.bytes) == (4, 100)


def test_each_cap_names_itself_and_its_setting() -> None:
    deep = "/".join(["d"] * 5)
    assert too_large(record(deep)) | {"path": ""} == {
        "cap": "tree_depth",
        "limit": 4,
        "setting": "DOCKYARD_MAX_TREE_DEPTH",
        "path": "",
    }
    assert too_large(*(record(f"f{i}") for i in range(6)))["cap"] == "dir_entries"
    assert too_large(*(record(f"d{i // 5}/f{i}") for i in range(51)))["cap"] == "tree_entries"
    assert too_large(record("big", size=MIB + 1))["setting"] == "X_MB"
    assert too_large(record("n" * 256))["cap"] == "name_length"
    deep_caps = TreeCheck(CloneCaps(MIB, "X_MB", max_depth=64, max_entries=50, max_dir_entries=5))
    with pytest.raises(RepoTooLarge) as e:
        deep_caps.feed(record("/".join(["p" * 250] * 17)))
    assert e.value.details["cap"] == "path_length"


@pytest.mark.parametrize("path", [".GIT/config", "a/.Git/hooks/x", ".git", "a/../b"])
def test_git_dirs_in_any_case_are_refused(path: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check(record(path))
    assert e.value.code == "invalid_request" and e.value.details["reason"] == "forbidden_path"


def test_a_fetch_outgrowing_the_size_cap_is_stopped(tmp_path: Path) -> None:
    pack = tmp_path / ".git" / "objects" / "pack"
    pack.mkdir(parents=True)

    async def growing_fetch() -> None:
        with (pack / "tmp_pack").open("wb") as f:
            for _ in range(100):
                f.write(b"\0" * (256 * 1024))
                f.flush()
                await asyncio.sleep(0.05)

    async def run() -> None:
        await _size_capped(growing_fetch(), tmp_path / ".git", CAPS)

    with pytest.raises(RepoTooLarge) as e:
        asyncio.run(run())
    assert e.value.details["cap"] == "fetch_size"
    assert (pack / "tmp_pack").stat().st_size < 10 * MIB  # stopped well before its end (25 MiB)
