"""In-process turns per key: this process's callers of one key queue here instead of racing each
other in the database (where the version check would send all but one round again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class LocalLocks:
    """One `asyncio.Lock` per key, made on first use and forgotten once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(key, None)
