"""What only the async flavour has; `_sync_compat.py` is its twin with the same names.

`_async.py` is written once and `_sync.py` is generated from it (sdk/scripts/generate_sync.py), so
the few places where asyncio and plain calls truly differ live here, behind names both twins define:

- `sleep`: asyncio.sleep here, time.sleep there;
- `creating(make)`: here the `Creating` you await for the job's handle or `async with` to also delete
  the job on exit; there `make()` itself, the handle (`with dy.jobs.create(...) as job`);
- `FLAVOUR`: the User-Agent's word for the flavour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard_client._async import AsyncJob

__all__ = ["FLAVOUR", "Creating", "creating", "sleep"]  # the twin has the same

FLAVOUR = "async"
sleep = asyncio.sleep


class Creating:
    """`dy.jobs.create(...)`: await it for the job's handle, or `async with` it to also delete the
    job on exit. The job is created once, whichever is done."""

    def __init__(self, make: Callable[[], Awaitable[AsyncJob]]) -> None:
        self._make = make
        self._job: AsyncJob | None = None

    async def _get(self) -> AsyncJob:
        if self._job is None:
            self._job = await self._make()
        return self._job

    def __await__(self) -> Generator[Any, None, AsyncJob]:
        return self._get().__await__()

    async def __aenter__(self) -> AsyncJob:
        return await (await self._get()).__aenter__()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._job is not None:
            await self._job.__aexit__(et, e, tb)


def creating(make: Callable[[], Awaitable[AsyncJob]]) -> Creating:
    """The answer of `jobs.create`: nothing is sent until it is awaited or entered."""
    return Creating(make)
