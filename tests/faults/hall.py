"""The fault suite's hall: the four services as processes on a durable native stack, a steady load
through their HTTP APIs, and the books that say what a fault cost.

Each service runs as `python -m goldenkey.<service>`, as `make up` runs it, so a fault can be what it
is in production: a `kill -9` of the process, Kafka or the database stopped under it. The database
is mongo-java-server on its H2 file backend, so stopping it keeps the data. Every service runs on one
simulated clock (speed 1) that reads a weekday morning, so the hall is open whenever the suite runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from deploy.native.devstack import Part, Stack, free_port

SERVICES = ("queue", "concierge", "parking", "feedback")
MAX_POLL_INTERVAL_MS = 8_000
"""The consumers' max poll interval, short so that a Kafka outage outlasts it."""
OPENING = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Wednesday
TOKENS = {role: {"Authorization": f"Bearer dev-{role}"} for role in ("kiosk", "window", "concierge", "guard", "ops")}
SETTLE_S = 120.0
"""How long the hall may take to catch up after a fault before the books call what is left stuck."""


def service_env(anchor: datetime) -> dict[str, str]:
    return {
        "GOLDENKEY_DEV_MODE": "true",  # the dev tokens and PII key (kit/settings.py)
        "GOLDENKEY_LOG_LEVEL": "INFO",
        "GOLDENKEY_CLOCK_START": OPENING.astimezone(UTC).isoformat(),
        "GOLDENKEY_CLOCK_SPEED": "1",
        "GOLDENKEY_CLOCK_ANCHOR": anchor.isoformat(),
        "GOLDENKEY_RELAY_INTERVAL_S": "1",
        "GOLDENKEY_CONSUMER_BACKOFF_S": "0.05",
        "GOLDENKEY_CONSUMER_BACKOFF_MAX_S": "1",
        "GOLDENKEY_CONSUMER_MAX_POLL_INTERVAL_MS": str(MAX_POLL_INTERVAL_MS),
        "GOLDENKEY_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "GOLDENKEY_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
        "GOLDENKEY_MONGODB_TIMEOUT_MS": "1500",
    }


