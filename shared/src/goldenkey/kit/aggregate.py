"""Aggregates stored as single MongoDB documents, each with a version and an embedded outbox.

A command loads an aggregate, decides, records events and saves: the new state and its events
land in one atomic single-document write (DESIGN §6, §7.1). The relay publishes the outbox later.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from goldenkey.contracts import CloudEvent, EventData, envelope_for, spec_for
from goldenkey.kit.locks import LocalLocks

if TYPE_CHECKING:
    from goldenkey.kit.mongo import Document
    from goldenkey.kit.outbox import OutboxRelay

APPLIED_KEPT = 200
"""How many ids of applied events an aggregate remembers (enough for any redelivery window)."""
STORAGE_FIELDS = ("_id", "version", "outbox", "outbox_n", "applied", "seq", "lease_owner", "lease_until")


_UPDATING: ContextVar[frozenset[tuple[str, str]]] = ContextVar("updating", default=frozenset())
"""The aggregates the current call chain is updating: a nested update of one of them is a bug."""


class ConcurrencyError(RuntimeError):
    """Someone else saved the aggregate since it was loaded."""


class AlreadyExists(RuntimeError):
    """An aggregate with that id exists already."""


class NotFound(LookupError):
    """No aggregate with that id."""


@dataclass(frozen=True)
class PendingEvent:
    data: EventData
    at: datetime
    causation: CloudEvent | None
    correlation_id: str | None
    event_id: str | None


class Aggregate(BaseModel):
    """Base of every stored aggregate: `id`, a `version` for optimistic concurrency, the events
    recorded since it was loaded, and the ids of events it has already applied."""

    model_config = ConfigDict(validate_assignment=False)

    id: str = Field(min_length=1, max_length=200)
    version: int = 0
    seq: int = 0
    """How many events it has ever emitted: the CloudEvents `sequence` of the next one."""
    applied: list[str] = Field(default_factory=list)
    _events: list[PendingEvent] = PrivateAttr(default_factory=list)

    def record(
        self,
        data: EventData,
        *,
        at: datetime,
        causation: CloudEvent | None = None,
        correlation_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        """Raise an event; it is saved with the aggregate and published by the relay.

        Its subject (and Kafka key) is the payload's key field, as the contract says; with a
        `causation` (the event being handled) its id is derived from the cause's, and it inherits
        the cause's correlation id unless `correlation_id` is given.
        """
        self._events.append(PendingEvent(data, at, causation, correlation_id, event_id))

    def has_applied(self, event_id: str) -> bool:
        return event_id in self.applied

    def mark_applied(self, event_id: str) -> None:
        self.applied = [*self.applied, event_id][-APPLIED_KEPT:]

    @property
    def pending_events(self) -> list[PendingEvent]:
        return list(self._events)


A = TypeVar("A", bound=Aggregate)


def outbox_entry(event: CloudEvent, topic: str) -> dict[str, Any]:
    """How an event waits in the outbox: the exact bytes to publish, so removal matches exactly."""
    return {"id": event.id, "topic": topic, "key": event.subject, "value": event.to_bytes().decode()}


class Repository(Generic[A]):
    """Loads and saves one kind of aggregate in one collection, with its outbox."""

    kind: ClassVar[str] = "aggregate"

    def __init__(
        self,
        collection: AsyncCollection[Document],
        model: type[A],
        *,
        relay: OutboxRelay | None = None,
    ) -> None:
        self.collection = collection
        self.model = model
        self.relay = relay
        self._updating = LocalLocks()

    # --- reading ---------------------------------------------------------------------------

    def load(self, document: Document) -> A:
        state = {k: v for k, v in document.items() if k not in STORAGE_FIELDS}
        return self.model.model_validate(
            {
                **state,
                "id": document["_id"],
                "version": document.get("version", 0),
                "seq": document.get("seq", 0),
                "applied": document.get("applied", []),
            }
        )

    async def get(self, aggregate_id: str) -> A | None:
        document = await self.collection.find_one({"_id": aggregate_id}, {"outbox": 0})
        return None if document is None else self.load(document)

    async def require(self, aggregate_id: str) -> A:
        found = await self.get(aggregate_id)
        if found is None:
            raise NotFound(f"{self.model.__name__} {aggregate_id} not found")
        return found

    async def find(
        self, query: Document, *, sort: list[tuple[str, int]] | None = None, limit: int = 0, skip: int = 0
    ) -> list[A]:
        cursor = self.collection.find(query, {"outbox": 0}, sort=sort, limit=limit, skip=skip)
        return [self.load(d) async for d in cursor]

    async def find_archived(self, aggregate_id: str) -> A | None:
        """An aggregate `archive` has moved out of the working collection."""
        document = await self.archive_collection.find_one({"_id": aggregate_id})
        return None if document is None else self.load(document)

    @property
    def archive_collection(self) -> AsyncCollection[Document]:
        return self.collection.database[f"{self.collection.name}_archive"]

    async def archive(self, query: Document, *, batch: int = 500) -> int:
        """Move the aggregates matching `query` whose events are all published out of the working
        collection into `<collection>_archive`; how many it moved.

        Queries that hot paths make then read only what is live (mongo-java-server scans a
        collection for any query not by `_id`, docs/decisions.md "Storage"). A copy is inserted
        before the original is deleted, so a crash in between leaves a copy that the next run
        replaces; an aggregate saved meanwhile (its version moved) stays, for the next run.
        """
        moved = 0
        while True:
            cursor = self.collection.find({**query, "outbox_n": {"$in": [0, None]}}, limit=batch)
            documents = [d async for d in cursor]
            if not documents:
                return moved
            try:
                await self.archive_collection.insert_many(documents, ordered=False)
            except BulkWriteError as error:  # copies an interrupted run left: replace them with these
                errors = error.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                for e in errors:
                    again = documents[e["index"]]
                    await self.archive_collection.replace_one({"_id": again["_id"]}, again)
            for document in documents:
                removed = await self.collection.delete_one({"_id": document["_id"], "version": document.get("version")})
                moved += removed.deleted_count
            if len(documents) < batch:
                return moved

    # --- writing ---------------------------------------------------------------------------

    def _drain(self, aggregate: A) -> list[dict[str, Any]]:
        entries = []
        for pending in aggregate._events:
            aggregate.seq += 1
            cause = pending.causation
            event = envelope_for(
                pending.data,
                time=pending.at,
                correlationid=pending.correlation_id or (cause.correlationid if cause else None),
                causationid=cause.id if cause else None,
                sequence=aggregate.seq,
                event_id=pending.event_id,
            )
            entries.append(outbox_entry(event, spec_for(type(pending.data)).topic))
        return entries

    def _state(self, aggregate: A) -> Document:
        return aggregate.model_dump(mode="python", exclude={"id", "version"})

    async def add(self, aggregate: A) -> A:
        """Insert a new aggregate; `AlreadyExists` if its id is taken (a retried create)."""
        entries = self._drain(aggregate)
        document = {
            "_id": aggregate.id,
            **self._state(aggregate),
            "version": 1,
            "outbox": entries,
            "outbox_n": len(entries),
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError as error:
            aggregate.seq -= len(entries)
            raise AlreadyExists(f"{self.model.__name__} {aggregate.id} exists already") from error
        aggregate._events.clear()
        aggregate.version = 1
        self._nudge(aggregate.id, entries)
        return aggregate

    async def save(self, aggregate: A) -> A:
        """Write the new state and append its events, if nobody saved it since it was loaded.

        One conditional single-document update: the version check and the write are atomic on
        the server, so of two saves from the same version exactly one wins."""
        seq_before = aggregate.seq
        entries = self._drain(aggregate)
        update: Document = {"$set": {**self._state(aggregate), "version": aggregate.version + 1}}
        if entries:
            update["$push"] = {"outbox": {"$each": entries}}
            update["$inc"] = {"outbox_n": len(entries)}
        result = await self.collection.update_one({"_id": aggregate.id, "version": aggregate.version}, update)
        if result.matched_count == 0:
            aggregate.seq = seq_before
            raise ConcurrencyError(f"{self.model.__name__} {aggregate.id} changed since it was loaded")
        aggregate._events.clear()
        aggregate.version += 1
        self._nudge(aggregate.id, entries)
        return aggregate

    async def update(
        self,
        aggregate_id: str,
        change: Callable[[A], Awaitable[None] | None],
        *,
        cause: CloudEvent | None = None,
        attempts: int = 20,
        write_unchanged: bool = False,
    ) -> A:
        """Load, apply `change`, save; again from a fresh load when someone else saved in between.

        With a `cause` (the event being handled), an aggregate that has applied it already is
        returned unchanged: a redelivered event changes nothing and emits nothing new. Without
        one, a change that changed nothing and recorded no event writes nothing, unless
        `write_unchanged` (the write itself matters: a new version that a stale save cannot pass).

        Updates of one aggregate from this process take turns, so a burst of requests on one hot
        document (a consumable's stock, say) does not spend its attempts racing itself; the
        version check settles races with other instances.
        """
        key = (self.collection.name, aggregate_id)
        if key in _UPDATING.get():
            raise RuntimeError(
                f"{self.model.__name__} {aggregate_id} is being updated by this very call chain: a change "
                "must not update its own aggregate (it would wait for itself forever)"
            )
        token = _UPDATING.set(_UPDATING.get() | {key})
        try:
            async with self._updating.hold(aggregate_id):
                return await self._update(
                    aggregate_id, change, cause=cause, attempts=attempts, write_unchanged=write_unchanged
                )
        finally:
            _UPDATING.reset(token)

    async def _update(
        self,
        aggregate_id: str,
        change: Callable[[A], Awaitable[None] | None],
        *,
        cause: CloudEvent | None,
        attempts: int,
        write_unchanged: bool,
    ) -> A:
        for attempt in range(attempts):
            aggregate = await self.require(aggregate_id)
            if cause is not None:
                if aggregate.has_applied(cause.id):
                    return aggregate
                aggregate.mark_applied(cause.id)
            before = aggregate.model_dump() if cause is None and not write_unchanged else None
            outcome = change(aggregate)
            if outcome is not None:
                await outcome
            if before is not None and not aggregate._events and aggregate.model_dump() == before:
                return aggregate  # the change found nothing to do: no write
            try:
                return await self.save(aggregate)
            except ConcurrencyError:
                # Another instance saved first. A random pause, growing with each loss, keeps two
                # instances' bursts on one hot document from starving one another's updates.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
        raise ConcurrencyError(f"{self.model.__name__} {aggregate_id}: too much contention, gave up")

    def _nudge(self, aggregate_id: str, entries: list[dict[str, Any]]) -> None:
        if entries and self.relay is not None:
            self.relay.nudge(self.collection.name, aggregate_id)


def event_payloads(document: Document) -> list[dict[str, Any]]:
    """The CloudEvents waiting in a stored document's outbox (for tests and tools)."""
    return [json.loads(entry["value"]) for entry in document.get("outbox", [])]
