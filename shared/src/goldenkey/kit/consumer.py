"""Consuming events: idempotent, committed only after success, poison to the dead-letter topic.

FastStream's Kafka subscriber fetches (`getone`: one message at a time, manual acknowledgement);
this module owns what happens to each message (DESIGN §7.2-7.5). Every message ends one of two
ways, and none is ever skipped silently:

- **done**: handled, a duplicate (its id is in the inbox), a type nobody here handles, or
  dead-lettered to `dlq.<service>`; then its offset, and only its own, is committed;
- **again**: unfinished. Its partition is sought back to it and paused for a backoff while the
  consumer goes back to polling, so it stays in its group however long an outage lasts; the
  message comes again when the partition resumes, and nothing after it on that partition is
  handled, let alone committed, before it.

What a failure means (`failure_of`):

- a poison message (`PoisonMessage`: not JSON, nested too deep, oversize, not a CloudEvent, an
  unknown type, a forged source, data against its schema, or a handler saying so) is
  dead-lettered at once;
- the database or Kafka unreachable (`kit.mongo.UNAVAILABLE`, a Kafka error aiokafka calls
  `retriable`, a Kafka timeout) is waited out: again, for as long as it takes;
- a lost race (`ConcurrencyError`) or a timeout (the handler's own, or the kit cutting off an
  attempt) while the database answers is tried `consumer_contention_retries` more times, any other
  error `consumer_retries` more times; then it is dead-lettered as "handler_error".

No attempt holds the consumer past `consumer_attempt_timeout_s`, nor past a quarter of the max
poll interval beyond which aiokafka would leave the group. A commit Kafka refuses because the
partition went to another member (`CommitFailedError`) is logged and counted, not retried: the new
owner gets the message again. Handlers must be idempotent on their own anyway
(`Repository.update(..., cause=event)` and ids derived from the event do that): the inbox is
written after the handler, so a crash in between runs the handler again.

A consumer group that has never committed on a topic starts each partition at its first record
younger than `consumer_new_group_horizon_s`, and commits that start at once (docs/kit.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from goldenkey.contracts import EVENTS, CloudEvent, PoisonMessage, dlq_topic
from goldenkey.contracts.registry import parse_event
from goldenkey.kit.aggregate import ConcurrencyError
from goldenkey.kit.kafka import PRODUCER_FATAL, BrokerPublisher, kafka_unreachable
from goldenkey.kit.logs import correlation_id, get_logger
from goldenkey.kit.metrics import Metrics
from goldenkey.kit.mongo import UNAVAILABLE, Document, ping
from goldenkey.kit.settings import KitSettings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

log = get_logger(__name__)

Handler = Callable[[CloudEvent, Any], Awaitable[None]]
INBOX = "inbox"
HANDLER_ERROR = "handler_error"
"""The dead-letter kind of a message whose handler kept failing; poison kinds are `PoisonMessage.kind`."""


class Failure(StrEnum):
    """What a failed attempt at a message says about the message."""

    POISON = "poison"
    """No retry can fix it: dead-letter it now."""
    INFRASTRUCTURE = "infrastructure"
    """The database or Kafka is away: the message is fine, wait however long it takes."""
    CONTENTION = "contention"
    """Lost races or ran out of time: retried `consumer_contention_retries` times."""
    ERROR = "error"
    """Anything else: retried `consumer_retries` times."""


def failure_of(error: BaseException) -> Failure:
    """What the error of a failed attempt says about the message."""
    if isinstance(error, PoisonMessage):
        return Failure.POISON
    if isinstance(error, UNAVAILABLE) or kafka_unreachable(error):
        return Failure.INFRASTRUCTURE
    if isinstance(error, ConcurrencyError | TimeoutError):
        return Failure.CONTENTION
    return Failure.ERROR


class AttemptCutOff(TimeoutError):
    """The kit stopped an attempt that held the consumer too long."""


@dataclass
class Unfinished:
    """The message a partition waits on, and how it went so far."""

    offset: int
    attempts: int = 0
    failures: int = 0
    """Failed attempts that count against the message (the infrastructure's absences do not)."""
    dead_letter: tuple[str, str] | None = None
    """(kind, error) once it is to be dead-lettered, until the dead-letter topic has it."""


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    # Decoding is ours (parse_event), so that a malformed body reaches the dead-letter path
    # instead of failing inside FastStream before the handler runs.
    return bytes(message.body)


async def _parse_any_headers(
    record: ConsumerRecord[Any, Any], parse: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    # FastStream decodes every header as UTF-8 before the handler runs, and drops a message that
    # fails there unseen: a producer's binary header must not make its event vanish.
    try:
        return await parse(record)
    except (UnicodeDecodeError, AttributeError):
        readable = [(name, (value or b"").decode(errors="replace").encode()) for name, value in record.headers]
        return await parse(replace(record, headers=readable))


class EventConsumer:
    """The service's consumer group: its handlers, and what becomes of each message it reads."""

    def __init__(
        self,
        settings: KitSettings,
        db: AsyncDatabase[Document],
        broker: KafkaBroker,
        metrics: Metrics,
        publisher: BrokerPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.broker = broker
        self.publisher = publisher or BrokerPublisher(broker)
        """Publishes dead letters (replacing a producer that cannot send any more)."""
        self.service = settings.service
        self.dlq_topic = dlq_topic(self.service)
        self.handlers: dict[str, Handler] = {}
        self.without_inbox: set[str] = set()
        self.subscriber: Any = None
        self.handled_total = 0
        self.assignments = 0
        """Partition assignments this consumer received: 1 as long as it never left its group."""
        self.attempt_s = min(settings.consumer_attempt_timeout_s, settings.consumer_max_poll_interval_ms / 4000)
        self.dlq_counter = metrics.dlq_messages.labels(service=self.service)
        redeliveries = metrics.counter(
            "goldenkey_consumer_redeliveries_total",
            "Messages left unfinished to come again, by why: the infrastructure away, contention, an error",
            ("service", "reason"),
        )
        self.redeliveries = {
            failure: redeliveries.labels(service=self.service, reason=failure.value)
            for failure in (Failure.INFRASTRUCTURE, Failure.CONTENTION, Failure.ERROR)
        }
        self.commit_failures = metrics.counter(
            "goldenkey_consumer_commit_failures_total",
            "Handled messages whose commit Kafka refused or did not answer (a rebalance, an outage)",
            ("service",),
        ).labels(service=self.service)
        dlq_refusals = metrics.counter(
            "goldenkey_dlq_refused_total",
            "Dead letters the dead-letter topic refused, by what was kept: the headers only, or nothing",
            ("service", "kept"),
        )
        self.dlq_refusals = {
            kept: dlq_refusals.labels(service=self.service, kept=kept) for kept in ("headers", "nothing")
        }
        self._stopping = False
        self._unfinished: dict[TopicPartition, Unfinished] = {}
        self._resumes: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._positioning: set[TopicPartition] = set()

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
        settings = self.settings
        subscriber = self.broker.subscriber(
            # The kit creates the topics (kit.kafka.ensure_topics); FastStream would make them 1 partition, 1 replica.
            *(Topic(topic, declare=False) for topic in self.topics),
            group_id=self.service,
            ack_policy=AckPolicy.MANUAL,
            # Where the group has committed on a topic before; a new group starts at the horizon (_start_reading).
            auto_offset_reset="earliest",
            max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
            listener=_Rebalances(self),
            parser=_parse_any_headers,
            decoder=_raw_body,
            title=f"{self.service}/events",
            description=f"Events the {self.service} service consumes: {', '.join(sorted(self.handlers))}",
        )

        async def consume(body: bytes, message: KafkaMessage) -> None:
            await self.process(message)

        subscriber(consume)
        self.subscriber = subscriber

    def stopping(self) -> None:
        """From now on every message is left for the next owner of its partition, uncommitted."""
        self._stopping = True
        for timer in self._resumes.values():
            timer.cancel()
        self._resumes.clear()

    # --- one message -----------------------------------------------------------------------

    async def process(self, message: Any) -> None:
        """Take one message to its end: done and committed, or sought back to come again."""
        record: ConsumerRecord[Any, Any] = message.raw_message
        partition = TopicPartition(record.topic, record.partition)
        if self._stopping or partition in self._positioning:
            await self._again(message, partition, None)
            return
        try:
            await self._process(message, record, partition)
        except Exception:  # the kit's own bug: the message comes again rather than be skipped
            log.exception("consumer failed on a message; it comes again", topic=record.topic, offset=record.offset)
            unfinished = self._unfinished.setdefault(partition, Unfinished(record.offset, attempts=1))
            self.redeliveries[Failure.ERROR].inc()
            await self._again(message, partition, unfinished)

    async def _process(self, message: Any, record: ConsumerRecord[Any, Any], partition: TopicPartition) -> None:
        unfinished = self._unfinished.get(partition)
        if unfinished is None or unfinished.offset != record.offset:
            unfinished = self._unfinished[partition] = Unfinished(record.offset)
        unfinished.attempts += 1
        deadline = asyncio.get_running_loop().time() + self.attempt_s
        if unfinished.dead_letter is None:
            error = await self._attempt(record, deadline)
            if error is not None:
                failure = await self._failure(error)
                if failure is Failure.POISON:
                    unfinished.dead_letter = (getattr(error, "kind", PoisonMessage.kind), str(error))
                elif self._comes_again(unfinished, failure, error, record):
                    self.redeliveries[failure].inc()
                    await self._again(message, partition, unfinished)
                    return
                else:
                    unfinished.dead_letter = (HANDLER_ERROR, f"{type(error).__name__}: {error}")
        if unfinished.dead_letter is not None and not await self._dead_letter(
            record, *unfinished.dead_letter, deadline
        ):
            self.redeliveries[Failure.INFRASTRUCTURE].inc()
            await self._again(message, partition, unfinished)
            return
        self._unfinished.pop(partition, None)
        await self._commit(message, partition, record.offset)

    async def _attempt(self, record: ConsumerRecord[Any, Any], deadline: float) -> Exception | None:
        """Parse and handle the message once, within the attempt's time; the error, if it failed."""
        cut_off = asyncio.timeout_at(deadline)
        try:
            async with cut_off:
                await self._handle(record)
        except Exception as error:
            if cut_off.expired():
                return AttemptCutOff(f"an attempt may take {self.attempt_s:g} s")
            return error
        return None

    async def _handle(self, record: ConsumerRecord[Any, Any]) -> None:
        envelope, data = parse_event(record.value or b"", max_bytes=self.settings.max_event_bytes)
        handler = self.handlers.get(envelope.type)
        if handler is None:  # another type on a topic we read: not ours to handle
            return
        token = correlation_id.set(envelope.correlationid)
        try:
            inbox = envelope.type not in self.without_inbox
            if inbox and not await self._first_sight(envelope):
                log.info("duplicate event skipped", event_id=envelope.id, type=envelope.type)
                return
            await handler(envelope, data)
            self.handled_total += 1
            if inbox:
                try:
                    await self._remember(envelope)
                except Exception as error:
                    # Handled all the same: a redelivery finds its row "started" and runs the
                    # (idempotent) handler again.
                    log.warning("handled event not marked done in the inbox", event_id=envelope.id, error=repr(error))
        finally:
            correlation_id.reset(token)

    async def _failure(self, error: Exception) -> Failure:
        failure = failure_of(error)
        if isinstance(error, TimeoutError) and failure is Failure.CONTENTION and not await self._database_answers():
            return Failure.INFRASTRUCTURE  # slow because the database is away, not because of the message
        return failure

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(min(2.0, self.attempt_s)):
                await ping(self.db)
        except Exception:
            return False
        return True

    def _comes_again(
        self, unfinished: Unfinished, failure: Failure, error: Exception, record: ConsumerRecord[Any, Any]
    ) -> bool:
        """Whether a failed message is tried again rather than dead-lettered."""
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        if failure is Failure.INFRASTRUCTURE or self._stopping:
            log.warning("waiting for infrastructure", error=repr(error), attempt=unfinished.attempts, **where)
            return True
        unfinished.failures += 1
        retries = (
            self.settings.consumer_contention_retries
            if failure is Failure.CONTENTION
            else self.settings.consumer_retries
        )
        if unfinished.failures > retries:
            log.error("handler failed; dead-lettering", error=repr(error), failures=unfinished.failures, **where)
            return False
        log.warning(
            "handler failed; retrying", error=repr(error), failure=failure.value, attempt=unfinished.failures, **where
        )
        return True

    async def _first_sight(self, envelope: CloudEvent) -> bool:
        """Whether the event still has to be handled: its inbox row is new, or an earlier attempt
        took it up and never finished (the process died, or the handler failed).

        Inserting first, rather than looking first, makes the usual case one command."""
        try:
            await self.db[INBOX].insert_one(
                {"_id": envelope.id, "type": envelope.type, "handled_at": datetime.now(UTC), "state": "started"}
            )
            return True
        except DuplicateKeyError:
            seen = await self.db[INBOX].find_one({"_id": envelope.id}, {"state": 1})
            if seen is None:  # the duplicate is not this event's row: the inbox is broken, not the event seen
                raise
            return seen.get("state") == "started"

    async def _remember(self, envelope: CloudEvent) -> None:
        await self.db[INBOX].update_one(
            {"_id": envelope.id}, {"$set": {"state": "done", "handled_at": datetime.now(UTC)}}
        )

    # --- the end of a message --------------------------------------------------------------

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], kind: str, error: str, deadline: float) -> bool:
        """Publish the message to the dead-letter topic; False if Kafka is away (it comes again).

        A dead-letter topic that refuses the record for good (too large for it, not authorised…)
        gets its headers with an empty body and an `x-error` saying so; one that refuses even that
        leaves an error in the log. Either way the message is given up on and counted."""
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
        body = record.value or b""
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset, "kind": kind}
        try:
            await self._publish_dead_letter(body, record.key, headers, deadline)
        except Exception as refused:
            if self._stopping or kafka_unreachable(refused) or isinstance(refused, (TimeoutError, *PRODUCER_FATAL)):
                log.warning("dead-letter topic unreachable; the message comes again", error=repr(refused), **where)
                return False
            why = f"{type(refused).__name__}: {refused}" if str(refused) else type(refused).__name__
            without_body = f"body of {len(body)} bytes not kept ({why}); {error}"
            try:
                await self._publish_dead_letter(b"", record.key, {**headers, "x-error": without_body[:1000]}, deadline)
            except Exception as again:
                if self._stopping or kafka_unreachable(again) or isinstance(again, TimeoutError):
                    return False
                self.dlq_refusals["nothing"].inc()
                log.error("dead letter lost: the dead-letter topic refused it", error=repr(again), headers=headers)
            else:
                self.dlq_refusals["headers"].inc()
                log.error("dead letter kept without its body", error=repr(refused), **where)
        self.dlq_counter.inc()
        log.warning("message dead-lettered", error=error[:200], **where)
        return True

    async def _publish_dead_letter(
        self, body: bytes, key: bytes | None, headers: dict[str, str], deadline: float
    ) -> None:
        async with asyncio.timeout_at(deadline):
            await self.publisher.publish(body, self.dlq_topic, key=key, headers=headers)

    async def _commit(self, message: Any, partition: TopicPartition, offset: int) -> None:
        """Commit this message's offset, and no other: later ones of the partition are not handled yet."""
        consumer = cast("AIOKafkaConsumer", message.consumer)
        where = {"topic": partition.topic, "partition": partition.partition, "offset": offset}
        try:
            async with asyncio.timeout(self.attempt_s):
                await consumer.commit({partition: offset + 1})
        except (CommitFailedError, IllegalStateError) as error:
            # The partition went to another member: it reads the message again, and the inbox and
            # idempotent handlers make that harmless. Retrying cannot succeed.
            self.commit_failures.inc()
            log.warning(
                "commit refused after a rebalance; the new owner gets the message again", error=repr(error), **where
            )
        except (KafkaError, TimeoutError) as error:
            # Not waited out in place: the next commit on the partition covers this one, or a
            # restart brings the message again, harmlessly.
            self.commit_failures.inc()
            log.warning("commit failed; a later commit covers it", error=repr(error), **where)
        else:
            await StreamMessage.ack(message)  # FastStream's bookkeeping (its metrics), without its commit-everything

    async def _again(self, message: Any, partition: TopicPartition, unfinished: Unfinished | None) -> None:
        """Leave the message unfinished: seek its partition back to it, and pause the partition for
        a backoff, so the consumer goes on polling (and stays in its group) and it comes again.
        Without `unfinished` (stopping, or the partition being positioned) nothing resumes it here:
        the next owner reads it, or the positioning resumes the partition."""
        consumer = cast("AIOKafkaConsumer", message.consumer)
        try:
            await message.nack()  # FastStream's own: seeks the partition back to this record
            consumer.pause(partition)
        except IllegalStateError:  # the partition went to another member meanwhile: it reads the message
            return
        if unfinished is None or self._stopping:
            return
        settings = self.settings
        delay = min(settings.consumer_backoff_s * 2 ** (unfinished.attempts - 1), settings.consumer_backoff_max_s)
        previous = self._resumes.pop(partition, None)
        if previous is not None:
            previous.cancel()
        self._resumes[partition] = asyncio.get_running_loop().call_later(delay, self._resume, consumer, partition)

    def _resume(self, consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
        self._resumes.pop(partition, None)
        if self._stopping or partition in self._positioning:
            return
        with contextlib.suppress(KafkaError):
            if partition in consumer.assignment():
                consumer.resume(partition)

    # --- rebalances ------------------------------------------------------------------------

    def _forget(self, revoked: Collection[TopicPartition]) -> None:
        # What is unfinished is kept: a partition that comes back brings the same message, whose
        # retries go on counting (an entry is replaced once its partition brings another offset).
        for partition in revoked:
            timer = self._resumes.pop(partition, None)
            if timer is not None:
                timer.cancel()

    async def _start_reading(self, assigned: Collection[TopicPartition]) -> None:
        """Find where each newly assigned partition starts before anything of it is handled."""
        self.assignments += 1
        consumer: AIOKafkaConsumer | None = getattr(self.subscriber, "consumer", None)
        if consumer is None or not assigned:
            return
        mine = set(assigned)
        consumer.pause(*mine)
        self._positioning |= mine
        try:
            # No heartbeats go out while this runs (aiokafka calls it mid-join): keep it short.
            async with asyncio.timeout(self.settings.consumer_session_timeout_ms / 3000):
                await self._skip_history(consumer, mine)
        except Exception as error:
            # Safe for a group that has committed (it reads on from there); a new one reads from the beginning.
            log.error("could not tell whether the consumer group is new; reading from its commits", error=repr(error))
        finally:
            self._positioning -= mine
            with contextlib.suppress(KafkaError):
                consumer.resume(*(p for p in mine if p in consumer.assignment()))

    async def _skip_history(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """A group that has never committed on a topic starts at the topic's records younger than
        the horizon, not at its beginning (`earliest` would act on up to a retention's history),
        and commits that start at once, so that a restart reads on from there. A group that has
        committed on a topic reads what it has not committed from the beginning: a partition that
        had no traffic before an outage loses nothing."""
        for topic in sorted({p.topic for p in assigned}):
            mine = sorted(p for p in assigned if p.topic == topic)
            known = {TopicPartition(topic, n) for n in consumer.partitions_for_topic(topic) or ()}
            committed = await asyncio.gather(*(consumer.committed(p) for p in sorted(known | set(mine))))
            if any(offset is not None for offset in committed):
                continue
            since = max(int((time.time() - self.settings.consumer_new_group_horizon_s) * 1000), 0)
            # The ends first: a record appended meanwhile is at or past them, and is not skipped.
            ends = await consumer.end_offsets(mine)
            found = await consumer.offsets_for_times(dict.fromkeys(mine, since))
            starts = {p: min(found[p].offset, ends[p]) if found.get(p) is not None else ends[p] for p in mine}
            for partition, offset in starts.items():
                consumer.seek(partition, offset)
            await consumer.commit(starts)
            log.info(
                "new consumer group: reading from the horizon",
                topic=topic,
                horizon_s=self.settings.consumer_new_group_horizon_s,
                starts={p.partition: o for p, o in starts.items()},
            )


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.consumer._forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.consumer._start_reading(assigned)
