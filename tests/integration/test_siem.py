"""SIEM delivery end to end: the real service streams its audit records to a local syslog
receiver (UDP, TCP with octet counting, TLS with a throwaway CA) and an HTTP collector; every
record arrives exactly once, in order, across a restart of the service, and a collector that was
down gets everything once it is back, the lag metric showing it meanwhile."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import ssl
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import Api
from tests.integration.aux_service import audit, aux, wait_for
from tests.unit.test_siem import Collector, TcpSyslog, http_collector, udp_syslog

pytestmark = pytest.mark.docker
T = TypeVar("T")
TOKEN = "collector-token-0123456789"


def _throwaway_ca(root: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA made for this test and a server certificate it signed for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test CA")])
    ca_cert = cert("dockyard test CA", ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    server = cert("127.0.0.1", key, ca_name, ca_key, False)
    (root / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(root / "server.pem", root / "server.key")
    return root / "ca.pem", context


class Receivers:
    """The collectors on their own event loop in a thread (the test itself is synchronous)."""

    def __init__(self, root: Path):
        self.got = Collector()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ca, self.tls_context = _throwaway_ca(root)
        self.tcp = self.run(TcpSyslog(self.got).start())
        self.tls = self.run(TcpSyslog(self.got, ssl=self.tls_context).start())
        self.udp, self.udp_port = self.run(udp_syslog(self.got))
        self.http, self.http_port = self.run(http_collector(self.got))
        self.token_file = root / "collector.token"
        self.token_file.write_text(TOKEN + "\n")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def env(self, syslog: str) -> dict[str, str]:
        port = {"udp": self.udp_port, "tcp": self.tcp.port, "tls": self.tls.port}[syslog]
        env = {
            "DOCKYARD_SIEM_SYSLOG": f"{syslog}://127.0.0.1:{port}",
            "DOCKYARD_SIEM_HTTP": f"http://127.0.0.1:{self.http_port}/ingest",
            "DOCKYARD_SIEM_HTTP_TOKEN_FILE": str(self.token_file),
            "DOCKYARD_SIEM_BATCH": "4",
            "DOCKYARD_SIEM_RETRY_MAX_S": "0.5",
        }
        if syslog == "tls":
            env["DOCKYARD_SIEM_SYSLOG_CA"] = str(self.ca)
        return env

    def close(self) -> None:
        async def down() -> None:
            await self.tcp.close()
            await self.tls.close()
            self.udp.close()
            await self.http.cleanup()

        self.run(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    r = Receivers(tmp_path)
    try:
        yield r
    finally:
        r.close()


def _stored(svc: Any) -> list[tuple[int, str]]:
    conn = svc.db()
    try:
        return [(int(s), h) for s, h in conn.execute("SELECT seq, hash FROM audit ORDER BY seq")]
    finally:
        conn.close()


def _lag(api: Api, family: str) -> float:
    text = Api(api.service, None).get("/metrics").text
    m = re.search(rf'^dockyard_siem_{family}\{{sink="http"\}} (\S+)$', text, re.M)
    assert m is not None, f"no {family} gauge for the http sink in /metrics"
    return float(m[1])


@pytest.mark.parametrize("syslog", ["udp", "tcp", "tls"])
def test_every_record_arrives_exactly_once_across_a_restart(
    syslog: str, receivers: Receivers, tmp_path: Path, fixture_repo: Any, docker_client: Any
) -> None:
    got = receivers.got
    with aux(tmp_path / "svc", fixture_repo, docker_client, **receivers.env(syslog)) as (svc, api, make_job):
        job = make_job()
        api.write(job["id"], "siem/before.txt", "before the restart\n")
        api.read(job["id"], "siem/before.txt")
        svc.restart()
        api.write(job["id"], "siem/after.txt", "after the restart\n")
        api.read(job["id"], "README.md")
        assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
        shown = {r["seq"]: r for r in audit(api)}
        svc.stop()  # a clean stop flushes what is left
        stored = _stored(svc)

    seqs = [s for s, _ in stored]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 6
    actions = {shown[s]["action"] for s in shown}
    assert {"job.create", "tool.write_file", "tool.read_file", "job.delete"} <= actions
    # HTTP: every record once, in order, exactly as GET /v1/audit shows it, with the bearer token.
    assert got.http_seqs() == seqs
    http_records = [r for b in got.batches for r in b]
    assert all(r == shown[r["seq"]] for r in http_records if r["seq"] in shown)
    assert set(got.auth) == {f"Bearer {TOKEN}"}
    assert max(len(b) for b in got.batches) <= 4
    # Syslog: RFC 5424 (parsed strictly on receipt), every seq once in order, with the chain's hash.
    assert got.syslog_seqs() == seqs
    assert [m.params["hash"] for m in got.messages] == [h for _, h in stored]
    write = next(m for m in got.messages if m.msgid == "tool.write_file")
    assert '"path":"siem/before.txt"' in write.msg


def test_a_collector_that_was_down_gets_everything_after_it_comes_back(
    receivers: Receivers, tmp_path: Path, fixture_repo: Any, docker_client: Any
) -> None:
    got = receivers.got
    with aux(tmp_path / "svc", fixture_repo, docker_client, **receivers.env("tcp")) as (svc, api, make_job):
        job = make_job()
        wait_for(lambda: got.http_seqs() and len(got.http_seqs()) == len(_stored(svc)), what="caught up")
        got.down = True  # the HTTP collector answers 503
        receivers.run(receivers.tcp.close())  # the syslog receiver goes away, connection and all
        for i in range(3):
            api.write(job["id"], f"siem/down-{i}.txt", f"while the collector is down {i}\n")
        wait_for(lambda: _lag(api, "lag_records") >= 3, what="records behind on /metrics")
        wait_for(lambda: _lag(api, "lag_seconds") > 1.0, what="seconds behind on /metrics")
        ready = api.get("/readyz")
        assert ready.status_code == 200  # a sink behind does not make the service unready
        sinks = ready.json()["checks"]["siem"]
        assert sinks["http"]["state"] == "retrying" and sinks["http"]["behind"] >= 3, sinks
        got.down = False
        receivers.run(receivers.tcp.start())  # back, on the same port
        n = len(_stored(svc))
        wait_for(lambda: len(got.http_seqs()) >= n and len(got.messages) >= n, timeout=30, what="delivered")
        wait_for(lambda: _lag(api, "lag_records") == 0 and _lag(api, "lag_seconds") == 0, what="no lag")
        state = lambda: api.get("/readyz").json()["checks"]["siem"]["http"]["state"]  # noqa: E731
        wait_for(lambda: state() == "caught up", what="the sink caught up on /readyz")
        assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
        svc.stop()
        stored = [s for s, _ in _stored(svc)]
    assert got.http_seqs() == stored
    assert got.syslog_seqs() == stored
