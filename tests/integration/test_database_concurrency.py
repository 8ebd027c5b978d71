"""The single-document guarantees the kit's one storage code path rests on (docs/decisions.md,
"Storage"), checked against the real MongoDB-protocol server over real connections: 20 clients,
each with its own connection pool, racing on the same documents."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from goldenkey.kit import ConcurrencyError, Repository
from goldenkey.kit.mongo import Document, connect
from tests.support import unique
from tests.widgets import Widget

pytestmark = pytest.mark.integration
CLIENTS = 20


@pytest.fixture
async def databases(infra: Any) -> AsyncIterator[list[AsyncDatabase[Document]]]:
    """One database, seen through `CLIENTS` separate clients (as separate instances would)."""
    name = unique("race_")
    clients: list[AsyncMongoClient[Document]] = [connect(infra.mongodb_url, 5000) for _ in range(CLIENTS)]
    try:
        yield [client[name] for client in clients]
    finally:
        await clients[0].drop_database(name)
        for client in clients:
            await client.close()


async def test_concurrent_increments_lose_nothing(databases: list[AsyncDatabase[Document]]) -> None:
    await databases[0]["counters"].insert_one({"_id": "c", "n": 0})
    rounds = 100

    async def bump(db: AsyncDatabase[Document]) -> None:
        for _ in range(rounds):
            await db["counters"].update_one({"_id": "c"}, {"$inc": {"n": 1}})

    await asyncio.gather(*(bump(db) for db in databases))
    assert await databases[0]["counters"].find_one({"_id": "c"}) == {"_id": "c", "n": CLIENTS * rounds}


async def test_of_version_conditional_updates_exactly_the_successful_ones_count(
    databases: list[AsyncDatabase[Document]],
) -> None:
    await databases[0]["docs"].insert_one({"_id": "d", "version": 0, "writers": []})
    successes: Counter[int] = Counter()

    async def write(index: int, db: AsyncDatabase[Document]) -> None:
        for _ in range(30):
            seen = await db["docs"].find_one({"_id": "d"}, {"version": 1})
            assert seen is not None
            result = await db["docs"].update_one(
                {"_id": "d", "version": seen["version"]},
                {"$set": {"version": seen["version"] + 1}, "$push": {"writers": index}},
            )
            successes[index] += result.modified_count

    await asyncio.gather(*(write(i, db) for i, db in enumerate(databases)))
    final = await databases[0]["docs"].find_one({"_id": "d"})
    assert final is not None
    assert final["version"] == sum(successes.values()) == len(final["writers"])
    assert Counter(final["writers"]) == successes


async def test_find_one_and_update_claims_hand_each_document_to_one_client(
    databases: list[AsyncDatabase[Document]],
) -> None:
    tickets = 300
    await databases[0]["tickets"].insert_many([{"_id": f"t{n:04}", "state": "waiting", "n": n} for n in range(tickets)])
    claimed: list[str] = []

    async def claim(index: int, db: AsyncDatabase[Document]) -> None:
        while True:
            found = await db["tickets"].find_one_and_update(
                {"state": "waiting"},
                {"$set": {"state": "called", "by": index}},
                sort=[("n", 1)],
                return_document=ReturnDocument.AFTER,
            )
            if found is None:
                return
            assert found["by"] == index
            claimed.append(found["_id"])

    await asyncio.gather(*(claim(i, db) for i, db in enumerate(databases)))
    assert len(claimed) == len(set(claimed)) == tickets, "no ticket went to two clients, none was skipped"


async def test_a_unique_insert_is_won_once(databases: list[AsyncDatabase[Document]]) -> None:
    wins: list[tuple[int, int]] = []

    async def take(index: int, db: AsyncDatabase[Document]) -> None:
        for number in range(50):
            try:
                await db["numbers"].insert_one({"_id": f"B:{number}", "by": index})
                wins.append((number, index))
            except DuplicateKeyError:
                pass

    await asyncio.gather(*(take(i, db) for i, db in enumerate(databases)))
    assert sorted(number for number, _ in wins) == list(range(50))
    stored = {d["_id"]: d["by"] async for d in databases[0]["numbers"].find()}
    assert stored == {f"B:{number}": index for number, index in wins}


async def test_repository_updates_from_many_instances_lose_none(databases: list[AsyncDatabase[Document]]) -> None:
    """The kit's compare-and-set save, with the version-conflict retries that callers rely on."""
    instances = [Repository(db["widgets"], Widget) for db in databases]
    await instances[0].add(Widget(id="w1", colour="red"))
    coats = 10

    def coat(widget: Widget) -> None:
        widget.coats += 1

    async def paint(repository: Repository[Widget]) -> None:
        for _ in range(coats):
            await repository.update("w1", coat, attempts=1000)

    await asyncio.gather(*(paint(r) for r in instances))
    painted = await instances[0].require("w1")
    assert painted.coats == CLIENTS * coats
    assert painted.version == 1 + CLIENTS * coats


async def test_a_save_from_a_stale_load_is_refused_and_writes_nothing(
    databases: list[AsyncDatabase[Document]],
) -> None:
    here, there = Repository(databases[0]["widgets"], Widget), Repository(databases[1]["widgets"], Widget)
    await here.add(Widget(id="w1", colour="red"))
    mine, theirs = await here.require("w1"), await there.require("w1")
    theirs.colour = "blue"
    await there.save(theirs)
    mine.colour = "green"
    with pytest.raises(ConcurrencyError):
        await here.save(mine)
    assert (await here.require("w1")).colour == "blue"


async def test_a_query_on_an_id_and_more_fields_finds_exactly_what_it_names(
    databases: list[AsyncDatabase[Document]],
) -> None:
    """Versioned writes filter on `_id` and `version`: the dev server narrows such queries by its
    `_id` index (deploy/native/mongo/…/NarrowedQueries.java), and must answer as a scan would."""
    rows = databases[0]["rows"]
    await rows.create_index([("day", 1), ("status", 1)])
    await rows.insert_many(
        [{"_id": f"r{n}", "version": n % 3, "day": "d1" if n < 30 else "d2", "status": "waiting"} for n in range(60)]
    )
    assert await rows.find_one({"_id": "r7", "version": 1}) == {
        "_id": "r7",
        "version": 1,
        "day": "d1",
        "status": "waiting",
    }
    assert await rows.find_one({"_id": "r7", "version": 2}) is None
    assert await rows.find_one({"_id": "nobody", "version": 1}) is None
    found = [row["_id"] async for row in rows.find({"_id": {"$in": ["r1", "r2", "r4", "r40"]}, "version": 1})]
    assert sorted(found) == ["r1", "r4", "r40"]
    assert sorted([row["_id"] async for row in rows.find({"_id": {"$in": ["r1", "r2"]}, "day": "d2"})]) == []
    assert len([row async for row in rows.find({"day": "d1", "status": "waiting"})]) == 30

    stale = await rows.update_one({"_id": "r7", "version": 0}, {"$set": {"status": "called"}, "$inc": {"version": 1}})
    assert stale.matched_count == 0, "a write with the wrong version changes nothing"
    landed = await rows.update_one({"_id": "r7", "version": 1}, {"$set": {"status": "called"}, "$inc": {"version": 1}})
    assert (landed.matched_count, landed.modified_count) == (1, 1)
    assert await rows.find_one({"_id": "r7"}) == {"_id": "r7", "version": 2, "day": "d1", "status": "called"}
    assert (await rows.delete_one({"_id": "r8", "version": 0})).deleted_count == 0
    assert (await rows.delete_one({"_id": "r8", "version": 2})).deleted_count == 1
    assert await rows.count_documents({}) == 59
