"""SIEM delivery pieces: the RFC 5424 formatter checked against the ABNF, octet-counting framing,
and the delivery loop against real local collectors (a TCP syslog listener, an HTTP collector):
in order, exactly once across a restart, retried while the collector is down, with the lag seen.

The collectors and the RFC 5424 parser live here; tests/integration/test_siem.py uses them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from service import metrics
from service.audit import Actor, AuditEntry, AuditRecord
from service.settings import ConfigError, Settings
from service.siem import SiemService, build_sinks, format_record, octet_frame, record_body
from service.store import Store

# --- RFC 5424 (§6), strictly: what a receiver may rely on ----------------------------------------

SD_NAME = r"[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}"  # PRINTUSASCII except '=', SP, ']', '"'
PARAM_VALUE = r'(?:[^"\\\]]|\\["\\\]])*'
SD_ELEMENT = rf'\[{SD_NAME}(?: {SD_NAME}="{PARAM_VALUE}")*\]'
SYSLOG_MSG = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) "
    r"(?P<ts>-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<host>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) (?P<procid>[\x21-\x7e]{1,128}) "
    r"(?P<msgid>[\x21-\x7e]{1,32}) "
    rf"(?P<sd>-|(?:{SD_ELEMENT})+)"
    r"(?: (?P<msg>.*))?$",
    re.DOTALL,
)
PARAM = re.compile(rf'({SD_NAME})="({PARAM_VALUE})"')


@dataclass
class Syslog:
    pri: int
    msgid: str
    sd_id: str
    params: dict[str, str]
    msg: str


def parse_5424(raw: bytes) -> Syslog:
    text = raw.decode("utf-8")
    m = SYSLOG_MSG.match(text)
    assert m is not None, f"not RFC 5424: {text[:300]!r}"
    assert m["version"] == "1" and int(m["pri"]) <= 191, text[:100]
    sd = m["sd"]
    sd_id = sd[1:].split(" ", 1)[0]
    params = {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in PARAM.findall(sd[len(sd_id) + 1 :])}
    return Syslog(int(m["pri"]), m["msgid"], sd_id, params, m["msg"] or "")


def split_octet_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """RFC 6587 octet counting: complete frames, and the unfinished rest."""
    frames = []
    while True:
        space = data.find(b" ")
        if space < 0:
            return frames, data
        assert data[:space].isdigit() and not data.startswith(b"0"), f"bad frame length: {data[:20]!r}"
        length = int(data[:space])
        if len(data) < space + 1 + length:
            return frames, data
        frames.append(data[space + 1 : space + 1 + length])
        data = data[space + 1 + length :]


# --- collectors --------------------------------------------------------------------------------


@dataclass
class Collector:
    """What a receiver got: syslog messages and HTTP batches (each record's JSON)."""

    messages: list[Syslog] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    down: bool = False  # the HTTP collector answers 503

    def syslog_seqs(self) -> list[int]:
        return [int(m.params["seq"]) for m in self.messages]

    def http_seqs(self) -> list[int]:
        return [r["seq"] for b in self.batches for r in b]


class TcpSyslog:
    """A TCP (or TLS) syslog listener; `close()` also drops the open connections (receiver down)."""

    def __init__(self, collector: Collector, ssl: Any = None):
        self.collector = collector
        self.ssl = ssl
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> TcpSyslog:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        rest = b""
        try:
            while chunk := await reader.read(65536):
                frames, rest = split_octet_frames(rest + chunk)
                self.collector.messages.extend(parse_5424(f) for f in frames)
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.close()
            await self.server.wait_closed()
            self.server = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, collector: Collector):
        self.collector = collector

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.collector.messages.append(parse_5424(data))


