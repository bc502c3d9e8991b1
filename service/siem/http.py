"""The HTTP sink: each batch POSTed as `{"records": [...]}` (the `GET /v1/audit` shape), aiohttp."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp

from service.audit import AuditRecord
from service.siem.base import SinkError, record_body


class HttpSink:
    """Any 2xx is delivered; anything else (or no answer) is retried. The receiver dedupes on seq."""

    def __init__(self, url: str, *, token: str | None, ca: Path | None, timeout_s: float):
        self.name = f"http:{url}"
        self._url = url
        self._token = token
        self._ca = ca
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            context: ssl.SSLContext | bool = True
            if self._ca is not None:
                context = await asyncio.to_thread(ssl.create_default_context, cafile=str(self._ca))
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers=headers, connector=aiohttp.TCPConnector(ssl=context)
            )
        return self._session

    async def send(self, records: list[AuditRecord]) -> None:
        body = {"records": [record_body(r) for r in records]}
        try:
            session = await self._client()
            async with session.post(self._url, json=body) as resp:
                if resp.status // 100 != 2:
                    text = (await resp.text(errors="replace"))[:200]
                    raise SinkError(f"{self.name}: HTTP {resp.status}: {text}")
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise SinkError(f"{self.name}: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
