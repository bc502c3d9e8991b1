"""The sinks ops configured (DOCKYARD_SIEM_*), checked at start with fixable messages."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from service.settings import ConfigError, Settings
from service.siem.base import Sink
from service.siem.http import HttpSink
from service.siem.syslog import StreamSyslogSink, UdpSyslogSink

SYSLOG_PORTS = {"udp": 514, "tcp": 601, "tls": 6514}  # IANA: syslog, syslog-conn, syslog-tls


def _readable(path: Path, setting: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{setting}: {path} is not a readable file")
    return path


def build_sinks(settings: Settings) -> list[Sink]:
    sinks: list[Sink] = []
    if settings.siem_syslog:
        sinks.append(_syslog(settings))
    elif settings.siem_syslog_ca is not None:
        raise ConfigError("DOCKYARD_SIEM_SYSLOG_CA is set but DOCKYARD_SIEM_SYSLOG is not")
    if settings.siem_http:
        sinks.append(_http(settings))
    return sinks


def _syslog(settings: Settings) -> Sink:
    url = (settings.siem_syslog or "").strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"DOCKYARD_SIEM_SYSLOG: {url!r}: {e}") from e
    if scheme not in SYSLOG_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(
            f"DOCKYARD_SIEM_SYSLOG: {url!r}: write udp://host:514, tcp://host:601 or tls://host:6514"
        )
    ca = settings.siem_syslog_ca
    if ca is not None:
        if scheme != "tls":
            raise ConfigError("DOCKYARD_SIEM_SYSLOG_CA only applies to a tls:// syslog receiver")
        _readable(ca, "DOCKYARD_SIEM_SYSLOG_CA")
    host, port = parts.hostname, port or SYSLOG_PORTS[scheme]
    facility, hostname, timeout_s = (
        settings.siem_syslog_facility,
        settings.siem_syslog_hostname,
        settings.siem_timeout_s,
    )
    if scheme == "udp":
        return UdpSyslogSink(url, host, port, facility=facility, hostname=hostname, timeout_s=timeout_s)
    return StreamSyslogSink(
        url, host, port, tls=scheme == "tls", ca=ca, facility=facility, hostname=hostname, timeout_s=timeout_s
    )


def _http(settings: Settings) -> Sink:
    url = (settings.siem_http or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"DOCKYARD_SIEM_HTTP: {url!r}: write http(s)://host[:port]/path")
    token: str | None = None
    if settings.siem_http_token_file is not None:
        path = _readable(settings.siem_http_token_file, "DOCKYARD_SIEM_HTTP_TOKEN_FILE")
        token = path.read_text().strip()
        if not token:
            raise ConfigError(f"DOCKYARD_SIEM_HTTP_TOKEN_FILE: {path} is empty")
    ca = settings.siem_http_ca
    if ca is not None:
        _readable(ca, "DOCKYARD_SIEM_HTTP_CA")
    return HttpSink(url, token=token, ca=ca, timeout_s=settings.siem_timeout_s)
