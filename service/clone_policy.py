"""Where a job may clone from, decided before anything connects.

- `file://` only under a root ops allow (`DOCKYARD_CLONE_FILE_ROOTS`), symlinks resolved and `..`
  collapsed; the service's own state dir never, whatever the roots say. The repository's git dir,
  its object store and its alternates must lie under a root too (a `.git` file or an alternates
  line cannot point the clone at the state dir).
- Network URLs (`http(s)`, and `ssh`/`git` where ops allow those schemes): the host is resolved and
  refused when ANY address is loopback, private, CGNAT, unique-local, link-local, metadata,
  unspecified, multicast or reserved — unless it is the configured git host or in
  `DOCKYARD_CLONE_ALLOW_HOSTS`. For http(s) the checked addresses are pinned for the clone
  (`http.curloptResolve`), so a second DNS answer cannot differ; redirects are off for every clone.
- Credentials in the URL (`https://user:pass@host/…`) are stripped from it and travel as an
  `Authorization` header in git's environment (never argv), listed as secrets to scrub.

Every refusal is `400 clone_source_forbidden` with the reason; nothing here talks to the remote,
so no refusal can tell a caller anything the remote said.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from service.errors import CloneSourceForbidden, InvalidRequest
from service.github.client import CloneAuth
from service.settings import Settings

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT_S = 10.0
DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
NETWORK_SCHEMES = frozenset(DEFAULT_PORTS)

_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
_V4_DENY: tuple[tuple[str, ipaddress.IPv4Network], ...] = tuple(
    (reason, ipaddress.IPv4Network(net))
    for reason, net in (
        ("unspecified", "0.0.0.0/8"),
        ("loopback", "127.0.0.0/8"),
        ("private", "10.0.0.0/8"),
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("CGNAT", "100.64.0.0/10"),
        ("link-local", "169.254.0.0/16"),
        ("multicast", "224.0.0.0/4"),
        ("reserved", "240.0.0.0/4"),
    )
)
_V6_ULA = ipaddress.IPv6Network("fc00::/7")


def classify(ip: IP) -> str | None:
    """Why a clone may not connect to `ip` (None: a public address). IPv6 forms that embed an
    IPv4 address (mapped, 6to4, Teredo) are judged by that address."""
    if ip in _METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv4Address):
        for reason, net in _V4_DENY:
            if ip in net:
                return reason
        return None
    embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
    if embedded is not None:
        return classify(embedded)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip in _V6_ULA:
        return "unique-local"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_site_local or ip.is_reserved:
        return "reserved"
    return None


def _forbid(url: str, reason: str, **details: object) -> CloneSourceForbidden:
    return CloneSourceForbidden(
        f"clone_url is not an allowed clone source: {reason}",
        {"clone_url": redact_url(url), "reason": reason, **details},
    )


def redact_url(url: str) -> str:
    """The URL without user info (a token in `https://x:TOKEN@host/` must never be echoed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def check_syntax(url: str, allowed_schemes: frozenset[str]) -> SplitResult:
    """The URL's parts, or a refusal: a scheme'd URL, an allowed scheme, no option or control char."""
    if url.startswith("-") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidRequest("clone_url contains forbidden characters", {})
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise InvalidRequest("clone_url is not a valid URL", {"clone_url": redact_url(url)}) from e
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise InvalidRequest(
            "clone_url must be a URL with a scheme (e.g. https://host/owner/repo.git or file:///srv/repo)",
            {"clone_url": redact_url(url)},
        )
    if scheme not in allowed_schemes:
        raise _forbid(
            url,
            f"scheme {scheme!r} is not allowed (allowed: {', '.join(sorted(allowed_schemes))}; "
            "DOCKYARD_CLONE_SCHEMES)",
            allowed_schemes=sorted(allowed_schemes),
        )
    if parts.query or parts.fragment:  # a query may carry a token that argv and logs would show
        raise InvalidRequest(
            "clone_url must not carry a query string or fragment (put credentials in user:password@)",
            {"clone_url": redact_url(url)},
        )
    return parts


# --- hosts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRule:
    host: str
    port: int | None  # None: any port

    @classmethod
    def parse(cls, text: str) -> HostRule:
        text = text.strip().lower().rstrip(".")
        if text.startswith("["):  # [v6]:port or [v6]
            host, _, rest = text[1:].partition("]")
            port = rest.removeprefix(":")
            return cls(host, int(port) if port else None)
        host, sep, port = text.rpartition(":")
        if sep and port.isdigit() and ":" not in host:
            return cls(host, int(port))
        return cls(text, None)

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and self.port in (None, port)


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def trusted_hosts(settings: Settings) -> list[HostRule]:
    """The configured git host (with its port) and ops' allowlist."""
    rules = [HostRule.parse(h) for h in split_list(settings.clone_allow_hosts)]
    web = urlsplit(settings.github_web_url)
    if web.hostname:
        scheme = web.scheme.lower()
        rules.append(HostRule(web.hostname.rstrip("."), web.port or DEFAULT_PORTS.get(scheme)))
    return rules


def _literal_ip(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        socket.inet_aton(host)  # 2130706433, 0x7f.1, 127.1: numbers the resolver takes as IPv4
    except OSError:
        return None
    raise ValueError("a non-canonical numeric address")


async def resolve(host: str, port: int) -> list[IP]:
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), RESOLVE_TIMEOUT_S
    )
    seen: dict[str, IP] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0]).split("%", 1)[0]
        seen.setdefault(addr, ipaddress.ip_address(addr))
    return list(seen.values())


