"""The queue's short-lived cache of what it reads often, without a database."""

from __future__ import annotations

import asyncio

from goldenkey.queue.store import Cached


async def test_a_value_is_read_once_within_its_time_to_live() -> None:
    cache, reads = Cached(ttl=60), []

    async def read() -> int:
        reads.append(1)
        return len(reads)

    assert [await cache.value("k", read), await cache.value("k", read)] == [1, 1]
    cache.forget()
    assert await cache.value("k", read) == 2


async def test_a_read_overtaken_by_a_forget_is_not_kept() -> None:
    """An admin's edit forgets the cache while an older read is still on its way back."""
    cache, reading, edited = Cached(ttl=60), asyncio.Event(), asyncio.Event()

    async def slow_old_read() -> str:
        reading.set()
        await edited.wait()
        return "before the edit"

    async def fresh_read() -> str:
        return "after the edit"

    stale = asyncio.create_task(cache.value("k", slow_old_read))
    await reading.wait()
    cache.forget()
    edited.set()
    assert await stale == "before the edit", "the caller that asked still gets what it read"
    assert await cache.value("k", fresh_read) == "after the edit"
