"""The queue's MongoDB side: the hall data loaded at start, and the reads the API and rules need."""

from __future__ import annotations

import json
from datetime import date, timedelta
from importlib import resources
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from goldenkey.kit import AlreadyExists, Index, Repository
from goldenkey.kit.mongo import Document
from goldenkey.queue.domain import Category, Coverage, Ticket, TicketCounter, Window

CATEGORIES, CATALOG = "categories", "catalog"
WAITING_FIELDS = {f: 1 for f in ("number", "category", "priority", "issued_at", "status", "approaching_sent", "day")}
INDEXES = [
    Index("tickets", [("day", 1), ("status", 1)]),
    Index("tickets", [("plate_hash", 1)]),
    Index(CATALOG, [("category", 1)]),
]


def hall_data(name: str) -> list[dict[str, Any]]:
    """One of the data files shipped with the service (categories, catalog, windows)."""
    return json.loads(resources.files("goldenkey.queue.data").joinpath(f"{name}.json").read_text("utf-8"))  # type: ignore[no-any-return]


async def seed(db: AsyncDatabase[Document], windows: Repository[Window]) -> None:
    """Load the shipped hall data, idempotently: what is already there (and perhaps edited since)
    stays as it is; only what is missing is added."""
    for collection, rows, key in (
        (CATEGORIES, hall_data("categories"), "code"),
        (CATALOG, hall_data("catalog"), "code"),
    ):
        try:
            await db[collection].insert_many([{"_id": row[key], **row} for row in rows], ordered=False)
        except BulkWriteError as error:  # duplicates: loaded before
            if any(e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
                raise
    for row in hall_data("windows"):
        try:
            await windows.add(Window(id=row["id"], categories=row["categories"], name_zh=row["name_zh"]))
        except AlreadyExists:
            pass


def as_category(row: Document) -> Category:
    return Category(
        code=row["code"],
        name_zh=row["name_zh"],
        name_en=row["name_en"],
        target_wait=timedelta(minutes=row["target_wait_min"]),
        service_time=timedelta(minutes=row["service_min"]),
    )


class QueueStore:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        tickets: Repository[Ticket],
        windows: Repository[Window],
        counters: Repository[TicketCounter],
        coverage: Repository[Coverage],
    ) -> None:
        self.db = db
        self.tickets = tickets
        self.windows = windows
        self.counters = counters
        self.coverage = coverage

    async def categories(self) -> dict[str, Category]:
        return {row["code"]: as_category(row) async for row in self.db[CATEGORIES].find({}, sort=[("code", 1)])}

    async def category_rows(self) -> list[Document]:
        return [self._public(row) async for row in self.db[CATEGORIES].find({}, sort=[("code", 1)])]

    async def item(self, code: str) -> Document | None:
        row = await self.db[CATALOG].find_one({"_id": code})
        return None if row is None else self._public(row)

    async def catalog(self, category: str | None) -> list[Document]:
        query = {"category": category} if category else {}
        return [self._public(row) async for row in self.db[CATALOG].find(query, sort=[("code", 1)])]

    async def edit(self, collection: str, code: str, changes: Document) -> Document | None:
        """An admin's edit of a catalogue item or a category: the data lives in the database once
        loaded, so the hall can change it without a release."""
        async with self.tickets.locks.writing(collection, code):
            result = await self.db[collection].update_one({"_id": code}, {"$set": changes})
        if result.matched_count == 0:
            return None
        row = await self.db[collection].find_one({"_id": code})
        return None if row is None else self._public(row)

    async def all_windows(self) -> list[Window]:
        return await self.windows.find({}, sort=[("_id", 1)])

    async def waiting(self, day: date, categories: list[str] | None = None) -> list[Ticket]:
        """The day's waiting tickets, with just what ordering needs (read often: kept light)."""
        cursor = self.db["tickets"].find({"day": day.isoformat(), "status": "waiting"}, WAITING_FIELDS)
        return [
            Ticket.model_construct(id=row.pop("_id"), **row)
            async for row in cursor
            if categories is None or row["category"] in categories
        ]

    async def of_day(self, day: date) -> list[Ticket]:
        return await self.tickets.find({"day": day.isoformat()})

    async def live_ticket_with_plate(self, plate_hash: str, day: date) -> Ticket | None:
        found = await self.tickets.find({"plate_hash": plate_hash, "day": day.isoformat()})
        live = [t for t in found if t.status in ("waiting", "called", "serving", "no_show")]
        return max(live, key=lambda t: t.issued_at) if live else None

    async def next_number(self, day: date, letter: str) -> int:
        """The next sequence number of a category on a day (a counter document per category and day)."""
        key = TicketCounter.key(day, letter)
        try:
            await self.counters.add(TicketCounter(id=key))
        except AlreadyExists:
            pass
        counter = await self.counters.update(key, TicketCounter.allocate)
        return counter.last

    async def recent_service_time(self, category: Category, day: date, sample: int = 20) -> timedelta:
        """The mean of the category's last services today, or its catalogue time before any."""
        cursor = self.db["tickets"].find(
            {"day": day.isoformat(), "status": "done", "category": category.code},
            {"started_at": 1, "completed_at": 1},
        )
        done = [row async for row in cursor if row.get("started_at") and row.get("completed_at")]
        done.sort(key=lambda row: row["completed_at"], reverse=True)
        times = [(row["completed_at"] - row["started_at"]).total_seconds() for row in done[:sample]]
        times = [t for t in times if t > 0]
        return timedelta(seconds=sum(times) / len(times)) if times else category.service_time

    @staticmethod
    def _public(row: Document) -> Document:
        return {k: v for k, v in row.items() if k != "_id"}