async def eventually(condition: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Await `condition` until it gives something truthy; fail saying `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        try:
            value = await condition()
        except (httpx.HTTPError, OSError) as error:
            value = error
        else:
            if value:
                return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s; last: {value!r}")


class FaultHall:
    """The stack and the four service processes; restarts and outages on demand."""

    def __init__(self, root: Path) -> None:
        self.stack = Stack.throwaway(root, durable=True)
        self.ports = {name: free_port() for name in SERVICES}
        self.anchor = datetime.now(UTC)
        self.parts: dict[str, Part] = {}
        self.http = httpx.AsyncClient(timeout=10)
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.stack.mongodb_url, serverSelectionTimeoutMS=30_000
        )
        self.consumed: dict[str, list[str]] = {}
        """service -> the topics its consumer group reads (from its AsyncAPI document)"""

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    async def start(self) -> None:
        await asyncio.to_thread(self.stack.up)
        self.parts = {part.name: part for part in self.stack.service_parts(self.ports, service_env(self.anchor))}
        for part in self.parts.values():
            part.launch()
        for part in self.parts.values():
            await asyncio.to_thread(part.wait)
        await self.ready()
        for service in SERVICES:
            document = (await self.http.get(self.url(service, "/asyncapi"))).json()
            channels = {f"#/channels/{name}": channel["address"] for name, channel in document["channels"].items()}
            self.consumed[service] = sorted(
                {channels[o["channel"]["$ref"]] for o in document["operations"].values() if o["action"] == "receive"}
            )

    async def stop(self) -> None:
        await self.http.aclose()
        await self.mongo.close()
        for part in self.parts.values():
            await asyncio.to_thread(part.stop, 10)
        await asyncio.to_thread(self.stack.down)

    # --- faults ----------------------------------------------------------------------------

    async def kill(self, service: str) -> None:
        await asyncio.to_thread(self.parts[service].kill)

    async def launch(self, service: str) -> None:
        """Start a service's process and wait for its HTTP port (not for its readiness)."""
        await asyncio.to_thread(self.parts[service].start)

    async def stop_kafka(self) -> Part:
        kafka = self.stack.kafka()
        await asyncio.to_thread(kafka.stop)
        return kafka

    async def stop_database(self) -> Part:
        database = self.stack.database()
        await asyncio.to_thread(database.stop)
        return database

    @staticmethod
    async def start_part(part: Part) -> None:
        await asyncio.to_thread(part.start)

    # --- health ----------------------------------------------------------------------------

    async def readiness(self, service: str) -> dict[str, Any]:
        answer = await self.http.get(self.url(service, "/health/ready"), timeout=5)
        return {"status_code": answer.status_code, **answer.json()}

    async def ready(self, timeout: float = 90) -> None:
        """Every service ready, its database and Kafka answering."""

        async def all_ready() -> bool:
            for service in SERVICES:
                state = await self.readiness(service)
                if state["status_code"] != 200 or state["checks"].get("kafka") != "ok":
                    return False
            return True

        await eventually(all_ready, timeout, "every service ready with Kafka")

    async def outbox_pending(self) -> dict[str, int]:
        pending = {}
        for service in SERVICES:
            state = await self.readiness(service)
            pending[service] = int(state["checks"].get("outbox_pending", -1))
        return pending

    async def lag(self) -> dict[str, int]:
        """Per consumer group, the records on its topics it has not committed past."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.stack.kafka_bootstrap)
        reader: AIOKafkaConsumer = AIOKafkaConsumer(bootstrap_servers=self.stack.kafka_bootstrap)
        await admin.start()
        await reader.start()
        try:
            topics = sorted({topic for service in SERVICES for topic in self.consumed[service]})
            partitions_of = {
                described["topic"]: [p["partition"] for p in described["partitions"]]
                for described in await admin.describe_topics(topics)
            }
            lag = {}
            for service in SERVICES:
                partitions = [TopicPartition(t, p) for t in self.consumed[service] for p in partitions_of[t]]
                ends = await reader.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(service)
                lag[service] = sum(
                    max(ends[tp] - (committed[tp].offset if tp in committed else 0), 0) for tp in partitions
                )
            return lag
        finally:
            await reader.stop()
            await admin.close()

    async def settle(self) -> Settled:
        """Wait until the hall has caught up: every service ready, every outbox empty, every
        consumer group at the end of its topics. What is left after SETTLE_S is reported."""
        started = time.monotonic()
        outbox: dict[str, int] = {}
        lag: dict[str, int] = {}
        deadline = started + SETTLE_S
        while time.monotonic() < deadline:
            try:
                await self.ready(timeout=max(deadline - time.monotonic(), 1))
                outbox = await self.outbox_pending()
                lag = await self.lag()
            except (AssertionError, httpx.HTTPError, OSError):
                continue
            if not any(outbox.values()) and not any(lag.values()):
                break
            await asyncio.sleep(0.5)
        return Settled(time.monotonic() - started, sum(outbox.values()), sum(lag.values()), outbox, lag)

    def database(self, service: str) -> Any:
        return self.mongo[f"goldenkey_{service}"]


@dataclass
class Settled:
    seconds: float
    outbox: int
    lag: int
    outbox_by_service: dict[str, int]
    lag_by_service: dict[str, int]


# --- the load -------------------------------------------------------------------------------


@dataclass
class Issue:
    key: str
    needs: list[str]
    plate: str | None
    tickets: set[str] = field(default_factory=set)
    """The ticket ids its 201 answers carried: more than one is a duplicated command."""
    answered: int | None = None


@dataclass
class Load:
    """Citizens taking tickets at a steady rate, and windows serving them, through the queue's API.

    Every POST carries an Idempotency-Key and is retried with the same key through 503s, timeouts
    and dropped connections, as a kiosk would, until it is answered or `patience` runs out. A
    command counts as acknowledged only when a 2xx answer came back."""

    hall: FaultHall
    tag: str
    window_id: str
    item_code: str
    rate: float = 8.0
    """Tickets a second."""
    patience: float = 90.0
    issues: list[Issue] = field(default_factory=list)
    completed: set[str] = field(default_factory=set)
    """Tickets whose completion was acknowledged."""
    outcomes: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _plates: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._kiosk()), asyncio.create_task(self._window())]

    async def stop(self) -> None:
        """Stop taking new tickets; let what is under way finish (or run out of patience)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def abandon(self) -> None:
        """Cancel everything under way (the test failed already)."""
        for task in self._tasks:
            task.cancel()

    @property
    def acknowledged(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.tickets]

    async def until_acknowledged(self, count: int, timeout: float = 60) -> None:
        async def enough() -> bool:
            return len(self.acknowledged) >= count

        await eventually(enough, timeout, f"{count} tickets acknowledged")

    async def _kiosk(self) -> None:
        calls: list[asyncio.Task[None]] = []
        n = 0
        while not self._stop.is_set():
            n += 1
            needs = ["wheelchair"] if n % 2 == 0 else []
            plate = f"陕A{next(self._plates) % 100_000:05d}" if n % 3 == 0 else None
            issue = Issue(f"{self.tag}-{n}-{uuid.uuid4().hex[:8]}", needs, plate)
            self.issues.append(issue)
            calls.append(asyncio.create_task(self._issue(issue)))
            try:
                await asyncio.wait_for(self._stop.wait(), 1 / self.rate)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                for call in calls:
                    call.cancel()
                raise
        await asyncio.gather(*calls)

    async def _issue(self, issue: Issue) -> None:
        body: dict[str, Any] = {"item_code": self.item_code, "channel": "kiosk", "needs": issue.needs}
        if issue.plate:
            body["plate"] = issue.plate
        answer = await self._command("/tickets", "kiosk", body, issue.key)
        if answer is not None:
            issue.answered = answer.status_code
            if answer.status_code == 201:
                issue.tickets.add(answer.json()["ticket_id"])
                # A retry of an acknowledged command must get the same answer, not a second ticket.
                again = await self._command("/tickets", "kiosk", body, issue.key)
                if again is not None and again.status_code == 201:
                    issue.tickets.add(again.json()["ticket_id"])

    async def _window(self) -> None:
        """Call, serve and complete whoever is next, one at a time."""
        while not self._stop.is_set():
            called = await self._command(f"/windows/{self.window_id}/call-next", "window", None, None)
            if called is None or called.status_code != 200:
                await asyncio.sleep(0.2)
                continue
            ticket_id = called.json()["ticket_id"]
            started = await self._command(f"/tickets/{ticket_id}/start", "window", {}, f"start-{ticket_id}")
            if started is None or started.status_code != 200:
                continue
            done = await self._command(
                f"/tickets/{ticket_id}/complete", "window", {"outcome": "done"}, f"complete-{ticket_id}"
            )
            if done is not None and done.status_code == 200:
                self.completed.add(ticket_id)

    async def _command(self, path: str, role: str, body: Any, key: str | None) -> httpx.Response | None:
        """POST until answered: a 2xx or a 4xx other than "in progress". None when patience ran out."""
        headers = dict(TOKENS[role])
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline:
            try:
                answer = await self.hall.http.post(self.hall.url("queue", path), json=body, headers=headers)
            except httpx.HTTPError as error:
                self.outcomes[type(error).__name__] += 1
            else:
                self.outcomes[str(answer.status_code)] += 1
                in_progress = answer.status_code == 409 and "in progress" in answer.text
                if answer.status_code < 500 and not in_progress:
                    return answer
            if key is None:  # without a key a retry is a new command: the caller decides
                return None
            await asyncio.sleep(0.25)
        return None


# --- the books ----------------------------------------------------------------------------


@dataclass
class Row:
    """One fault's figures, for the table at the end of the suite."""

    fault: str
    acknowledged: int = 0
    """Commands acknowledged (tickets issued, completions)."""
    effects: int = 0
    """Of those, the ones whose effects are all present."""
    lost: int = 0
    duplicated: int = 0
    published: int = 0
    """Events on Kafka about the acknowledged commands (distinct ids)."""
    consumed: int = 0
    """Of those with a consumer that acts on them, the ones whose consumer's effect is present."""
    expected_consumed: int = 0
    outbox: int = 0
    lag: int = 0
    dead_lettered: int = 0
    poison: int = 0
    recovery_s: float = 0.0
    answers: str = ""
    problems: list[str] = field(default_factory=list)

    COLUMNS = (
        ("fault", 28),
        ("acked", 6),
        ("effects", 7),
        ("lost", 4),
        ("dup", 3),
        ("published", 9),
        ("consumed", 11),
        ("outbox", 6),
        ("lag", 3),
        ("DLQ", 7),
        ("caught up", 9),
    )

    def cells(self) -> list[str]:
        return [
            self.fault,
            str(self.acknowledged),
            str(self.effects),
            str(self.lost),
            str(self.duplicated),
            str(self.published),
            f"{self.consumed}/{self.expected_consumed}",
            str(self.outbox),
            str(self.lag),
            f"{self.dead_lettered}/{self.poison}" if self.poison else "-",
            f"{self.recovery_s:.1f} s",
        ]


def table(rows: list[Row]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(width) for c, (_, width) in zip(cells, Row.COLUMNS, strict=True)) + " |"

    head = line([name for name, _ in Row.COLUMNS])
    rule = "|" + "|".join("-" * (width + 2) for _, width in Row.COLUMNS) + "|"
    body = [line(row.cells()) for row in rows]
    notes = [f"- {r.fault}: answers {r.answers}" for r in rows if r.answers]
    return "\n".join([head, rule, *body, "", *notes])


async def events_about(hall: FaultHall, subjects: set[str], types: set[str]) -> dict[str, dict[str, Any]]:
    """The distinct events on queue.tickets of `types` about `subjects`, by event id."""
    reader: AIOKafkaConsumer = AIOKafkaConsumer(
        "queue.tickets", bootstrap_servers=hall.stack.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        partitions = await eventually(lambda: _assigned(reader), 30, "queue.tickets assigned")
        ends = await reader.end_offsets(list(partitions))
        found: dict[str, dict[str, Any]] = {}
        while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        event = json.loads(record.value or b"")
                    except (ValueError, RecursionError):  # the poison test's
                        continue
                    if isinstance(event, dict) and event.get("type") in types and event.get("subject") in subjects:
                        found[event["id"]] = event
        return found
    finally:
        await reader.stop()


async def _assigned(reader: AIOKafkaConsumer) -> set[TopicPartition]:
    return reader.assignment()


async def audit(hall: FaultHall, load: Load, row: Row) -> Row:
    """Check every acknowledged command's effects, in the queue and in the services that consume
    its events, and count what Kafka carried about them."""
    acknowledged = load.acknowledged
    tickets = {ticket for issue in acknowledged for ticket in issue.tickets}
    row.acknowledged = len(acknowledged) + len(load.completed)
    row.duplicated = sum(len(issue.tickets) - 1 for issue in acknowledged)
    row.answers = ", ".join(f"{k}×{v}" for k, v in sorted(load.outcomes.items()))

    queue, concierge = hall.database("queue"), hall.database("concierge")
    parking, feedback = hall.database("parking"), hall.database("feedback")
    ids = sorted(tickets | load.completed)  # a window may complete a ticket an earlier load issued
    stored = {t["_id"]: t async for t in queue["tickets"].find({"_id": {"$in": ids}}, {"status": 1})}
    help_for: Counter[str] = Counter()
    async for request in concierge["assistance"].find({"ticket_id": {"$in": sorted(tickets)}}, {"ticket_id": 1}):
        help_for[request["ticket_id"]] += 1
    plates = {p["_id"] async for p in parking["plate_tickets"].find({"_id": {"$in": sorted(tickets)}}, {"_id": 1})}
    invited = {
        i["_id"] async for i in feedback["invitations"].find({"_id": {"$in": sorted(load.completed)}}, {"_id": 1})
    }

    events = await events_about(hall, set(ids), {"ticket.issued", "ticket.completed"})
    issued = {e["subject"] for e in events.values() if e["type"] == "ticket.issued"}
    completions = {e["subject"] for e in events.values() if e["type"] == "ticket.completed"}
    row.published = len(events)

    for issue in acknowledged:
        (ticket, *_) = sorted(issue.tickets)
        missing = []
        if ticket not in stored:
            missing.append("ticket not stored")
        if ticket not in issued:
            missing.append("no ticket.issued on Kafka")
        if issue.needs:
            row.expected_consumed += 1
            row.consumed += help_for[ticket] >= 1
            if help_for[ticket] == 0:
                missing.append("no assistance")
            row.duplicated += max(help_for[ticket] - len(issue.needs), 0)
        if issue.plate:
            row.expected_consumed += 1
            row.consumed += ticket in plates
            if ticket not in plates:
                missing.append("plate not linked")
        _tally(row, ticket, missing)
    for ticket in sorted(load.completed):
        missing = []
        if stored.get(ticket, {}).get("status") != "done":
            missing.append(f"status {stored.get(ticket, {}).get('status')}")
        if ticket not in completions:
            missing.append("no ticket.completed on Kafka")
        row.expected_consumed += 1
        row.consumed += ticket in invited
        if ticket not in invited:
            missing.append("no invitation")
        _tally(row, ticket, missing)
    return row


def _tally(row: Row, ticket: str, missing: list[str]) -> None:
    if missing:
        row.lost += 1
        if len(row.problems) < 10:
            row.problems.append(f"{ticket}: {', '.join(missing)}")
    else:
        row.effects += 1
