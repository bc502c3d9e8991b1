"""The environment cache: which env volumes exist, for which key, how big, last used when.

Docker volume labels cannot change after creation, so the state lives in a small SQLite file of
its own (`<state_dir>/envs.sqlite`); the volumes carry the key and the instance as labels so a
restart can tell its own from leftovers. The size budget is enforced by LRU eviction after each
build (a volume a box still mounts cannot be removed and is skipped).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS envs (
    key TEXT PRIMARY KEY,
    volume TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    refused TEXT NOT NULL DEFAULT '[]',
    duration_ms INTEGER,
    size_mb REAL,
    created_at REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS envs_lru ON envs(status, last_used);
"""


@dataclass
class CacheEntry:
    key: str
    volume: str
    ecosystem: str
    status: str  # ready | failed
    reason: str | None = None
    refused: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: int | None = None
    size_mb: float | None = None
    created_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)


_COLUMNS = "key, volume, ecosystem, status, reason, refused, duration_ms, size_mb, created_at, last_used"


def _row(row: Any) -> CacheEntry:
    return CacheEntry(
        key=row[0],
        volume=row[1],
        ecosystem=row[2],
        status=row[3],
        reason=row[4],
        refused=json.loads(row[5]),
        duration_ms=row[6],
        size_mb=row[7],
        created_at=row[8],
        last_used=row[9],
    )


class EnvCache:
    def __init__(self, db: aiosqlite.Connection):
        self._db = db

    @classmethod
    async def open(cls, state_dir: Path) -> EnvCache:
        await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(state_dir / "envs.sqlite")
        await db.executescript(SCHEMA)
        await db.commit()
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def get(self, key: str) -> CacheEntry | None:
        async with self._db.execute(f"SELECT {_COLUMNS} FROM envs WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def put(self, e: CacheEntry) -> None:
        await self._db.execute(
            f"INSERT OR REPLACE INTO envs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                e.key,
                e.volume,
                e.ecosystem,
                e.status,
                e.reason,
                json.dumps(e.refused),
                e.duration_ms,
                e.size_mb,
                e.created_at,
                e.last_used,
            ),
        )
        await self._db.commit()

    async def touch(self, key: str) -> None:
        await self._db.execute("UPDATE envs SET last_used = ? WHERE key = ?", (time.time(), key))
        await self._db.commit()

    async def delete(self, key: str) -> None:
        await self._db.execute("DELETE FROM envs WHERE key = ?", (key,))
        await self._db.commit()

    async def ready_lru(self) -> list[CacheEntry]:
        """Ready environments, least recently used first."""
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM envs WHERE status = 'ready' ORDER BY last_used ASC"
        ) as cur:
            return [_row(r) for r in await cur.fetchall()]
