"""The outbox relay: publishes the events waiting in aggregate documents, in order, then removes them.

Safe with several instances: a relay leases a document before publishing its outbox — the lease
is two fields of the document itself (`lease_owner`, `lease_until`), taken in the same
find-one-and-update that reads the outbox — so one document's events (one subject's, in
practice) are only ever published by one relay at a time, in the order they were recorded. The
removal after publishing is conditional on still holding the lease, so a relay whose lease ran
out meanwhile removes nothing (and the count of pending events never goes wrong). A crash before
the removal republishes them: at-least-once, with the same event ids, which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from goldenkey.contracts import CONTENT_TYPE
from goldenkey.kit.kafka import kafka_unreachable
from goldenkey.kit.logs import get_logger
from goldenkey.kit.mongo import UNAVAILABLE, Document

log = get_logger(__name__)


class Publisher(Protocol):
    async def publish_batch(self, records: list[tuple[str, bytes, bytes, dict[str, str]]]) -> None:
        """Publish (topic, key, value, headers) records, in order; return when all are acknowledged."""
        ...

    def connected(self) -> bool: ...


class OutboxRelay:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        publisher: Publisher,
        collections: Iterable[str] = (),
        *,
        lease_s: float = 30.0,
        interval_s: float = 30.0,
        batch: int = 100,
        workers: int = 4,
    ) -> None:
        self.db = db
        self.owner = uuid.uuid4().hex
        """This relay's name in the leases it takes."""
        self.publisher = publisher
        self.collections: list[str] = list(collections)
        self.lease = timedelta(seconds=lease_s)
        self.interval_s = interval_s
        self.retry_s = min(1.0, interval_s)
        self.batch = batch
        self.workers = workers
        self._nudged: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.published_total = 0
        self._busy = 0

    def watch(self, collection: str) -> None:
        if collection not in self.collections:
            self.collections.append(collection)

    def nudge(self, collection: str, aggregate_id: str) -> None:
        """A command just saved events on this document: publish them now rather than at the next sweep."""
        # A document already waiting for a worker gets nothing from a second nudge: the worker reads
        # its whole outbox when it gets to it.
        if not self._stopping and (collection, aggregate_id) not in self._queued:
            self._queued.add((collection, aggregate_id))
            self._nudged.put_nowait((collection, aggregate_id))

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._sweeper(), name="outbox-sweeper")]
        self._tasks += [asyncio.create_task(self._worker(), name=f"outbox-worker-{i}") for i in range(self.workers)]

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Stop taking new work, then publish what is pending for up to `flush_timeout` seconds."""
        self._stopping = True
        self._wake.set()
        # Let a worker finish the document in hand: cancelled between publishing and removing,
        # its events would go out twice.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout / 2
        while self._busy and loop.time() < deadline:  # noqa: ASYNC110 - a bounded poll of a counter
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        # The loops also check _stopping: on Python 3.11 a cancel that lands as wait_for's inner
        # wait completes can be swallowed, and the task would run on.
        await asyncio.wait(self._tasks, timeout=flush_timeout)
        self._tasks = []
        if self.publisher.connected():
            try:
                await asyncio.wait_for(self.drain(), flush_timeout)
            except Exception as error:  # what is left is published by the next start
                log.warning("outbox not fully flushed at shutdown", error=repr(error))

    async def _worker(self) -> None:
        while not self._stopping:
            collection, aggregate_id = await self._nudged.get()
            self._queued.discard((collection, aggregate_id))
            self._busy += 1
            try:
                # A nudge means a save has just added events: lease and read the outbox straight away
                # (an outbox found empty costs the lease, which is rarer than a read first would be).
                if await self._relay_document(collection, aggregate_id) is None:
                    # Leased by another worker or relay, which may have read the outbox before
                    # these events arrived: look again shortly rather than leave them to a sweep.
                    asyncio.get_running_loop().call_later(0.05, self.nudge, collection, aggregate_id)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # try this one again shortly; the sweeper is the safety net
                log.warning("outbox publish failed; will retry", error=repr(error))
                asyncio.get_running_loop().call_later(self.retry_s, self.nudge, collection, aggregate_id)
            finally:
                self._busy -= 1

    def wake(self) -> None:
        """Sweep now (Kafka is back, say) rather than at the next interval."""
        self._wake.set()

    async def _sweeper(self) -> None:
        # Saves nudge the workers, so sweeping is only for what they missed: leftovers of a crash
        # (swept at start), events that waited out a Kafka outage (woken), and other instances'
        # leftovers (every interval).
        failures, first = 0, True
        while not self._stopping:
            if not first:
                delay = self.interval_s if not failures else min(self.interval_s, 0.25 * 2**failures)
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
            first = False
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.drain()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                log.warning("outbox sweep failed; backing off", error=repr(error), failures=failures)

    async def drain(self) -> int:
        """Publish everything pending in every watched collection; the number of events published."""
        published = 0
        if not self.publisher.connected():
            return 0
        for collection in self.collections:
            while True:
                cursor = self.db[collection].find({"outbox_n": {"$gt": 0}}, {"_id": 1}, limit=self.batch)
                pending = [document["_id"] async for document in cursor]
                progress = 0
                for aggregate_id in pending:
                    try:
                        progress += await self._relay_document(collection, aggregate_id) or 0
                    except Exception as error:
                        if isinstance(error, UNAVAILABLE) or kafka_unreachable(error):
                            raise  # nothing else would go either: the sweeper backs off
                        # This document's events, not the world, are at fault (too large for the
                        # topic, say): the others must not wait behind it.
                        log.error(
                            "outbox document not published; the sweep goes on",
                            collection=collection,
                            aggregate_id=str(aggregate_id),
                            error=repr(error),
                        )
                published += progress
                if len(pending) < self.batch or progress == 0:  # all done, or the rest is leased elsewhere
                    break
        return published

    # --- one document ----------------------------------------------------------------------

    async def _relay_document(self, collection: str, aggregate_id: Any) -> int | None:
        """Lease one document, publish its pending events, remove them.

        Returns how many were published, or None when another relay holds the lease while events
        are pending (whoever nudged should look again shortly).
        """
        documents = self.db[collection]
        now = datetime.now(UTC)
        document = await documents.find_one_and_update(
            {
                "_id": aggregate_id,
                "outbox_n": {"$gt": 0},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {"$set": {"lease_owner": self.owner, "lease_until": now + self.lease}},
            {"outbox": 1},
        )
        if document is None:
            state = await documents.find_one({"_id": aggregate_id}, {"outbox_n": 1})
            return None if state is not None and state.get("outbox_n", 0) > 0 else 0
        mine = {"_id": aggregate_id, "lease_owner": self.owner}
        release = {"$unset": {"lease_owner": "", "lease_until": ""}}
        published, released = 0, False
        try:
            # Batch after batch while they come full. Events a save appends meanwhile are not
            # looked for again here: the save's nudge finds the lease taken and looks again shortly.
            while True:
                entries: list[dict[str, Any]] = document.get("outbox", [])[: self.batch]
                if not entries:  # the count was off (nothing to publish): mend it
                    await documents.update_one({**mine, "outbox": {"$size": 0}}, {"$set": {"outbox_n": 0}})
                    return published
                await self.publisher.publish_batch(
                    [
                        (e["topic"], e["key"].encode(), e["value"].encode(), {"content-type": CONTENT_TYPE})
                        for e in entries
                    ]
                )
                last = len(entries) < self.batch
                removal: dict[str, Any] = {
                    "$pull": {"outbox": {"id": {"$in": [e["id"] for e in entries]}}},
                    "$inc": {"outbox_n": -len(entries)},
                    **(release if last else {}),
                }
                removed = await documents.update_one(mine, removal)
                if removed.matched_count == 0:  # the lease ran out and another relay took it over
                    released = True
                    return published
                published += len(entries)
                self.published_total += len(entries)
                if last:
                    released = True
                    return published
                document = await documents.find_one(mine, {"outbox": 1}) or {}
        finally:
            if not released:  # (a failure: the lease would run out by itself, later)
                with contextlib.suppress(Exception):
                    await asyncio.shield(documents.update_one(mine, release))

    async def pending(self) -> int:
        """Events waiting in all watched collections (for the `goldenkey_outbox_pending` gauge)."""
        total = 0
        for collection in self.collections:
            cursor = await self.db[collection].aggregate(
                [{"$match": {"outbox_n": {"$gt": 0}}}, {"$group": {"_id": None, "n": {"$sum": "$outbox_n"}}}]
            )
            async for row in cursor:
                total += int(row["n"])
        return total
