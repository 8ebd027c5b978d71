"""Faults under steady load: nothing acknowledged is lost, nothing is done twice, nothing is stuck.

The four services run as processes (tests/faults/hall.py). Each test starts a load of kiosks taking
tickets (half with a wheelchair, which the concierge answers; a third with a plate, which parking
links) and a window serving them (each completion invites a rating in feedback), does its fault in
the middle of it, stops the load and waits for the hall to catch up. Then the books: every
acknowledged command's effects, in the queue and in the services consuming its events; the events
on Kafka; the outboxes; the consumer groups' lag. The figures are printed as a table at the end.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from goldenkey.contracts import TicketIssued, envelope_for
from tests.faults.conftest import ROWS
from tests.faults.hall import MAX_POLL_INTERVAL_MS, SERVICES, TOKENS, FaultHall, Load, Row, audit, eventually

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to run the native stack"),
]

WINDOW: dict[str, str] = {}
"""The window the loads' citizens go to, and an item it serves (found once, from the hall's data)."""


async def open_window(hall: FaultHall) -> tuple[str, str]:
    if not WINDOW:
        windows = (await hall.http.get(hall.url("queue", "/windows"), headers=TOKENS["ops"])).json()
        catalog = (await hall.http.get(hall.url("queue", "/catalog"), headers=TOKENS["kiosk"])).json()
        window = windows[0]
        item = next(i for i in catalog if i["category"] in window["categories"])
        opened = await hall.http.post(
            hall.url("queue", f"/windows/{window['window_id']}/open"),
            json={"staff_id": "S-FAULTS"},
            headers=TOKENS["window"],
        )
        assert opened.status_code == 200, opened.text
        WINDOW.update(window_id=window["window_id"], item_code=item["code"])
    return WINDOW["window_id"], WINDOW["item_code"]


async def under_load(hall: FaultHall, name: str, fault: Callable[[Load], Awaitable[None]]) -> Row:
    """Run `fault` in the middle of a steady load; audit and record what it cost."""
    window_id, item_code = await open_window(hall)
    load = Load(hall, tag=name, window_id=window_id, item_code=item_code)
    load.start()
    try:
        await load.until_acknowledged(10)
        await fault(load)
        await load.until_acknowledged(len(load.acknowledged) + 10)  # the hall takes commands again
    except BaseException:
        load.abandon()
        raise
    await load.stop()
    settled = await hall.settle()
    row = await audit(hall, load, Row(name))
    row.outbox, row.lag, row.recovery_s = settled.outbox, settled.lag, settled.seconds
    ROWS.append(row)
    assert row.lost == 0, row.problems
    assert row.duplicated == 0
    assert (row.outbox, row.lag) == (0, 0), (settled.outbox_by_service, settled.lag_by_service)
    assert row.consumed == row.expected_consumed
    return row


@pytest.mark.parametrize("service", SERVICES)
async def test_kill_9_mid_stream_then_restart(hall: FaultHall, service: str) -> None:
    async def crash(load: Load) -> None:
        await hall.kill(service)
        await asyncio.sleep(1)  # the load meets a dead service, its events pile up unconsumed
        await hall.launch(service)

    await under_load(hall, f"kill -9 {service}", crash)


async def test_kafka_stopped_longer_than_the_max_poll_interval(hall: FaultHall) -> None:
    pids = {name: part.proc.pid for name, part in hall.parts.items() if part.proc is not None}
    accepted_while_down: list[int] = []

    async def outage(load: Load) -> None:
        kafka = await hall.stop_kafka()
        before = len(load.acknowledged)
        await asyncio.sleep(MAX_POLL_INTERVAL_MS / 1000 * 2)  # the outage outlasts the consumers' max poll interval
        accepted_while_down.append(len(load.acknowledged) - before)
        await hall.start_part(kafka)

    await under_load(hall, "Kafka stopped 16 s", outage)
    assert accepted_while_down[0] > 0, "commands go to the outbox while Kafka is away"
    assert {name: part.proc.pid for name, part in hall.parts.items() if part.proc is not None} == pids


async def test_database_stopped_then_started(hall: FaultHall) -> None:
    async def outage(load: Load) -> None:
        database = await hall.stop_database()
        await asyncio.sleep(8)  # commands get 503 and are retried; consumers wait, commit nothing
        await hall.start_part(database)

    await under_load(hall, "database stopped 8 s", outage)


async def test_a_service_started_while_the_database_is_down(hall: FaultHall) -> None:
    async def outage(load: Load) -> None:
        database = await hall.stop_database()
        await hall.kill("queue")
        await hall.launch("queue")  # its HTTP comes up; it cannot be ready

        async def refuses() -> bool:
            return (await hall.readiness("queue"))["status_code"] == 503

        await eventually(refuses, 30, "the queue not ready without its database")
        await hall.start_part(database)

    await under_load(hall, "queue started, database down", outage)


# --- poison ---------------------------------------------------------------------------------


def poison_messages() -> dict[str, bytes]:
    """One of every kind of message no consumer can act on, by the kind the DLQ should name."""

    def envelope(**changes: Any) -> dict[str, Any]:
        ticket = TicketIssued(
            ticket_id=str(uuid.uuid4()),
            number="A999",
            category="A",
            item_code="A001",
            channel="kiosk",
            priority=None,
            needs=["wheelchair"],
            issued_at=datetime.now(UTC),
            position=1,
        )
        event = envelope_for(ticket).model_dump(mode="json", exclude_none=True)
        return {**event, **changes}

    schema_violation = envelope()
    schema_violation["data"] = {**schema_violation["data"], "needs": "a wheelchair, please"}
    return {
        "malformed": b'{"specversion": "1.0", "type": ',
        "too_deep": b"[" * 100_000 + b"]" * 100_000,
        "unknown_type": json.dumps(envelope(type="ticket.teleported")).encode(),
        "schema_violation": json.dumps(schema_violation).encode(),
        "forged_source": json.dumps(envelope(source="goldenkey/parking")).encode(),
        "oversize": json.dumps(envelope(padding="x" * 400_000)).encode(),
    }


async def test_poison_messages_interleaved_with_good_ones(hall: FaultHall) -> None:
    poison = poison_messages()
    keys: dict[bytes, str] = {}

    async def inject(load: Load) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=hall.stack.kafka_bootstrap, acks="all", max_request_size=2**20)
        await producer.start()
        try:
            for kind, value in poison.items():
                key = f"poison-{kind}-{uuid.uuid4().hex[:8]}".encode()
                keys[key] = kind
                await producer.send_and_wait("queue.tickets", value, key=key)
                await load.until_acknowledged(len(load.acknowledged) + 2)  # good ones in between
        finally:
            await producer.stop()

    row = await under_load(hall, "poison of 6 kinds", inject)
    readers = [service for service in SERVICES if "queue.tickets" in hall.consumed[service]]
    assert readers, "somebody reads queue.tickets"
    for service in readers:
        found = await dead_letters(hall, service, set(keys))
        assert set(found) == set(keys), f"dlq.{service} lacks {sorted(keys[k] for k in set(keys) - set(found))}"
        for key, headers in found.items():
            assert headers["x-original-topic"] == "queue.tickets"
            assert headers["x-service"] == service
            assert headers["x-error-kind"] == keys[key], (service, headers)
            assert {"x-original-partition", "x-original-offset", "x-error", "x-failed-at"} <= set(headers)
        row.dead_lettered += len(found)
        row.poison += len(keys)
    forged = json.loads(poison["forged_source"])["data"]["ticket_id"]
    assert await hall.database("concierge")["assistance"].count_documents({"ticket_id": forged}) == 0


async def dead_letters(hall: FaultHall, service: str, keys: set[bytes]) -> dict[bytes, dict[str, str]]:
    """The records of dlq.<service> with `keys`, with their headers."""
    reader: AIOKafkaConsumer = AIOKafkaConsumer(
        f"dlq.{service}",
        bootstrap_servers=hall.stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        fetch_max_bytes=4 * 2**20,
        max_partition_fetch_bytes=2**21,
    )
    await reader.start()
    found: dict[bytes, dict[str, str]] = {}
    try:

        async def all_found() -> bool:
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key in keys:
                        found[record.key] = {name: value.decode() for name, value in record.headers}
            return set(found) == keys

        await eventually(all_found, 60, f"every poison message in dlq.{service}")
    except AssertionError:
        pass  # the caller says which are missing
    finally:
        await reader.stop()
    return found
