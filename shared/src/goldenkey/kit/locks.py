"""Locks and leases made of unique inserts: the one write both MongoDB and FerretDB do atomically.

FerretDB 1.24 (the native dev stack's database) applies an update by reading the document and
writing it back whole, with no check in between: two concurrent updates of one document can lose
one of them, even a conditional `{_id, version}` update. So on FerretDB every write to an
aggregate document happens while holding that document's lock: a row in `locks` whose `_id` is
the document's, inserted (atomic: a unique key) and deleted after. On MongoDB single-document
updates are atomic already and the write lock is skipped (`GOLDENKEY_MONGODB_WRITE_LOCKS=auto`).

Relay leases use the same mechanism on both, with a longer time to live.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from goldenkey.kit.mongo import Document

LOCKS = "locks"


class LockTimeout(RuntimeError):
    """A lock stayed taken for longer than a caller would wait (heavy contention, or a stuck holder)."""


class LocalLocks:
    """One `asyncio.Lock` per key, made on first use and forgotten once nobody holds or awaits it:
    this process's callers of one key queue here instead of racing each other in the database."""

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


class Locks:
    def __init__(self, db: AsyncDatabase[Document], *, serialize_writes: bool = True, ttl_s: float = 10.0) -> None:
        self.db = db
        self.serialize_writes = serialize_writes
        """Whether aggregate writes take the document lock (decided at start: FerretDB or not)."""
        self.ttl = timedelta(seconds=ttl_s)
        self._local = LocalLocks()

    async def try_acquire(self, key: str, ttl: timedelta | None = None) -> str | None:
        """Take `key` if it is free (or its holder's time ran out); the token to release it with."""
        token = uuid.uuid4().hex
        now = datetime.now(UTC)
        record = {"_id": key, "token": token, "until": now + (ttl or self.ttl)}
        try:
            await self.db[LOCKS].insert_one(record)
            return token
        except DuplicateKeyError:
            held: dict[str, Any] | None = await self.db[LOCKS].find_one({"_id": key})
            if held is not None and held["until"] < now:  # its holder died: free it, then race for it
                await self.db[LOCKS].delete_one({"_id": key, "token": held["token"]})
                with contextlib.suppress(DuplicateKeyError):
                    await self.db[LOCKS].insert_one(record)
                    return token
            return None

    async def release(self, key: str, token: str) -> None:
        await self.db[LOCKS].delete_one({"_id": key, "token": token})

    @contextlib.asynccontextmanager
    async def hold(self, key: str, timeout: float = 10.0) -> AsyncIterator[None]:
        """Hold `key` for the duration; waiters in this process queue locally first."""
        async with self._local.hold(key):
            token = await self._acquire(key, timeout)
            try:
                yield
            finally:
                await self.release(key, token)

    async def _acquire(self, key: str, timeout: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.001
        while (token := await self.try_acquire(key)) is None:
            if loop.time() > deadline:
                raise LockTimeout(f"{key} stayed locked for over {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return token

    @contextlib.asynccontextmanager
    async def writing(self, collection: str, document_id: Any) -> AsyncIterator[None]:
        """Guard one write to one aggregate document (a no-op where the database is atomic)."""
        if not self.serialize_writes:
            yield
            return
        async with self.hold(f"{collection}/{document_id}"):
            yield


async def is_ferretdb(db: AsyncDatabase[Document]) -> bool:
    info = await db.command("buildInfo")
    return "ferretdbVersion" in info or "ferretdb" in info
