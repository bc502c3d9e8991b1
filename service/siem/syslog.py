"""Syslog sinks: RFC 5424 messages over UDP (RFC 5426), TCP with octet-counting framing
(RFC 6587 §3.4.1) and TLS (RFC 5425, the same framing).

The formatter is written here rather than taken from PyPI: the maintained-looking candidate
(`rfc5424-logging-handler`, last release 2019) is a synchronous `logging.Handler` that formats
`LogRecord`s and owns its socket; we need bytes from an audit record to send on asyncio streams.
RFC 5424's syntax for what we emit is small (header, one SD-ELEMENT, MSG), and the unit tests
check it against the ABNF.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
from pathlib import Path

from service.audit import AuditRecord
from service.siem.base import SinkError, record_body

NIL = "-"
SD_ID = "dockyard@32473"  # 32473: the private enterprise number RFC 5612 reserves for examples
SEVERITY_INFO = 6
SEVERITY_NOTICE = 5
UDP_MAX = 65_000  # an IPv4 datagram's payload is at most 65 507 bytes
_SD_PARAMS = ("seq", "hash", "prev_hash", "key_id", "mac", "action", "outcome", "actor", "job_id", "tenant")


def _printable(text: str, limit: int) -> str:
    """RFC 5424 header fields: PRINTUSASCII (33..126), bounded; NIL when nothing is left."""
    kept = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return kept or NIL


def _sd_value(value: object) -> str:
    """PARAM-VALUE: UTF-8, with `"`, `\\` and `]` escaped by a backslash (RFC 5424 §6.3.3)."""
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_record(
    record: AuditRecord,
    *,
    facility: int = 13,
    hostname: str | None = None,
    app_name: str = "dockyard",
    procid: str | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """One audit record as an RFC 5424 message.

    MSGID is the action; the structured data `[dockyard@32473 seq=… hash=… …]` carries the seq and
    chain hash a receiver dedupes on; MSG is the record's JSON (the `GET /v1/audit` shape), ASCII
    only (non-ASCII escaped as `\\uXXXX`) so it is MSG-ANY and needs no BOM. `max_bytes` (UDP): a
    longer message drops `argv` and `details` from MSG (marked `"truncated": true`); the SD keeps
    the seq and hash either way.
    """
    severity = SEVERITY_INFO if record.outcome == "ok" else SEVERITY_NOTICE
    fields = {name: getattr(record, name) for name in _SD_PARAMS}
    params = " ".join(f'{k}="{_sd_value(v)}"' for k, v in fields.items() if v is not None)
    header = " ".join(
        (
            f"<{facility * 8 + severity}>1",
            record.at,
            _printable(hostname if hostname is not None else socket.gethostname(), 255),
            _printable(app_name, 48),
            _printable(procid if procid is not None else str(os.getpid()), 128),
            _printable(record.action, 32),
            f"[{SD_ID} {params}]",
        )
    )
    body = record_body(record)
    msg = (header + " " + _json(body)).encode()
    if max_bytes is not None and len(msg) > max_bytes:
        body.update(argv=None, details={}, truncated=True)
        msg = (header + " " + _json(body)).encode()
    return msg


def _json(body: object) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG` (RFC 5425 frames TLS the same way)."""
    return str(len(message)).encode() + b" " + message


class _Settings:
    def __init__(self, facility: int, hostname: str | None, timeout_s: float):
        self.facility = facility
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.procid = str(os.getpid())
        self.timeout_s = timeout_s


class UdpSyslogSink:
    """Fire and forget (RFC 5426): "delivered" means sent; the receiver dedupes on seq."""

    def __init__(
        self, url: str, host: str, port: int, *, facility: int, hostname: str | None, timeout_s: float
    ):
        self.name = f"syslog:{url}"
        self._addr = (host, port)
        self._cfg = _Settings(facility, hostname, timeout_s)
        self._transport: asyncio.DatagramTransport | None = None

    async def _open(self) -> asyncio.DatagramTransport:
        if self._transport is not None and not self._transport.is_closing():
            return self._transport
        loop = asyncio.get_running_loop()
        transport, _ = await asyncio.wait_for(
            loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=self._addr),
            self._cfg.timeout_s,
        )
        self._transport = transport
        return transport

    async def send(self, records: list[AuditRecord]) -> None:
        try:
            transport = await self._open()
            for record in records:
                transport.sendto(
                    format_record(
                        record,
                        facility=self._cfg.facility,
                        hostname=self._cfg.hostname,
                        procid=self._cfg.procid,
                        max_bytes=UDP_MAX,
                    )
                )
        except (OSError, TimeoutError) as e:
            await self.close()
            raise SinkError(f"{self.name}: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class StreamSyslogSink:
    """TCP or TLS: one kept connection, octet-counted frames; reconnects after any failure.

    The stream has no acknowledgement (RFC 5425/6587 have none): a batch counts as delivered once
    written and drained into the kernel. A connection the receiver closed is noticed (EOF) before
    the next batch, which then goes out on a fresh one.
    """

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        *,
        tls: bool,
        ca: Path | None,
        facility: int,
        hostname: str | None,
        timeout_s: float,
    ):
        self.name = f"syslog:{url}"
        self._host, self._port = host, port
        self._tls = tls
        self._ca = ca
        self._ssl: ssl.SSLContext | None = None
        self._cfg = _Settings(facility, hostname, timeout_s)
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ca = self._ca
            self._ssl = await asyncio.to_thread(
                ssl.create_default_context, cafile=str(ca) if ca is not None else None
            )
        return self._ssl

    async def _connect(self) -> asyncio.StreamWriter:
        if self._conn is not None:
            reader, writer = self._conn
            if not reader.at_eof() and not writer.is_closing():
                return writer
            await self.close()
        context = await self._context() if self._tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port, ssl=context), self._cfg.timeout_s
        )
        self._conn = (reader, writer)
        return writer

    async def send(self, records: list[AuditRecord]) -> None:
        try:
            writer = await self._connect()
            data = b"".join(
                octet_frame(
                    format_record(
                        r, facility=self._cfg.facility, hostname=self._cfg.hostname, procid=self._cfg.procid
                    )
                )
                for r in records
            )
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self._cfg.timeout_s)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            await self.close()
            raise SinkError(f"{self.name}: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()
            try:
                await asyncio.wait_for(conn[1].wait_closed(), 2)
            except (OSError, TimeoutError, ssl.SSLError):
                pass
