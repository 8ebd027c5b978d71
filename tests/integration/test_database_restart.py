"""Acknowledged writes survive a restart of the dev stack's database: mongo-java-server on its H2 file
backend, as `make up` runs it (deploy/native/mongo/, docs/devstack.md).

Each test starts its own H2-backed database on a free port (the session's shared one keeps its data
in memory and must not be restarted), writes through PyMongo, restarts the server — cleanly with
SIGTERM, or with SIGKILL right after the last acknowledgement — and reads everything back.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from deploy.native.devstack import Part, Stack, describe_database

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to run the native database"),
]

DOCUMENTS = 300
COUNTERS = 20
INCREMENTS = 400
WRITERS = 8


@pytest.fixture
async def client(durable: tuple[Stack, Part]) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    stack, _ = durable
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stack.mongodb_url, serverSelectionTimeoutMS=20_000)
    try:
        yield mongo
    finally:
        await mongo.close()


@dataclass
class Expected:
    tickets: set[str]
    called: str
    counters: dict[str, int | None]


async def write_and_remember(mongo: AsyncMongoClient[dict[str, object]]) -> Expected:
    """Inserts, $inc updates, a find-and-modify, deletes and a unique index, each acknowledged;
    returns what the database must hold afterwards."""
    db = mongo["restart"]
    await db["tickets"].create_index("number", unique=True)
    numbers = iter(range(DOCUMENTS))
    bumps = iter(range(INCREMENTS))

    async def insert() -> None:
        for number in numbers:
            await db["tickets"].insert_one({"_id": f"t{number}", "number": number, "status": "waiting"})

    async def bump() -> None:
        for index in bumps:
            await db["counters"].update_one({"_id": f"c{index % COUNTERS}"}, {"$inc": {"n": 1}}, upsert=True)

    await asyncio.gather(*(insert() for _ in range(WRITERS // 2)), *(bump() for _ in range(WRITERS // 2)))
    called = await db["tickets"].find_one_and_update(
        {"_id": "t7"}, {"$set": {"status": "called"}}, return_document=ReturnDocument.AFTER
    )
    assert called is not None
    assert called["status"] == "called"
    removed = await db["tickets"].delete_many({"number": {"$gte": DOCUMENTS - 10}})
    assert removed.deleted_count == 10
    last = await db["counters"].update_one({"_id": "last"}, {"$set": {"written": True}}, upsert=True)
    assert last.acknowledged
    counters: dict[str, int | None] = {f"c{i}": INCREMENTS // COUNTERS for i in range(COUNTERS)}
    return Expected({f"t{n}" for n in range(DOCUMENTS - 10)}, "t7", counters | {"last": None})


async def assert_all_there(url: str, expected: Expected) -> None:
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, serverSelectionTimeoutMS=20_000)
    try:
        db = mongo["restart"]
        tickets = {doc["_id"]: doc async for doc in db["tickets"].find()}
        assert set(tickets) == expected.tickets, "every acknowledged insert and delete, and nothing else"
        assert tickets[expected.called]["status"] == "called"
        assert sum(1 for doc in tickets.values() if doc["status"] == "called") == 1
        counters = {doc["_id"]: doc.get("n") async for doc in db["counters"].find()}
        assert counters == expected.counters, "every acknowledged $inc, and the very last write"
        with pytest.raises(DuplicateKeyError):  # the unique index came back too
            await db["tickets"].insert_one({"_id": "again", "number": 3})
    finally:
        await mongo.close()


async def test_every_acknowledged_write_survives_a_sigterm_restart(
    durable: tuple[Stack, Part], client: AsyncMongoClient[dict[str, object]]
) -> None:
    stack, database = durable
    expected = await write_and_remember(client)
    database.stop()  # SIGTERM: the launcher closes the connections and the H2 store
    database.start()
    await assert_all_there(stack.mongodb_url, expected)


async def test_every_acknowledged_write_survives_kill_9_right_after_the_last_ack(
    durable: tuple[Stack, Part], client: AsyncMongoClient[dict[str, object]]
) -> None:
    stack, database = durable
    expected = await write_and_remember(client)
    database.kill()  # SIGKILL: no shutdown; what was acknowledged must already be in the file
    database.start()
    await assert_all_there(stack.mongodb_url, expected)


def test_the_database_names_itself_as_it_answers(durable: tuple[Stack, Part]) -> None:
    stack, _ = durable
    assert describe_database(stack.mongo_port) == (
        "mongo-java-server 1.47.0, h2 backend (announces MongoDB 4.4.0, wire 9)"
    )