async def udp_syslog(collector: Collector) -> tuple[asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(collector), local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


async def http_collector(collector: Collector) -> tuple[web.AppRunner, int]:
    async def post(request: web.Request) -> web.Response:
        if collector.down:
            return web.Response(status=503, text="down for maintenance")
        body = await request.json()
        assert set(body) == {"records"}, body
        collector.auth.append(request.headers.get("Authorization"))
        collector.batches.append(body["records"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/ingest", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


# --- the formatter and framing -----------------------------------------------------------------


def _record(**kw: Any) -> AuditRecord:
    base: dict[str, Any] = dict(
        seq=42,
        at="2026-12-02T00:26:05.123456Z",
        actor="bot-1",
        role="bot",
        job_id="job_1",
        action="tool.write_file",
        container_id="c1",
        argv=["write_file", "src/a.py"],
        exit_code=0,
        duration_ms=12,
        bytes_in=9,
        bytes_out=0,
        outcome="ok",
        details={"path": "src/a.py", "content_sha256": "ab" * 32},
        prev_hash="1" * 64,
        hash="2" * 64,
        tenant="team-a",
        key_id="k" * 16,
        mac="3" * 64,
    )
    base.update(kw)
    return AuditRecord(**base)


def test_a_record_is_one_rfc5424_message_with_seq_and_hash_in_its_structured_data() -> None:
    record = _record()
    parsed = parse_5424(format_record(record, facility=13, hostname="box-host", procid="77"))
    assert parsed.pri == 13 * 8 + 6  # log audit, informational
    assert parsed.msgid == "tool.write_file"
    assert parsed.sd_id == "dockyard@32473"
    assert parsed.params["seq"] == "42" and parsed.params["hash"] == "2" * 64
    assert parsed.params["prev_hash"] == "1" * 64 and parsed.params["mac"] == "3" * 64
    body = json.loads(parsed.msg)
    assert body == record_body(record)  # exactly what GET /v1/audit shows
    assert body["path"] == "src/a.py" and body["content_sha256"] == "ab" * 32


def test_values_are_escaped_and_the_message_stays_ascii() -> None:
    record = _record(actor='ev"il]\\x', outcome="denied", details={"note": "Grüße 🚀"})
    raw = format_record(record, hostname="h ö st", procid="1")
    raw.decode("ascii")  # MSG-ANY: non-ASCII escaped in the JSON, so no BOM is needed
    parsed = parse_5424(raw)
    assert parsed.params["actor"] == 'ev"il]\\x'
    assert parsed.pri == 13 * 8 + 5  # not ok: notice
    assert json.loads(parsed.msg)["details"] == {"note": "Grüße 🚀"}
    assert raw.split(b" ")[2] == b"hst"  # HOSTNAME: printable ASCII only


def test_an_oversized_udp_message_keeps_valid_json_and_its_seq() -> None:
    record = _record(argv=["x" * 100_000])
    raw = format_record(record, hostname="h", procid="1", max_bytes=65_000)
    assert len(raw) < 65_000
    parsed = parse_5424(raw)
    body = json.loads(parsed.msg)
    assert body["truncated"] is True and body["argv"] is None and body["hash"] == "2" * 64
    assert parsed.params["seq"] == "42"


def test_octet_counting_frames_split_back_even_with_spaces_and_newlines() -> None:
    msgs = [b"<110>1 - - - - - - one two\nthree", b"<110>1 - - - - - - x"]
    stream = b"".join(octet_frame(m) for m in msgs)
    assert stream.startswith(str(len(msgs[0])).encode() + b" <110>")
    frames, rest = split_octet_frames(stream[:-3])
    assert frames == msgs[:1] and rest
    assert split_octet_frames(stream) == (msgs, b"")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"siem_syslog": "syslog://h:514"}, "udp://host:514"),
        ({"siem_syslog": "udp://:514"}, "udp://host:514"),
        ({"siem_syslog": "udp://h:514", "siem_syslog_ca": "/etc/hostname"}, "tls://"),
        ({"siem_http": "ftp://h/x"}, "http(s)://"),
        ({"siem_http": "http://h/x", "siem_http_token_file": "/nonexistent"}, "TOKEN_FILE"),
    ],
)
def test_misconfigured_sinks_refuse_to_start_with_the_fix(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build_sinks(Settings(**env))  # type: ignore[arg-type]


def test_no_sink_configured_is_off() -> None:
    assert build_sinks(Settings()) == []


# --- the delivery loop against real collectors ----------------------------------------------------

BOT = Actor("bot-1", "bot", "team-a")


async def _add(store: Store, n: int) -> None:
    for i in range(n):
        await store.audit(AuditEntry(actor=BOT, action="tool.read_file", outcome="ok", argv=["r", str(i)]))


async def _until(check: Any) -> None:
    async with asyncio.timeout(10):
        while not check():  # noqa: ASYNC110 (polls what collectors and the loop did)
            await asyncio.sleep(0.02)


def _lag(kind: str) -> tuple[float, float]:
    records = metrics.REGISTRY.get_sample_value("dockyard_siem_lag_records", {"sink": kind})
    seconds = metrics.REGISTRY.get_sample_value("dockyard_siem_lag_seconds", {"sink": kind})
    assert records is not None and seconds is not None
    return records, seconds


async def test_every_record_once_in_order_across_a_restart_and_an_outage(tmp_path: Path) -> None:
    got = Collector()
    server = await TcpSyslog(got).start()
    port = server.port
    runner, http_port = await http_collector(got)
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    settings = Settings(
        siem_syslog=f"tcp://127.0.0.1:{port}",
        siem_http=f"http://127.0.0.1:{http_port}/ingest",
        siem_http_token_file=token,
        siem_batch=3,
        siem_retry_max_s=0.2,
        state_dir=tmp_path / "state",
    )
    store = await Store.open(settings.state_dir)
    try:
        await _add(store, 4)  # before delivery starts: caught up from the cursor
        siem = SiemService(store, build_sinks(settings), settings)
        await siem.start()
        await _add(store, 3)
        await _until(lambda: len(got.messages) == 7 and len(got.http_seqs()) == 7)
        await siem.stop()
        await _add(store, 2)  # while "the service is down"

        siem = SiemService(store, build_sinks(settings), settings)
        await siem.start()
        await _until(lambda: len(got.messages) == 9 and len(got.http_seqs()) == 9)

        # Both collectors go away: the syslog listener closes, the HTTP one answers 503.
        await server.close()
        got.down = True
        await asyncio.sleep(0.1)
        await _add(store, 5)
        await _until(lambda: siem.status()["http"]["state"] == "retrying")
        await asyncio.sleep(1.1)
        records, seconds = _lag("http")
        assert records == 5 and seconds >= 1.0
        assert _lag("syslog")[0] >= 1  # the closed connection is noticed, the batch held back
        got.down = False
        await server.start()
        await _until(lambda: len(got.messages) >= 14 and len(got.http_seqs()) == 14)
        await siem.stop()
        assert _lag("http") == (0, 0) and _lag("syslog") == (0, 0)
    finally:
        await server.close()
        await runner.cleanup()
        await store.close()

    assert got.http_seqs() == list(range(1, 15))
    assert got.syslog_seqs() == list(range(1, 15))
    assert set(got.auth) == {"Bearer s3cret-token"}
    assert max(len(b) for b in got.batches) <= 3
    stored = {r.seq: r.hash for r in await _reopen_records(settings.state_dir, settings)}
    assert all(m.params["hash"] == stored[int(m.params["seq"])] for m in got.messages)


async def _reopen_records(state: Path, settings: Settings) -> list[AuditRecord]:
    store = await Store.open(state)
    try:
        for sink in build_sinks(settings):  # the cursors persisted: a next start sends nothing again
            assert await store.siem_cursor(sink.name) == 14
        return await store.audit_records()
    finally:
        await store.close()


async def test_udp_sink_sends_each_record_as_one_datagram(tmp_path: Path) -> None:
    got = Collector()
    transport, port = await udp_syslog(got)
    settings = Settings(siem_syslog=f"udp://127.0.0.1:{port}", state_dir=tmp_path)
    store = await Store.open(tmp_path)
    siem = SiemService(store, build_sinks(settings), settings)
    try:
        await siem.start()
        await _add(store, 5)
        await _until(lambda: len(got.messages) == 5)
    finally:
        await siem.stop()
        transport.close()
        with contextlib.suppress(Exception):
            await store.close()
    assert got.syslog_seqs() == [1, 2, 3, 4, 5]
