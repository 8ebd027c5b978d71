"""Consuming events: idempotent, committed only after success, poison to the dead-letter topic.

FastStream's Kafka subscriber does the fetching; this module owns what happens to each message
(DESIGN §7.2-7.4). The subscriber runs with manual acknowledgement, one message at a time, and an
offset is committed only once the message is handled or dead-lettered:

- a poison message (bad JSON, not a CloudEvent, unknown type, data against its schema) goes to
  `dlq.<service>` at once;
- a handler that raises is retried with exponential backoff; after `consumer_retries` more tries
  the message is dead-lettered too, so one bad event never stops the line;
- while MongoDB or Kafka is unreachable the message is retried for as long as it takes, and
  nothing is committed;
- an event already handled (its id is in the inbox) is acknowledged and skipped.

Handlers must still be idempotent on their own (`Repository.update(..., cause=event)` and ids
derived from the event do that): the inbox is written after the handler, so a crash in between
runs the handler again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import Counter
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from goldenkey.contracts import EVENTS, CloudEvent, EventData, PoisonMessage, dlq_topic, parse_event
from goldenkey.kit.aggregate import ConcurrencyError
from goldenkey.kit.logs import correlation_id, get_logger
from goldenkey.kit.mongo import UNAVAILABLE, Document
from goldenkey.kit.settings import KitSettings

log = get_logger(__name__)

Handler = Callable[[CloudEvent, Any], Awaitable[None]]
TRANSIENT: tuple[type[BaseException], ...] = (*UNAVAILABLE, KafkaError, ConcurrencyError, TimeoutError)
INBOX = "inbox"


class Halted(Exception):
    """The consumer is stopping with a message unfinished: it must not be committed."""


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    # Decoding is ours (parse_event), so that a malformed body reaches the dead-letter path
    # instead of failing inside FastStream before the handler runs.
    return bytes(message.body)


class EventConsumer:
    def __init__(
        self,
        settings: KitSettings,
        db: AsyncDatabase[Document],
        broker: KafkaBroker,
        dlq_counter: Counter,
    ) -> None:
        self.settings = settings
        self.db = db
        self.broker = broker
        self.service = settings.service
        self.dlq_topic = dlq_topic(self.service)
        self.handlers: dict[str, Handler] = {}
        self.without_inbox: set[str] = set()
        self.dlq_counter = dlq_counter.labels(service=self.service)
        self.subscriber: Any = None
        self._stopping = False
        self._halted = False
        self.handled_total = 0

    # --- wiring ----------------------------------------------------------------------------

    def on(self, *event_types: str, inbox: bool = True) -> Callable[[Handler], Handler]:
        """Register a handler for event types; its topics are subscribed when the app starts.

        Handled event ids are kept in the `inbox` so a redelivery is skipped. A handler that is
        idempotent by itself — it only creates aggregates whose ids derive from the event, or
        updates them with `cause=` — may pass `inbox=False` and save the inbox's two inserts a
        message.
        """

        def register(handler: Handler) -> Handler:
            for event_type in event_types:
                if event_type not in EVENTS:
                    raise ValueError(f"unknown event type {event_type!r}")
                if event_type in self.handlers:
                    raise ValueError(f"{event_type!r} already has a handler")
                self.handlers[event_type] = handler
                if not inbox:
                    self.without_inbox.add(event_type)
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        return sorted({EVENTS[t].topic for t in self.handlers})

    def attach(self) -> None:
        """Subscribe to the handled topics as consumer group `<service>`, manual commits."""
        if not self.handlers:
            return
        subscriber = self.broker.subscriber(
            *self.topics,
            group_id=self.service,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            decoder=_raw_body,
            title=f"{self.service}/events",
            description=f"Events the {self.service} service consumes: {', '.join(sorted(self.handlers))}",
        )

        async def consume(body: bytes, message: KafkaMessage) -> None:
            await self.process(message)

        subscriber(consume)
        self.subscriber = subscriber

    def stopping(self) -> None:
        self._stopping = True

    # --- one message -----------------------------------------------------------------------

    async def process(self, message: Any) -> None:
        record: ConsumerRecord[Any, Any] = message.raw_message
        if self._halted:  # an earlier message is unfinished: committing now would skip it
            return
        try:
            await self._process(record)
        except Halted:
            self._halted = True
            return
        await self._commit(message)

    async def _process(self, record: ConsumerRecord[Any, Any]) -> None:
        try:
            envelope, data = parse_event(record.value)
        except PoisonMessage as error:
            await self._dead_letter(record, error.kind, str(error))
            return
        handler = self.handlers.get(envelope.type)
        if handler is None:  # another type on a topic we read: not ours to handle
            return
        token = correlation_id.set(envelope.correlationid)
        try:
            inbox = envelope.type not in self.without_inbox
            if inbox and not await self._retrying(lambda: self._first_sight(envelope)):
                log.info("duplicate event skipped", event_id=envelope.id, type=envelope.type)
                return
            await self._handle(record, handler, envelope, data, inbox=inbox)
        finally:
            correlation_id.reset(token)

    async def _handle(
        self,
        record: ConsumerRecord[Any, Any],
        handler: Handler,
        envelope: CloudEvent,
        data: EventData,
        *,
        inbox: bool,
    ) -> None:
        failures = 0
        while True:
            try:
                await handler(envelope, data)
                break
            except PoisonMessage as error:
                await self._dead_letter(record, error.kind, str(error))
                return
            except TRANSIENT as error:
                # The world is broken, not the message: wait for it, however long, commit nothing.
                log.warning("handler waiting for infrastructure", error=repr(error), event_id=envelope.id)
                await self._backoff(failures)
                failures += 1
            except Exception as error:
                failures += 1
                if failures > self.settings.consumer_retries:
                    log.error("handler failed; dead-lettering", event_id=envelope.id, error=repr(error))
                    await self._dead_letter(record, "handler_error", f"{type(error).__name__}: {error}")
                    return
                log.warning("handler failed; retrying", event_id=envelope.id, error=repr(error), attempt=failures)
                await self._backoff(failures - 1)
        self.handled_total += 1
        if inbox:
            await self._retrying(lambda: self._remember(envelope))

    async def _first_sight(self, envelope: CloudEvent) -> bool:
        """Whether the event still has to be handled: its inbox row is new, or an earlier attempt
        took it up and never finished (the process died).

        Inserting first, rather than looking first, makes the usual case one command."""
        try:
            await self.db[INBOX].insert_one(
                {"_id": envelope.id, "type": envelope.type, "handled_at": datetime.now(UTC), "state": "started"}
            )
            return True
        except DuplicateKeyError:
            seen = await self.db[INBOX].find_one({"_id": envelope.id}, {"state": 1})
            return seen is not None and seen.get("state") == "started"

    async def _remember(self, envelope: CloudEvent) -> None:
        await self.db[INBOX].update_one(
            {"_id": envelope.id}, {"$set": {"state": "done", "handled_at": datetime.now(UTC)}}
        )

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], kind: str, error: str) -> None:
        headers = {
            "x-original-topic": record.topic,
            "x-original-partition": str(record.partition),
            "x-original-offset": str(record.offset),
            "x-error-kind": kind,
            "x-error": error[:1000],
            "x-service": self.service,
            "x-failed-at": datetime.now(UTC).isoformat(),
        }
        original = {
            k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in record.headers or ()
        }
        if "content-type" in original:
            headers["content-type"] = original["content-type"]

        async def publish() -> None:
            await self.broker.publish(record.value or b"", self.dlq_topic, key=record.key, headers=headers)

        await self._retrying(publish)
        self.dlq_counter.inc()
        log.warning(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            kind=kind,
            error=error[:200],
        )

    async def _commit(self, message: Any) -> None:
        await self._retrying(message.ack)

    async def _retrying(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run an infrastructure step until it succeeds, backing off, unless we are stopping."""
        failures = 0
        while True:
            try:
                return await operation()
            except TRANSIENT as error:
                log.warning("waiting for infrastructure", error=repr(error))
                await self._backoff(failures)
                failures += 1

    async def _backoff(self, failures: int) -> None:
        if self._stopping:
            raise Halted
        delay = min(self.settings.consumer_backoff_s * (2**failures), self.settings.consumer_backoff_max_s)
        waited = 0.0
        while waited < delay:  # wake up promptly for a shutdown
            await asyncio.sleep(min(0.05, delay - waited))
            waited += 0.05
            if self._stopping:
                raise Halted
