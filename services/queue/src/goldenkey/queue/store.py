"""The queue's MongoDB side: the hall data loaded at start, and the reads the API and rules need."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from importlib import resources
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from goldenkey.kit import AlreadyExists, Index, Repository
from goldenkey.kit.locks import LocalLocks
from goldenkey.kit.mongo import Document
from goldenkey.queue.domain import Category, Coverage, InLine, Ticket, TicketCounter, Window

CATEGORIES, CATALOG, NUMBERS = "categories", "catalog", "numbers"
HALL_DATA_TTL_S = 5.0
"""How long an instance trusts what it read of the hall data (categories, catalogue items) and of
what estimates rest on (open windows, recent service times). Its own edits show at once; another
instance's within this long."""
WAITING_TTL_S = 1.0
"""How long an instance answers `POST /tickets` positions, and goes by for `call-next`, from the
waiting line it last read (plus the tickets it issued since, less those it called)."""
WAITING_FIELDS = {f: 1 for f in ("number", "category", "priority", "issued_at", "status", "approaching_sent", "day")}
INDEXES = [
    Index("tickets", [("day", 1), ("status", 1)]),
    Index("tickets", [("plate_hash", 1)]),
    Index(CATALOG, [("category", 1)]),
    Index(NUMBERS, [("day", 1), ("letter", 1), ("n", -1)]),
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


class Cached:
    """Values read from the database, each trusted for `ttl` seconds (monotonic time)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[str, tuple[float, Any]] = {}
        self._generation = 0

    async def value(self, key: str, read: Callable[[], Awaitable[Any]]) -> Any:
        """The value of `key`, read with `read()` unless it was read within `ttl`. A read that a
        `forget` overtook is returned but not kept: it may predate what was forgotten."""
        found = self._values.get(key)
        now = time.monotonic()
        if found is not None and found[0] >= now:
            return found[1]
        generation = self._generation
        value = await read()
        if generation == self._generation:
            for stale in [k for k, (until, _) in self._values.items() if until < now]:
                del self._values[stale]
            self._values[key] = (time.monotonic() + self.ttl, value)
        return value

    def edit(self, key: str, change: Callable[[Any], Any]) -> None:
        """Change a kept value in place of reading it again (a read in flight is not kept)."""
        self._generation += 1
        if (found := self._values.get(key)) is not None:
            self._values[key] = (found[0], change(found[1]))

    def forget(self, prefix: str = "") -> None:
        self._generation += 1
        for key in [k for k in self._values if k.startswith(prefix)]:
            del self._values[key]


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
        self.cache = Cached(HALL_DATA_TTL_S)
        self.lines = Cached(WAITING_TTL_S)
        self._reading_lines = LocalLocks()
        self._next_number: dict[str, int] = {}

    async def categories(self) -> dict[str, Category]:
        async def read() -> dict[str, Category]:
            return {row["code"]: as_category(row) async for row in self.db[CATEGORIES].find({}, sort=[("code", 1)])}

        return await self.cache.value(CATEGORIES, read)  # type: ignore[no-any-return]

    async def category_rows(self) -> list[Document]:
        return [self._public(row) async for row in self.db[CATEGORIES].find({}, sort=[("code", 1)])]

    async def item(self, code: str) -> Document | None:
        async def read() -> Document | None:
            row = await self.db[CATALOG].find_one({"_id": code})
            return None if row is None else self._public(row)

        return await self.cache.value(f"{CATALOG}/{code}", read)  # type: ignore[no-any-return]

    async def catalog(self, category: str | None) -> list[Document]:
        query = {"category": category} if category else {}
        return [self._public(row) async for row in self.db[CATALOG].find(query, sort=[("code", 1)])]

    async def edit(self, collection: str, code: str, changes: Document) -> Document | None:
        """An admin's edit of a catalogue item or a category: the data lives in the database once
        loaded, so the hall can change it without a release."""
        result = await self.db[collection].update_one({"_id": code}, {"$set": changes})
        self.cache.forget()  # a category's service time feeds the cached estimates too
        if result.matched_count == 0:
            return None
        row = await self.db[collection].find_one({"_id": code})
        return None if row is None else self._public(row)

    async def all_windows(self) -> list[Window]:
        return await self.windows.find({}, sort=[("_id", 1)])

    async def open_windows(self, category: str) -> int:
        """How many open windows serve a category, as of at most `HALL_DATA_TTL_S` ago (for estimates)."""

        async def read() -> dict[str, int]:
            counts: dict[str, int] = {}
            for window in await self.all_windows():
                for served in window.categories if window.state == "open" else ():
                    counts[served] = counts.get(served, 0) + 1
            return counts

        counts = await self.cache.value("windows", read)
        return counts.get(category, 0)  # type: ignore[no-any-return]

    async def waiting(self, day: date, categories: list[str] | None = None) -> list[InLine]:
        """The day's waiting tickets, with just what ordering needs (read often: kept light)."""
        query: Document = {"day": day.isoformat(), "status": "waiting"}
        if categories is not None:
            query["category"] = {"$in": categories}
        return [
            InLine(
                id=row["_id"],
                number=row["number"],
                category=row["category"],
                issued_at=row["issued_at"],
                day=row["day"],
                priority=row.get("priority"),
                approaching_sent=row.get("approaching_sent", False),
            )
            async for row in self.db["tickets"].find(query, WAITING_FIELDS)
        ]

    async def waiting_line(self, day: date, category: str) -> list[InLine]:
        """A category's waiting tickets as read at most `WAITING_TTL_S` ago, for positions at issue.

        The list is this instance's own: a request adds the ticket it issues, so the next one
        counts it without a read. Concurrent requests share one read."""
        key = f"{day.isoformat()}/{category}"
        async with self._reading_lines.hold(key):
            return await self.lines.value(key, lambda: self.waiting(day, [category]))  # type: ignore[no-any-return]

    def left_line(self, day: date, category: str, ticket_id: str) -> None:
        """A ticket of this instance's lines was called: the others move up without a read."""

        def drop(line: list[InLine]) -> list[InLine]:
            line[:] = [t for t in line if t.id != ticket_id]  # in place: an issue may be adding to it
            return line

        self.lines.edit(f"{day.isoformat()}/{category}", drop)

    def lines_changed(self) -> None:
        """Tickets left or joined a waiting line other than by issue: read the lines afresh."""
        self.lines.forget()

    async def of_day(self, day: date) -> list[Ticket]:
        return await self.tickets.find({"day": day.isoformat()})

    async def live_ticket_with_plate(self, plate_hash: str, day: date) -> Ticket | None:
        found = await self.tickets.find({"plate_hash": plate_hash, "day": day.isoformat()})
        live = [t for t in found if t.status in ("waiting", "called", "serving", "no_show")]
        return max(live, key=lambda t: t.issued_at) if live else None

    async def next_number(self, day: date, letter: str) -> int:
        """The next sequence number of a category on a day.

        A number is claimed by inserting `<day>:<letter>:<n>` into `numbers`: a unique key, so two
        instances never hand out one number, with no read-modify-write of a counter. This instance
        remembers where it is; a taken number means another instance was quicker, and the next
        one is tried (after a few, the highest taken is read again).
        """
        key = TicketCounter.key(day, letter)
        if key not in self._next_number:
            highest = await self._highest_number(day, letter)
            if key not in self._next_number:  # another request of this instance may have been quicker
                self._next_number = {k: n for k, n in self._next_number.items() if k.startswith(day.isoformat())}
                self._next_number[key] = highest + 1
        misses, number = 0, self._next_number[key]
        while True:
            # The hint may be gone meanwhile (the next day's first ticket forgets the day before).
            number = max(number, self._next_number.get(key, number))
            self._next_number[key] = number + 1  # before the write: this instance's requests never collide
            try:
                await self.db[NUMBERS].insert_one(
                    {"_id": f"{key}:{number}", "day": day.isoformat(), "letter": letter, "n": number}
                )
                return number
            except DuplicateKeyError:
                misses, number = misses + 1, number + 1
                if misses % 3 == 0:
                    number = max(number, await self._highest_number(day, letter) + 1)

    async def forget_numbers_before(self, day: str) -> int:
        """Drop the number claims of business days before `day` (ISO date); how many."""
        return (await self.db[NUMBERS].delete_many({"day": {"$lt": day}})).deleted_count

    async def _highest_number(self, day: date, letter: str) -> int:
        """The highest number of a category handed out on a day (also by a counter document,
        which numbered tickets before `numbers` did)."""
        claimed = await self.db[NUMBERS].find_one(
            {"day": day.isoformat(), "letter": letter}, {"n": 1}, sort=[("n", -1)]
        )
        counter = await self.db[self.counters.collection.name].find_one(
            {"_id": TicketCounter.key(day, letter)}, {"last": 1}
        )
        return max(claimed["n"] if claimed else 0, counter.get("last", 0) if counter else 0)

    async def recent_service_time(self, category: Category, day: date, sample: int = 20) -> timedelta:
        """The mean of the category's last services today, or its catalogue time before any (as of
        at most `HALL_DATA_TTL_S` ago: it only feeds estimates)."""

        async def read() -> timedelta:
            cursor = self.db["tickets"].find(
                {"day": day.isoformat(), "status": "done", "category": category.code},
                {"started_at": 1, "completed_at": 1},
            )
            done = [row async for row in cursor if row.get("started_at") and row.get("completed_at")]
            done.sort(key=lambda row: row["completed_at"], reverse=True)
            times = [(row["completed_at"] - row["started_at"]).total_seconds() for row in done[:sample]]
            times = [t for t in times if t > 0]
            return timedelta(seconds=sum(times) / len(times)) if times else category.service_time

        return await self.cache.value(f"service/{day.isoformat()}/{category.code}", read)  # type: ignore[no-any-return]

    @staticmethod
    def _public(row: Document) -> Document:
        return {k: v for k, v in row.items() if k != "_id"}