def _pin_value(host: str, port: int, addrs: Iterable[IP]) -> str:
    shown = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in addrs)
    return f"{host}:{port}:{shown}"


async def _vet_network(url: str, parts: SplitResult, settings: Settings) -> list[tuple[str, str]]:
    """Refuse a host on a non-public address; the git config that pins the checked addresses."""
    scheme = parts.scheme.lower()
    try:
        raw_host = parts.hostname or ""  # as curl will see it (the pin must match it exactly)
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as e:  # a port that is not a number or out of range
        raise _forbid(url, "the port is not valid") from e
    host = raw_host.rstrip(".")
    if not host:
        raise _forbid(url, "the URL has no host")
    if not host.isascii():
        raise _forbid(url, "the host must be written in its ASCII (punycode) form")
    if any(rule.matches(host, port) for rule in trusted_hosts(settings)):
        return []
    try:
        literal = _literal_ip(host)
    except ValueError as e:
        raise _forbid(url, f"the host is {e}; write the address in its usual form") from e
    if literal is not None:
        addrs = [literal]
    else:
        try:
            addrs = await resolve(host, port)
        except (OSError, TimeoutError, UnicodeError) as e:
            raise _forbid(url, "the host does not resolve") from e
        if not addrs:
            raise _forbid(url, "the host does not resolve")
    for addr in addrs:
        why = classify(addr)
        if why is not None:
            raise _forbid(
                url,
                f"the host resolves to a {why} address; ops may allow it with DOCKYARD_CLONE_ALLOW_HOSTS",
                address_class=why,
            )
    if literal is not None or scheme not in ("http", "https"):
        return []  # nothing to resolve again (a literal), or no way to pin it (ssh, git)
    return [("http.curloptResolve", _pin_value(raw_host, port, addrs))]


# --- file:// ------------------------------------------------------------------------------------


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _git_dirs(repo: Path) -> list[Path]:
    """Every place git would read objects from for `repo`: its git dir (a `.git` file's target),
    the common dir, the object store, and each alternate, all resolved."""
    gitdir = repo
    dotgit = repo / ".git"
    if dotgit.is_file():
        text = dotgit.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = (repo / text.removeprefix("gitdir:").strip()).resolve()
    elif dotgit.is_dir():
        gitdir = dotgit.resolve()
    found = [gitdir]
    common = gitdir / "commondir"
    if common.is_file():
        gitdir = (gitdir / common.read_text(errors="replace").strip()).resolve()
        found.append(gitdir)
    objects = (gitdir / "objects").resolve()
    found.append(objects)
    alternates = objects / "info" / "alternates"
    if alternates.is_file():
        for line in alternates.read_text(errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                found.append((objects / line).resolve())
    return found


def _vet_file(url: str, parts: SplitResult, settings: Settings) -> str:
    """The canonical file:// URL git is given, or a refusal (runs in a thread: it reads the disk)."""
    if parts.netloc not in ("", "localhost"):
        raise _forbid(url, "a file:// URL names no host (write file:///path)")
    raw = unquote(parts.path)
    if not raw.startswith("/"):
        raise _forbid(url, "a file:// path must be absolute")
    path = Path(os.path.realpath(raw))
    state = settings.state_dir.resolve()
    roots = [Path(os.path.realpath(r)) for r in split_list(settings.clone_file_roots)]
    if not roots:
        raise _forbid(url, "file:// clones are off (ops may allow roots with DOCKYARD_CLONE_FILE_ROOTS)")
    try:
        places = [path, *_git_dirs(path)]
    except OSError as e:
        raise _forbid(url, "the path cannot be read") from e
    for place in places:
        if _under(place, state):
            raise _forbid(url, "the path is inside the service's own state dir")
        if not any(_under(place, root) for root in roots):
            raise _forbid(
                url,
                "the path is outside every allowed root (DOCKYARD_CLONE_FILE_ROOTS)"
                if place == path
                else "the repository's git data lies outside every allowed root (DOCKYARD_CLONE_FILE_ROOTS)",
            )
    return path.as_uri()


# --- credentials ----------------------------------------------------------------------------------


def _config_env(entries: list[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(entries))} if entries else {}
    for i, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


async def vet_clone_url(url: str, settings: Settings) -> CloneAuth:
    """The source a `clone_url` job clones from (URL for git, its env, the secrets to scrub),
    or `400 clone_source_forbidden` / `400 invalid_request`."""
    parts = check_syntax(url, settings.allowed_clone_schemes())
    scheme = parts.scheme.lower()
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    secrets = [s for s in {parts.username or "", parts.password or "", user, password} if s]
    if scheme == "file":
        if secrets:
            raise _forbid(url, "a file:// URL carries no credentials")
        return CloneAuth(url=await asyncio.to_thread(_vet_file, url, parts, settings), env={}, secrets=[])
    config = await _vet_network(url, parts, settings) if scheme in NETWORK_SCHEMES else []
    git_url = redact_url(urlunsplit(parts._replace(scheme=scheme)))
    if secrets:
        if scheme not in ("http", "https"):
            raise _forbid(url, f"credentials in a {scheme}:// URL are not supported")
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        secrets.append(basic)
    return CloneAuth(url=git_url, env=_config_env(config), secrets=sorted(secrets, key=len, reverse=True))
