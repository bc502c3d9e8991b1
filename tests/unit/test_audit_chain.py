import itertools
from dataclasses import replace
from pathlib import Path

from service.audit import GENESIS, Actor, AuditEntry, chain_hash
from service.store import Store

BOT = Actor("bot-1", "bot")


async def test_records_chain_and_detect_tampering(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        for i in range(3):
            await store.audit(
                AuditEntry(actor=BOT, action="tool.read_file", outcome="ok", argv=["x", str(i)])
            )
        records = await store.audit_records()
    finally:
        await store.close()
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    for prev, rec in itertools.pairwise(records):
        assert rec.prev_hash == prev.hash
    for rec in records:
        assert chain_hash(rec) == rec.hash
    # Any change to a record's content changes its hash, so the chain exposes it.
    altered = replace(records[1], argv=["x", "999"])
    assert chain_hash(altered) != records[1].hash
