"""What the consumer makes of a failure (kit.consumer): poison is dead-lettered at once, the
infrastructure's absence is waited out, contention and errors are retried a bounded number of times;
and nothing holds the consumer past its budget, so it never drops out of its group."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import aiokafka.errors as kafka_errors
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
)

from goldenkey.contracts import MalformedEvent, PoisonMessage, SchemaViolation
from goldenkey.contracts.registry import ForgedSource, OversizeEvent, TooDeep
from goldenkey.kit import KitSettings
from goldenkey.kit.aggregate import ConcurrencyError
from goldenkey.kit.consumer import AttemptCutOff, EventConsumer, Failure, failure_of
from goldenkey.kit.kafka import make_broker
from goldenkey.kit.metrics import Metrics


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (MalformedEvent("not JSON"), Failure.POISON),
        (TooDeep("[[[["), Failure.POISON),
        (OversizeEvent("too big"), Failure.POISON),
        (ForgedSource("not from there"), Failure.POISON),
        (SchemaViolation("purple"), Failure.POISON),
        (PoisonMessage("a handler says so"), Failure.POISON),
        (AutoReconnect("connection refused"), Failure.INFRASTRUCTURE),
        (ServerSelectionTimeoutError("no server"), Failure.INFRASTRUCTURE),
        (NetworkTimeout("timed out"), Failure.INFRASTRUCTURE),
        (ExecutionTimeout("maxTimeMS"), Failure.INFRASTRUCTURE),
        (kafka_errors.KafkaConnectionError(), Failure.INFRASTRUCTURE),
        (kafka_errors.KafkaTimeoutError(), Failure.INFRASTRUCTURE),
        (kafka_errors.RequestTimedOutError(), Failure.INFRASTRUCTURE),
        (kafka_errors.NotLeaderForPartitionError(), Failure.INFRASTRUCTURE),
        (kafka_errors.NodeNotReadyError(), Failure.INFRASTRUCTURE),
        (ConcurrencyError("lost the race"), Failure.CONTENTION),
        (TimeoutError(), Failure.CONTENTION),
        (AttemptCutOff("held the consumer too long"), Failure.CONTENTION),
        # Errors no retry fixes must not stop the line: bounded, then the dead-letter topic.
        (kafka_errors.MessageSizeTooLargeError(), Failure.ERROR),
        (kafka_errors.TopicAuthorizationFailedError(), Failure.ERROR),
        (kafka_errors.CommitFailedError(), Failure.ERROR),
        (OperationFailure("no such command", code=59), Failure.ERROR),
        (WriteError("document too large", code=10334), Failure.ERROR),
        (DuplicateKeyError("E11000"), Failure.ERROR),
        (ValueError("a bug"), Failure.ERROR),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_each_failure_means_what_it_says(error: BaseException, failure: Failure) -> None:
    assert failure_of(error) is failure


KAFKA_ERRORS = sorted(
    (cls for cls in vars(kafka_errors).values() if inspect.isclass(cls) and issubclass(cls, kafka_errors.KafkaError)),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("error", KAFKA_ERRORS, ids=lambda cls: cls.__name__)
def test_a_kafka_error_is_waited_out_only_when_aiokafka_calls_it_retriable_or_a_timeout(
    error: type[kafka_errors.KafkaError],
) -> None:
    not_now = error.retriable or issubclass(error, kafka_errors.KafkaTimeoutError | kafka_errors.KafkaUnavailableError)
    assert failure_of(error()) is (Failure.INFRASTRUCTURE if not_now else Failure.ERROR)


def consumer_for(**settings: Any) -> tuple[EventConsumer, Metrics]:
    kit_settings = KitSettings(service="unit", **settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient("mongodb://127.0.0.1:9/", connect=False)
    metrics = Metrics("unit")
    return EventConsumer(kit_settings, client["unit"], make_broker(kit_settings), metrics), metrics


def commit_failures(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("goldenkey_consumer_commit_failures_total", {"service": "unit"})


def test_an_attempt_holds_the_consumer_at_most_a_quarter_of_the_max_poll_interval() -> None:
    assert consumer_for()[0].attempt_s == 30
    assert consumer_for(consumer_max_poll_interval_ms=8_000)[0].attempt_s == 2
    assert consumer_for(consumer_attempt_timeout_s=1)[0].attempt_s == 1


class FakeConsumer:
    """Just enough of AIOKafkaConsumer to see what the consumer asks of it."""

    def __init__(self, commit: BaseException | None = None, hang: bool = False) -> None:
        self.error = commit
        self.hang = hang
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)
        if self.hang:
            await asyncio.Event().wait()  # aiokafka retries a retriable commit error for ever
        if self.error is not None:
            raise self.error


class FakeMessage:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.raw_message = ConsumerRecord("t", 1, 41, 0, 0, b"k", b"{}", None, 1, 2, [])
        self.committed: Any = None


@pytest.mark.parametrize(
    "error",
    [kafka_errors.CommitFailedError(), kafka_errors.IllegalStateError(), kafka_errors.KafkaConnectionError()],
    ids=lambda error: type(error).__name__,
)
async def test_a_commit_kafka_refuses_is_counted_and_not_retried(error: BaseException) -> None:
    consumer, metrics = consumer_for()
    fake = FakeConsumer(commit=error)
    message = FakeMessage(fake)
    await consumer._commit(message, TopicPartition("t", 1), 41)
    assert fake.commits == [{TopicPartition("t", 1): 42}], "its own offset, once"
    assert commit_failures(metrics) == 1
    assert message.committed is None


async def test_a_commit_that_never_answers_holds_the_consumer_no_longer_than_an_attempt() -> None:
    consumer, metrics = consumer_for(consumer_attempt_timeout_s=0.2)
    fake = FakeConsumer(hang=True)
    started = time.monotonic()
    await consumer._commit(FakeMessage(fake), TopicPartition("t", 1), 41)
    assert time.monotonic() - started < 5
    assert commit_failures(metrics) == 1
