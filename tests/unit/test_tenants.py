"""The per-tenant slot limiter: a tenant's storm queues behind itself, never in front of another
tenant; too many waiting, or waiting too long, is a 429 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from service.audit import SYSTEM, Actor
from service.errors import TooManyRequests
from service.tenants import TenantLimiter

A = Actor("bot-a", "bot", "team-a")
B = Actor("bot-b", "bot", "team-b")


async def _hold(limiter: TenantLimiter, actor: Actor, release: asyncio.Event, entered: list[str]) -> None:
    async with limiter.slot(actor, "run"):
        entered.append(actor.tenant)
        await release.wait()


async def test_a_storm_queues_behind_its_own_tenant_only() -> None:
    limiter = TenantLimiter(caps={"exec": 8, "run": 2}, max_waiting=10, wait_s=30)
    release = asyncio.Event()
    entered: list[str] = []
    storm = [asyncio.create_task(_hold(limiter, A, release, entered)) for _ in range(6)]
    await asyncio.sleep(0.05)
    assert entered == ["team-a", "team-a"]  # two run, four wait
    assert limiter.usage()["team-a"] == {"run_running": 2, "run_waiting": 4}
    async with limiter.slot(B, "run"):  # the other tenant gets in at once
        pass
    async with limiter.slot(A, "exec"):  # and the same tenant's tool calls are a separate share
        pass
    release.set()
    await asyncio.gather(*storm)
    assert entered.count("team-a") == 6
    assert limiter.usage()["team-a"] == dict.fromkeys(
        ("run_running", "run_waiting", "exec_running", "exec_waiting"), 0
    )


async def test_too_many_waiting_is_429_and_waiting_too_long_too() -> None:
    limiter = TenantLimiter(caps={"exec": 1, "run": 1}, max_waiting=1, wait_s=0.2)
    release = asyncio.Event()
    entered: list[str] = []
    holder = asyncio.create_task(_hold(limiter, A, release, entered))
    waiter = asyncio.create_task(_hold(limiter, A, release, entered))
    await asyncio.sleep(0.05)
    with pytest.raises(TooManyRequests) as busy:
        async with limiter.slot(A, "run"):
            pass
    assert busy.value.status == 429 and busy.value.headers()["Retry-After"]
    assert busy.value.details["tenant"] == "team-a"
    with pytest.raises(TooManyRequests):  # the waiter gives up after wait_s
        await waiter
    release.set()
    await holder
    async with limiter.slot(A, "run"):  # the slot is free again afterwards
        pass


async def test_the_system_is_never_throttled() -> None:
    limiter = TenantLimiter(caps={"exec": 1, "run": 1}, max_waiting=0, wait_s=0.1)
    async with limiter.slot(SYSTEM, "run"), limiter.slot(SYSTEM, "run"):
        pass
