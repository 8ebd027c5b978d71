"""The service kit's event path, measured against ceilings taken in the same run (DESIGN §10).

Ceilings: raw aiokafka produce→consume, raw PyMongo insert_one and update_one. Figures: the
outbox relay draining a backlog, the relay publishing while aggregates are written (nudge path),
and a kit consumer's consume→store→publish pipeline. Each figure is printed with its ratio to
its ceiling; nothing is asserted.

    .venv/bin/python bench/kit_pipeline.py [--events N] [--seconds S]

Every stage gets N events; a kit stage still running after S seconds is cut short and reports the
rate it kept until then (the table says so). Uses the Kafka and MongoDB-protocol server named by
GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL when both are set, otherwise a throwaway
native stack on free loopback ports (deploy/native/devstack.py).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests.widgets` and `deploy.native.devstack` live at the repo root
    sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaProducer, ConsumerRecord  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from pymongo import AsyncMongoClient, monitoring  # noqa: E402

from bench.common import (  # noqa: E402
    Infra,
    Row,
    TopicReader,
    database_name,
    print_table,
    raw_producer,
    start_stack,
)
from bench.probe import CommandCounts, per_operation  # noqa: E402
from goldenkey.contracts import CONTENT_TYPE, CloudEvent, envelope_for  # noqa: E402
from goldenkey.kit import KitSettings, Repository, ServiceKit  # noqa: E402
from goldenkey.kit.kafka import ensure_topics  # noqa: E402
from goldenkey.kit.logs import configure_logging  # noqa: E402
from goldenkey.kit.mongo import ensure_indexes  # noqa: E402
from tests.support import RunningApp, wait_for  # noqa: E402
from tests.widgets import Contract, Widget, build, letters, new_contract  # noqa: E402

WRITERS = 8
"""Concurrent tasks doing database writes (the MongoDB ceilings, and the writes the relay figures need)."""
BATCH = 100
"""Records sent before waiting for their acks (as many as the kit relay's default `relay_batch`)."""


@dataclass
class Latencies:
    """Seconds from an event's start to its arrival; events not seen by the cut count with the
    time they had waited by then, which makes the percentiles lower bounds."""

    seen: list[float] = field(default_factory=list)
    unseen: list[float] = field(default_factory=list)

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile, in milliseconds."""
        values = sorted(self.seen + self.unseen)
        if not values:
            return None
        return 1000 * values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]

    def rows(self, label: str, note: str = "") -> list[Row]:
        censored = bool(self.unseen)
        if censored:
            cut = f"the {len(self.unseen)} not seen by the cut count their wait"
            note = f"{note}; {cut}" if note else cut
        return [
            Row(f"  {label}, p50", self.percentile(50), "ms", note=note, at_least=censored),
            Row(f"  {label}, p99", self.percentile(99), "ms", at_least=censored),
        ]


TOPICS_MADE: list[str] = []
"""Topics this run created, deleted at the end (the broker may be a shared one)."""


def fresh_contract() -> Contract:
    """Event types and topics of their own for one measurement (tests/widgets.py)."""
    contract = new_contract()
    TOPICS_MADE.extend([contract.requests_topic, contract.widgets_topic])
    return contract


class Arrivals(TopicReader):
    """Reads topics from their beginning, noting when each record arrived (wall clock, to compare
    with the events' own `time`)."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        super().__init__(bootstrap, *topics)
        self.seen: list[tuple[float, bytes]] = []

    def arrived(self, at: float, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        self.seen.extend((at, r.value or b"") for r in records)

    async def wait_count(self, count: int, until: float) -> bool:
        """Whether `count` records have arrived by `until` (a `time.time()`)."""
        return await self.wait_until(lambda: len(self.seen) >= count, time.monotonic() + until - time.time())

    @property
    def last(self) -> float:
        return self.seen[-1][0] if self.seen else time.time()

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, json.loads(value)) for at, value in self.seen if value.startswith(b"{")]


# --- helpers ---------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def rate(count: int, seconds: float) -> float | None:
    return count / seconds if seconds > 0 and count else None


async def in_parallel(
    items: Iterable[Any],
    operation: Callable[[Any], Awaitable[Any]],
    *,
    until: float | None = None,
    tasks: int = WRITERS,
) -> int:
    """Run `operation` on the items, `tasks` at a time, starting none after `until` (a
    `time.time()`); how many ran."""
    pending = iter(items)
    done = 0
    end = object()

    async def worker() -> None:
        nonlocal done
        # The items that ran are always the first `done` ones: none is taken after `until`.
        while until is None or time.time() < until:
            item = next(pending, end)
            if item is end:
                return
            await operation(item)
            done += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done


def bench_settings(infra: Infra) -> KitSettings:
    """A service's settings, with the kit's defaults (relay interval and batch, backoffs, timeouts)."""
    return KitSettings(
        service="bench" + letters(8),
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        dev_mode=True,
        dev_tokens=True,
    )


async def prepare(kit: ServiceKit) -> None:
    """What the app's lifespan does before serving: the indexes."""
    await ensure_indexes(kit.db, kit.indexes)


async def send_in_batches(producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    headers = [("content-type", CONTENT_TYPE.encode())]
    for start in range(0, len(records), BATCH):
        futures = [
            await producer.send(topic, value, key=key, headers=headers) for key, value in records[start : start + BATCH]
        ]
        await asyncio.gather(*futures)


def painted_event(contract: Contract, n: int) -> CloudEvent:
    """An event the size and shape of those the kit stages publish."""
    data = contract.WidgetPainted(widget_id=f"w{n}", colour="blue")
    return envelope_for(data, correlationid=f"visit-{n}", sequence=1)


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it, cancelling again if it runs on: on Python 3.11 a cancel can
    be lost in a race inside `asyncio.wait_for` (which PyMongo awaits its sockets with)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


def cut_note(seen: int, n: int, seconds: float) -> str:
    return "" if seen >= n else f"; cut at {seconds:.0f}s with {seen}/{n} seen"


# --- ceilings --------------------------------------------------------------------------------


async def kafka_ceiling(infra: Infra, n: int) -> list[Row]:
    """Raw aiokafka: N records sent in batches, each batch awaited, read back by a consumer."""
    contract = fresh_contract()
    await ensure_topics(bench_settings(infra), [contract.widgets_topic])
    records = [(f"w{i}".encode(), painted_event(contract, i).to_bytes()) for i in range(n)]
    producer = raw_producer(infra.kafka_bootstrap)
    await producer.start()
    try:
        await producer.partitions_for(contract.widgets_topic)  # metadata fetched outside the timing
        async with Arrivals(infra.kafka_bootstrap, contract.widgets_topic) as reader:
            start = time.time()
            await send_in_batches(producer, contract.widgets_topic, records)
            acked = time.time()
            await reader.wait_count(n, time.time() + 60)
            seen, end = len(reader.seen), reader.last
    finally:
        await producer.stop()
    partitions = bench_settings(infra).kafka_topic_partitions
    note = f"{partitions} partitions, batches of {BATCH}, {len(records[0][1])} B values" + cut_note(seen, n, 60)
    return [
        Row("Kafka produce, all acked", rate(n, acked - start), "msg/s", note="for reference"),
        Row("Kafka produce→consume [ceiling]", rate(seen, end - start), "msg/s", note=note),
    ]


async def mongo_ceilings(infra: Infra, n: int, seconds: float) -> tuple[list[Row], dict[str, Any]]:
    """Raw PyMongo: N single-document inserts, then updates by _id of those N documents, by 8
    concurrent tasks, then by one. A phase still running after `seconds` stops there (the rest
    of the inserts are then made untimed, so the updates see a collection of N documents, as the
    kit stages do)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    db = client["goldenkey_bench" + letters(8)]
    contract = fresh_contract()
    collection = db["raw"]

    def document(i: int) -> dict[str, Any]:  # shaped like an aggregate with one event waiting
        event = painted_event(contract, i)
        entry = {"id": event.id, "topic": contract.widgets_topic, "key": event.subject, "value": event.to_bytes()}
        return {
            "_id": f"w{i}",
            **{"colour": "red", "coats": 0, "seq": 1, "applied": [], "version": 1},
            **{"outbox": [{**entry, "value": entry["value"].decode()}], "outbox_n": 1},
        }

    async def update(i: int) -> None:
        await collection.update_one({"_id": f"w{i}"}, {"$set": {"colour": "blue"}, "$inc": {"coats": 1}})

    async def timed(
        items: Iterable[Any], operation: Callable[[Any], Awaitable[Any]], tasks: int = WRITERS
    ) -> tuple[float | None, int, str]:
        start = time.time()
        done = await in_parallel(items, operation, until=start + seconds, tasks=tasks)
        return rate(done, time.time() - start), done, cut_note(done, n, seconds).replace("seen", "done")

    try:
        info = await db.command("buildInfo")
        await in_parallel(range(WRITERS), lambda _: db.command("ping"))  # the connection pool, opened untimed
        documents = [document(i) for i in range(n)]
        inserts, inserted, insert_note = await timed(documents, collection.insert_one)
        if inserted < n:
            await collection.insert_many(documents[inserted:])
        updates, _, update_note = await timed(range(n), update)
        alone, _, alone_note = await timed(range(n), update, tasks=1)
    finally:
        await client.drop_database(db.name)
        await client.close()
    rows = [
        Row(f"MongoDB insert_one x{WRITERS} [ceiling]", inserts, "op/s", note=insert_note.lstrip("; ")),
        Row(
            f"MongoDB update_one x{WRITERS} [ceiling]",
            updates,
            "op/s",
            note=f"by _id, on {n} documents" + update_note,
        ),
        Row("MongoDB update_one x1", alone, "op/s", note="for reference" + alone_note),
    ]
    return rows, info


# --- the kit ---------------------------------------------------------------------------------


COMMANDS = CommandCounts()


@dataclass
class Stage:
    """What one kit stage measured."""

    rate: float | None
    note: str
    commands: tuple[Counter[str], Counter[str]]
    """Counts and microseconds, by command and collection."""
    seen: int
    latencies: Latencies = field(default_factory=Latencies)

    def commands_per_event(self, leave_out: str = "") -> list[str]:
        """Per event published: each kind of command, how many, and how long they took together."""
        return per_operation(self.commands, self.seen, leave_out)


async def relay_drain(infra: Infra, n: int, seconds: float) -> Stage:
    """N aggregates saved with one event each while no relay runs, then `OutboxRelay.drain()`
    with a started broker, until all N are on the topic."""
    contract = fresh_contract()
    kit = ServiceKit(bench_settings(infra))
    kit.repository("widgets", Widget)  # watched by the relay, indexed as in a service
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget, relay=None)

    async def write(i: int) -> None:
        widget = Widget(id=f"w{i}", colour="red")
        widget.record(contract.WidgetMade(widget_id=widget.id, colour="red"), at=now())
        await widgets.add(widget)

    try:
        await prepare(kit)
        await in_parallel(range(n), write)
        await ensure_topics(kit.settings, [contract.widgets_topic])
        await kit.broker.start()
        kit.publisher.running = True
        async with Arrivals(kit.settings.kafka_bootstrap, contract.widgets_topic) as reader:
            COMMANDS.start()
            start = time.time()
            draining = asyncio.create_task(kit.relay.drain())
            await asyncio.wait([draining], timeout=seconds)
            await cancel(draining)
            commands = COMMANDS.stop()
            await reader.wait_count(n, start + seconds)
            seen, end = len(reader.seen), reader.last
        return Stage(rate(seen, end - start), "one drain()" + cut_note(seen, n, seconds), commands, seen)
    finally:
        kit.publisher.running = False
        await kit.broker.stop()
        await kit.client.drop_database(kit.settings.database)
        await kit.client.close()


async def relay_nudged(infra: Infra, n: int, seconds: float) -> Stage:
    """The relay's workers running while N aggregates are written, 8 at a time: first write to
    last event seen, and each event's latency from its `time` (just before its write) to its
    arrival at a reader."""
    contract = fresh_contract()
    kit = ServiceKit(bench_settings(infra))
    widgets = kit.repository("widgets", Widget)
    written: dict[str, float] = {}

    async def write(i: int) -> None:
        widget = Widget(id=f"w{i}", colour="red")
        at = now()
        widget.record(contract.WidgetMade(widget_id=widget.id, colour="red"), at=at)
        await widgets.add(widget)
        written[widget.id] = at.timestamp()

    try:
        await prepare(kit)
        await ensure_topics(kit.settings, [contract.widgets_topic])
        await kit.broker.start()
        kit.publisher.running = True
        async with Arrivals(kit.settings.kafka_bootstrap, contract.widgets_topic) as reader:
            kit.relay.start()
            COMMANDS.start()
            start = time.time()
            await in_parallel(range(n), write)
            writes_took = time.time() - start
            await reader.wait_count(n, start + seconds)
            cut = time.time()
            commands = COMMANDS.stop()
            kit.publisher.running = False  # or stop() would flush what is left first
            await kit.relay.stop()
            seen, end = len(reader.seen), reader.last
            arrived = {e["subject"]: at for at, e in reader.events()}
        latencies = Latencies(
            [arrived[s] - t for s, t in written.items() if s in arrived],
            [cut - t for s, t in written.items() if s not in arrived],
        )
        note = f"the {n} writes took {writes_took:.1f}s" + cut_note(seen, n, seconds)
        return Stage(rate(seen, end - start), note, commands, seen, latencies)
    finally:
        kit.publisher.running = False
        await kit.broker.stop()
        await kit.client.drop_database(kit.settings.database)
        await kit.client.close()


async def pipeline(infra: Infra, n: int, seconds: float) -> Stage:
    """A kit consumer (tests/widgets.py, served as an app) handling N paint requests, one per
    widget: each loads its widget, repaints it and records WidgetPainted, which the relay
    publishes. Incoming produced → all derived events seen."""
    contract = fresh_contract()
    settings = bench_settings(infra)
    kit, app = build(settings, contract)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    producer = raw_producer(infra.kafka_bootstrap)
    sent: dict[str, float] = {}

    def request(widget_id: str, n: int) -> tuple[bytes, bytes]:
        event = envelope_for(contract.PaintRequested(widget_id=widget_id, colour="blue"), correlationid=f"visit-{n}")
        sent[event.id] = event.time.timestamp()
        return widget_id.encode(), event.to_bytes()

    try:
        await in_parallel(["warm", *(f"w{i}" for i in range(n))], lambda i: widgets.add(Widget(id=i, colour="red")))
        await ensure_topics(settings, [contract.requests_topic, contract.widgets_topic])
        await producer.start()
        async with Arrivals(infra.kafka_bootstrap, contract.widgets_topic) as reader, RunningApp(app):
            await wait_for(kit.kafka_ready.is_set, 60)
            # One request first, untimed: the consumer group has joined and every path is warm.
            await send_in_batches(producer, contract.requests_topic, [request("warm", -1)])
            if not await reader.wait_count(1, time.time() + 60):
                raise RuntimeError("the warm-up paint request was never handled")
            sent.clear()
            COMMANDS.start()
            start = time.time()
            await send_in_batches(producer, contract.requests_topic, [request(f"w{i}", i) for i in range(n)])
            produced_in = time.time() - start
            await reader.wait_count(n + 1, start + seconds)
            cut = time.time()
            commands = COMMANDS.stop()
            kit.publisher.running = False  # or the app's shutdown would first flush what is left
            seen, end = len(reader.seen) - 1, reader.last
            arrived = {e["causationid"]: at for at, e in reader.events() if e.get("causationid") in sent}
        latencies = Latencies(
            [arrived[i] - t for i, t in sent.items() if i in arrived],
            [cut - t for i, t in sent.items() if i not in arrived],
        )
        note = f"the {n} requests were produced in {produced_in:.2f}s" + cut_note(seen, n, seconds)
        return Stage(rate(seen, end - start), note, commands, seen, latencies)
    finally:
        await producer.stop()
        async with AsyncMongoClient(infra.mongodb_url) as client:
            await client.drop_database(settings.database)


# --- running it ------------------------------------------------------------------------------


async def delete_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t in TOPICS_MADE]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def measure(infra: Infra, n: int, seconds: float) -> None:
    began = time.monotonic()

    def step(what: str) -> None:
        print(f"kit_pipeline: {what}…", file=sys.stderr, flush=True)

    step("ceilings")
    kafka_rows = await kafka_ceiling(infra, n)
    mongo_rows, info = await mongo_ceilings(infra, n, seconds / 4)
    kafka_top, update_ceiling = kafka_rows[1].value, mongo_rows[1].value
    slower_name, slower = min(
        [("Kafka round trip", kafka_top), ("update_one", update_ceiling)], key=lambda pair: pair[1] or 0.0
    )
    step("relay, draining a backlog")
    drain = await relay_drain(infra, n, seconds)
    step("relay, nudged while writing")
    nudged = await relay_nudged(infra, n, seconds)
    step("consume→store→publish pipeline")
    piped = await pipeline(infra, n, seconds)

    def of_update(stage: Stage) -> str:
        share = f"{stage.rate / update_ceiling:.0%}" if stage.rate and update_ceiling else "—"
        return f"{share} of update_one; {stage.note}"

    kafka = "Kafka round trip"
    rows = [
        *kafka_rows,
        *mongo_rows,
        Row("Relay: drain() a backlog", drain.rate, "ev/s", kafka, kafka_top, of_update(drain)),
        Row("Relay: nudged while writing", nudged.rate, "ev/s", kafka, kafka_top, of_update(nudged)),
        *nudged.latencies.rows("event time → seen by a reader"),
        Row("Pipeline: consume→store→publish", piped.rate, "ev/s", slower_name, slower, "target ≥ 50%; " + piped.note),
        *piped.latencies.rows("request produced → derived seen", "a burst of N, so mostly queueing"),
    ]
    print(f"\nkit pipeline — {n} events per figure, {WRITERS} concurrent writers, stages cut at {seconds:.0f}s\n")
    print_table(rows)
    print("\nMongoDB commands per event published (PyMongo command monitoring; times overlap when concurrent):")
    columns = [
        ["drain()", *drain.commands_per_event()],
        ["nudged (writes aside)", *nudged.commands_per_event(leave_out="insert widgets")],
        ["pipeline", *piped.commands_per_event()],
    ]
    for cells in itertools.zip_longest(*columns, fillvalue=""):
        print("  " + "".join(cell.ljust(50) for cell in cells).rstrip())
    print()
    print(f"broker:    {infra.kafka}")
    print(f"database:  {database_name(info, infra.native)}")
    print(
        f"client:    Python {platform.python_version()}, aiokafka {version('aiokafka')}, pymongo {version('pymongo')},"
        f" faststream {version('faststream')}; {os.cpu_count()} cores"
    )
    print(f"took:      {time.monotonic() - began:.0f}s, stack start-up aside")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per figure (default 2000)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="a kit stage still running after this is cut short (default 30)"
    )
    args = parser.parse_args()
    configure_logging("bench", "WARNING", json=False)
    monitoring.register(COMMANDS)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so that the throwaway stack goes too
    infra, down = start_stack()
    try:
        asyncio.run(measure(infra, args.events, args.seconds))
        asyncio.run(delete_topics(infra.kafka_bootstrap))
    finally:
        down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
