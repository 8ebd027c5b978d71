"""A service's life on the real stack: starting, stopping, and Kafka going away and coming back.

- A service started while its database is down serves /health/live, answers 503 to commands and
  to readiness (saying why), starts no consumer nor watchdog, and completes its start-up — indexes,
  hall data, then Kafka and the watchdogs — once the database is there (DESIGN §7.5).
- A service process under load exits within 10 s of SIGTERM, and loses nothing it acknowledged:
  every ticket answered 201 is in the database with its event on Kafka or still in the outbox, and
  every event whose offset it committed was handled (DESIGN §7.6). A handler that never finishes
  does not hold the shutdown past its one deadline (`shutdown_timeout_s`), nor is its message committed.
- Kafka stopped and started again on the same port keeps its data directory: the topics, their
  records and the committed offsets are there (`Stack.kafka()`, for the fault suites).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from deploy.native.devstack import Stack, port_open
from goldenkey.contracts import PARKING_INCIDENTS, QUEUE_TICKETS, CloudEvent, IncidentReported, envelope_for
from goldenkey.kit import ManualClock, Repository
from goldenkey.queue.app import Settings, build_app
from tests.support import RunningApp, TopicReader, free_port, on_the_test_stack, produce, unique, wait_for
from tests.widgets import Widget, build, new_contract, settings_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to run the native Kafka and database"),
]

OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
KIOSK = {"Authorization": "Bearer dev-kiosk"}
TICKET = {"item_code": "B001", "channel": "kiosk"}
SIGTERM_TO_EXIT_S = 10.0  # DESIGN §7.6


# --- start-up while the database is down ------------------------------------------------------------


async def test_a_service_started_while_its_database_is_down_completes_its_start_up_once_it_is_back(
    infra: Any, tmp_path: Path
) -> None:
    away = Stack.throwaway(tmp_path)  # a database of its own, not started yet
    database = away.database()
    settings = Settings(**on_the_test_stack(infra, "queue", mongodb_url=away.mongodb_url, mongodb_timeout_ms=500))
    app = build_app(settings, clock=ManualClock(OPENING))
    kit = app.state.kit
    rounds: list[datetime] = []

    async def probe() -> None:
        rounds.append(datetime.now(UTC))

    kit.every(3600, probe, what="probe watchdog")  # stands for the service's own watchdogs
    try:
        async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            assert (await client.get("/health/live")).status_code == 200
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["startup"] == "starting: database not reached yet"
            refused = await client.post("/tickets", json=TICKET, headers=KIOSK)
            assert refused.status_code == 503, refused.text  # not the 422 of a queue without its catalogue
            assert refused.headers["Retry-After"]
            assert "starting" in refused.json()["detail"]
            assert (await client.get("/catalog", headers=KIOSK)).status_code == 503
            assert not kit.started.is_set()
            assert not kit.kafka_ready.is_set(), "Kafka, and so the consumer, waits for start-up"
            assert not kit.consumer.subscriber.running
            assert rounds == [], "the watchdogs wait for start-up"

            await asyncio.to_thread(database.start)

            async def ready_now() -> dict[str, Any] | None:
                answer = await client.get("/health/ready")
                return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]

            body = await wait_for(ready_now, 60)
            assert "startup" not in body["checks"]
            issued = await client.post("/tickets", json=TICKET, headers=KIOSK)
            assert issued.status_code == 201, issued.text
            assert (await client.get("/catalog", headers=KIOSK)).json(), "the hall data was loaded"
            indexes = {index["name"] async for index in await kit.db["tickets"].list_indexes()}
            assert {"outbox_n_1", "day_1_status_1", "plate_hash_1"} <= indexes
            await wait_for(lambda: rounds, 30)
            await wait_for(kit.kafka_ready.is_set, 60)
            await wait_for(lambda: kit.consumer.subscriber.running, 60)
    finally:
        await asyncio.to_thread(database.stop)


# --- SIGTERM under load -------------------------------------------------------------------------------


class Load:
    """Kiosks taking tickets over HTTP and a guard reporting cars with their lights on over Kafka
    (`incident.reported`, which the queue alone consumes: it pages the ticket's holder), until the
    service goes away; what was acknowledged is remembered."""

    def __init__(self, url: str, bootstrap: str) -> None:
        self.url = url
        self.bootstrap = bootstrap
        self.tickets: list[str] = []
        """Ticket ids answered 201."""
        self.reports: list[tuple[int, int, str]] = []
        """(partition, offset, event id) of each incident report Kafka acknowledged."""
        self.refusals: list[str] = []
        self.running = True

    async def kiosk(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            while self.running:
                try:
                    answer = await client.post("/tickets", json=TICKET, headers=KIOSK)
                except httpx.TransportError:  # the service stopped taking requests
                    return
                if answer.status_code == 201:
                    self.tickets.append(answer.json()["ticket_id"])
                else:
                    self.refusals.append(f"{answer.status_code} {answer.text}")

    async def guard(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            while self.running:
                if self.tickets:
                    report = envelope_for(
                        IncidentReported(
                            incident_id=unique("inc-"), kind="lights_on", ticket_id=random.choice(self.tickets)
                        )
                    )
                    sent = await producer.send_and_wait(
                        PARKING_INCIDENTS, report.to_bytes(), key=report.subject.encode()
                    )
                    self.reports.append((sent.partition, sent.offset, report.id))
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: set[int]) -> dict[int, int]:
    """The group's committed offset on each of these partitions that has one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        found = {p: await consumer.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
        return {p: offset for p, offset in found.items() if offset is not None}
    finally:
        await consumer.stop()


async def test_under_load_a_service_exits_within_10_s_of_sigterm_and_keeps_what_it_acknowledged(
    infra: Any, tmp_path: Path
) -> None:
    database = unique("queue_")
    (queue,) = Stack(tmp_path).service_parts(
        {"queue": free_port()},
        env={
            "GOLDENKEY_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "GOLDENKEY_MONGODB_URL": infra.mongodb_url,
            "GOLDENKEY_MONGODB_DATABASE": database,
            "GOLDENKEY_CLOCK_START": OPENING.isoformat(),  # the hall is open, whatever the real time
        },
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    db = mongo[database]
    load = Load(f"http://127.0.0.1:{queue.port}", infra.kafka_bootstrap)
    workers: list[asyncio.Task[None]] = []
    try:
        queue.launch()
        await asyncio.to_thread(queue.wait)
        async with httpx.AsyncClient(base_url=load.url, timeout=10) as client:

            async def kafka_connected() -> bool:
                answer = await client.get("/health/ready")
                return answer.status_code == 200 and answer.json()["status"] == "ok"

            await wait_for(kafka_connected, 60)
        workers = [asyncio.create_task(load.kiosk()) for _ in range(4)] + [asyncio.create_task(load.guard())]

        async def handled_some_reports() -> bool:
            ids = [event_id for _, _, event_id in load.reports]
            return await db["inbox"].count_documents({"_id": {"$in": ids}, "state": "done"}) >= 5

        await wait_for(handled_some_reports, 90)  # tickets coming in, reports being consumed: under load

        assert queue.proc is not None
        signalled = time.monotonic()
        queue.proc.send_signal(signal.SIGTERM)
        try:
            status: int | None = await asyncio.to_thread(queue.proc.wait, SIGTERM_TO_EXIT_S + 20)
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - signalled
        tail = queue.logfile.read_text(errors="replace")[-4000:]
        assert took < SIGTERM_TO_EXIT_S, f"exited {took:.1f}s after SIGTERM; log tail:\n{tail}"
        assert status == -signal.SIGTERM, f"exit status {status} (uvicorn re-raises SIGTERM); log tail:\n{tail}"
        load.running = False
        await asyncio.gather(*workers)
        assert load.tickets, f"no ticket was issued: {load.refusals[:5]}"

        # Every ticket answered 201 is there, its ticket.issued event published or still in its outbox.
        documents = {doc["_id"]: doc async for doc in db["tickets"].find({"_id": {"$in": load.tickets}})}
        assert set(documents) == set(load.tickets)
        waiting = {
            ticket_id
            for ticket_id, doc in documents.items()
            for entry in doc.get("outbox", [])
            if json.loads(entry["value"])["type"] == "ticket.issued"
        }
        async with TopicReader(infra.kafka_bootstrap, QUEUE_TICKETS) as reader:

            def missing() -> set[str]:
                published = {e["subject"] for e in reader.events() if e.get("type") == "ticket.issued"}
                return set(load.tickets) - published - waiting

            await wait_for(lambda: not missing(), 60)

        # Every incident report whose offset the service committed was handled (its inbox row is done).
        partitions = {partition for partition, _, _ in load.reports}
        committed = await committed_offsets(infra.kafka_bootstrap, "queue", PARKING_INCIDENTS, partitions)
        ids = [event_id for _, _, event_id in load.reports]
        done = {row["_id"] async for row in db["inbox"].find({"_id": {"$in": ids}, "state": "done"})}
        behind_commit = [
            event_id for partition, offset, event_id in load.reports if offset < committed.get(partition, -1)
        ]
        assert behind_commit, "no report of this test was committed: the check below would prove nothing"
        assert set(behind_commit) <= done, "a report was committed but not handled"
    finally:
        load.running = False
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.to_thread(queue.stop)
        await mongo.drop_database(database)
        await mongo.close()


async def test_a_handler_that_never_finishes_does_not_hold_the_shutdown_past_its_deadline(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra, shutdown_timeout_s=3.0)
    entered = asyncio.Event()

    async def never_finishes(envelope: CloudEvent, data: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    kit, app = build(settings, contract, before_paint=never_finishes)
    await Repository(kit.db["widgets"], Widget).add(Widget(id="w1", colour="red"))
    request = envelope_for(contract.PaintRequested(widget_id="w1", colour="blue"))
    running = await RunningApp(app).__aenter__()
    try:
        await produce(infra.kafka_bootstrap, contract.requests_topic, request.to_bytes(), b"w1")
        await wait_for(entered.is_set, 60)
    finally:
        asked = time.monotonic()
        await running.__aexit__(None, None, None)
    took = time.monotonic() - asked
    # The deadline, and uvicorn's own steps around the lifespan (a tick, a pause, the sockets).
    assert took < settings.shutdown_timeout_s + 1.5, f"shutdown took {took:.1f}s"
    committed = await committed_offsets(infra.kafka_bootstrap, settings.service, contract.requests_topic, {0, 1, 2})
    assert not any(committed.values()), "the unfinished message was committed"


# --- Kafka stopped and started again ------------------------------------------------------------------


async def test_kafka_stopped_and_started_again_keeps_its_topics_records_and_committed_offsets(tmp_path: Path) -> None:
    stack = Stack.throwaway(tmp_path)
    kafka = stack.kafka()
    topic, group = unique("restart."), unique("restart-")
    await asyncio.to_thread(kafka.start)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for n in range(5):
                await producer.send_and_wait(topic, f"record {n}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            first = await consumer.getone()
            assert first.value == b"record 0"
            await consumer.commit({TopicPartition(topic, 0): 3})
        finally:
            await consumer.stop()
        formatted = (tmp_path / "kafka" / "meta.properties").read_text()

        await asyncio.to_thread(kafka.stop)
        assert not port_open(stack.kafka_port)
        kafka = stack.kafka()  # as a fault suite asks for it again
        assert kafka.port == stack.kafka_port
        await asyncio.to_thread(kafka.start)

        assert (tmp_path / "kafka" / "meta.properties").read_text() == formatted, "formatted again"
        # For a moment after its port opens, the restarted broker answers OffsetFetch with "no
        # committed offset" (seen: 0.3 s) before it has loaded the group's offsets: wait for them.
        await wait_for(lambda: committed_offsets(stack.kafka_bootstrap, group, topic, {0}), 60)
        assert await committed_offsets(stack.kafka_bootstrap, group, topic, {0}) == {0: 3}
        resumed = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await resumed.start()
        try:
            assert (await resumed.getone()).value == b"record 3", "the group goes on where it committed"
            assert (await resumed.getone()).value == b"record 4"
        finally:
            await resumed.stop()
    finally:
        await asyncio.to_thread(kafka.stop)
