"""Every message a consumer cannot act on ends in `dlq.<service>` with its headers, counted, while the
good messages around it are handled: nothing is skipped silently, nothing stops the line.

Poison and good messages share one key, so they share a partition and their order is Kafka's.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from goldenkey.contracts import CloudEvent, PoisonMessage, dlq_topic
from goldenkey.kit import Repository
from goldenkey.kit.aggregate import ConcurrencyError
from tests.integration.test_consumer import paint_request, seed_widget
from tests.support import RunningApp, TopicReader, wait_for
from tests.widgets import Contract, Widget, build, new_contract, settings_for

pytestmark = pytest.mark.integration

Headers = list[tuple[str, bytes]]


async def produce_all(bootstrap: str, topic: str, messages: list[tuple[bytes, Headers]], key: bytes) -> None:
    """Send `messages` in order, on one key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value, headers in messages:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def event(contract: Contract, event_id: str, colour: str = "blue", **changes: Any) -> bytes:
    document = json.loads(paint_request(contract, "w1", colour, event_id=event_id))
    return json.dumps({**document, **changes}).encode()


def reading_all_of(kit: Any, topic: str) -> bool:
    """Whether the consumer holds every partition of `topic`. Produced to earlier, a message could
    be handled, then handled again after the rebalance that brings a late partition."""
    consumer = getattr(kit.consumer.subscriber, "consumer", None)
    held = [tp for tp in consumer.assignment() if tp.topic == topic] if consumer is not None else []
    return len(held) == kit.settings.kafka_topic_partitions


async def test_poison_of_every_kind_is_dead_lettered_with_its_headers_between_good_messages_that_are_handled(
    infra: Any,
) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit, app = build(settings, contract)
    widgets = await seed_widget(kit, "w1")
    schema_violation = json.loads(event(contract, "bad-colour"))
    schema_violation["data"]["colour"] = "purple"
    oversize = json.loads(event(contract, "huge"))
    oversize["data"]["padding"] = "x" * 300_000  # valid but for its size: readers ignore unknown fields
    poison = {
        "malformed": b'{"specversion": "1.0", "type": ',
        "too_deep": b"[" * 100_000 + b"]" * 100_000,
        "oversize": json.dumps(oversize).encode(),
        "unknown_type": event(contract, "bad-type", type="widget.exploded"),
        "forged_source": event(contract, "forged", source="goldenkey/parking"),
        "schema_violation": json.dumps(schema_violation).encode(),
    }
    colours = ["blue", "green"]
    messages: list[tuple[bytes, Headers]] = [(event(contract, "good-0", "green"), [])]
    for n, value in enumerate(poison.values(), start=1):
        messages.append((value, [("content-type", b"application/cloudevents+json")]))
        # One good message carries a header that is not UTF-8: it is handled like any other.
        binary: Headers = [("trace", b"\xff\xfe\x00")] if n == 3 else []
        messages.append((event(contract, f"good-{n}", colours[n % 2]), binary))
    dlq = dlq_topic(settings.service)
    async with TopicReader(infra.kafka_bootstrap, dlq) as dead, RunningApp(app):
        await wait_for(lambda: reading_all_of(kit, contract.requests_topic), 30)  # exact counts below
        await produce_all(infra.kafka_bootstrap, contract.requests_topic, messages, b"w1")
        await wait_for(lambda: kit.consumer.handled_total == len(poison) + 1, 30)
        await wait_for(lambda: len(dead.records) >= len(poison))
        widget = await widgets.require("w1")
        metrics = (await kit.metrics.render()).decode()
    assert (widget.coats, widget.colour) == (len(poison) + 1, colours[len(poison) % 2]), "every good one, in order"
    assert [headers_of(r)["x-error-kind"] for r in dead.records] == list(poison)
    assert [r.value for r in dead.records] == list(poison.values()), "the original bytes"
    for record in dead.records:
        headers = headers_of(record)
        assert record.key == b"w1"
        assert headers["x-original-topic"] == contract.requests_topic
        assert headers["x-original-partition"].isdigit()
        assert headers["x-original-offset"].isdigit()
        assert headers["x-service"] == settings.service
        assert headers["x-error"]
        assert headers["x-failed-at"]
        assert headers["content-type"] == "application/cloudevents+json"
    offsets = [int(headers_of(r)["x-original-offset"]) for r in dead.records]
    assert offsets == [1, 3, 5, 7, 9, 11]
    assert f'goldenkey_dlq_messages_total{{service="{settings.service}"}} {len(poison)}.0' in metrics


async def test_a_failing_handler_is_retried_a_bounded_number_of_times_then_dead_lettered(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra, consumer_retries=1, consumer_contention_retries=3)
    calls: Counter[str] = Counter()

    async def hook(envelope: CloudEvent, data: Any) -> None:
        calls[envelope.id] += 1
        match envelope.id:
            case "boom":
                raise RuntimeError("the handler has a bug")
            case "race":
                raise ConcurrencyError("someone else saved it, every time")
            case "slow":
                raise TimeoutError("the handler's own timeout")
            case "refused":
                raise PoisonMessage("the handler says no retry can fix this")
            case "command":  # a real, non-transient error from the database server
                await kit.db.command({"goldenkeyNoSuchCommand": 1})
            case "flaky" if calls["flaky"] == 1:
                raise RuntimeError("once only")

    kit, app = build(settings, contract, before_paint=hook)
    widgets: Repository[Widget] = await seed_widget(kit, "w1")
    ids = ["boom", "race", "slow", "refused", "command", "flaky", "last"]
    messages: list[tuple[bytes, Headers]] = [
        (event(contract, event_id, ["blue", "green"][n % 2]), []) for n, event_id in enumerate(ids)
    ]
    async with TopicReader(infra.kafka_bootstrap, dlq_topic(settings.service)) as dead, RunningApp(app):
        await wait_for(lambda: reading_all_of(kit, contract.requests_topic), 30)  # exact counts below
        await produce_all(infra.kafka_bootstrap, contract.requests_topic, messages, b"w1")
        await wait_for(lambda: calls["last"] == 1, 30)
        await wait_for(lambda: len(dead.records) >= 5)
        widget = await widgets.require("w1")
    kinds = {json.loads(r.value)["id"]: headers_of(r)["x-error-kind"] for r in dead.records}
    assert kinds == {
        "boom": "handler_error",
        "race": "handler_error",
        "slow": "handler_error",
        "refused": "poison",
        "command": "handler_error",
    }
    expected = {"boom": 2, "race": 4, "slow": 4, "refused": 1, "command": 2, "flaky": 2, "last": 1}
    assert dict(calls) == expected, f"after {kit.consumer.assignments} assignment(s)"
    errors = {json.loads(r.value)["id"]: headers_of(r)["x-error"] for r in dead.records}
    assert errors["command"].startswith("OperationFailure: ")
    assert errors["race"].startswith("ConcurrencyError: ")
    assert widget.coats == 2, "flaky and last"


async def test_an_inbox_write_the_database_refuses_for_good_ends_in_the_dead_letter_topic(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra, consumer_retries=1)
    kit, app = build(settings, contract)
    widgets = await seed_widget(kit, "w1")
    # A unique index the inbox was never meant to have: the second event's row is refused, every time.
    await kit.db["inbox"].create_index("type", unique=True)
    messages: list[tuple[bytes, Headers]] = [(event(contract, "first"), []), (event(contract, "second", "green"), [])]
    async with TopicReader(infra.kafka_bootstrap, dlq_topic(settings.service)) as dead, RunningApp(app):
        await wait_for(lambda: reading_all_of(kit, contract.requests_topic), 30)  # exact counts below
        await produce_all(infra.kafka_bootstrap, contract.requests_topic, messages, b"w1")
        await wait_for(lambda: len(dead.records) >= 1, 30)
        widget = await widgets.require("w1")
    (record,) = dead.records
    headers = headers_of(record)
    assert json.loads(record.value)["id"] == "second"
    assert headers["x-error-kind"] == "handler_error"
    assert headers["x-error"].startswith("DuplicateKeyError: ")
    assert (widget.coats, widget.colour) == (1, "blue"), "the second was not applied, nor skipped unseen"


async def test_a_dead_letter_the_dead_letter_topic_refuses_is_kept_without_its_body(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra, max_event_bytes=4096)
    dlq = dlq_topic(settings.service)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:  # a dead-letter topic that takes smaller records than the topic the service reads
        await admin.create_topics([NewTopic(dlq, 1, 1, topic_configs={"max.message.bytes": "2048"})])
    finally:
        await admin.close()
    kit, app = build(settings, contract)
    widgets = await seed_widget(kit, "w1")
    oversize = json.loads(event(contract, "huge"))
    oversize["data"]["padding"] = "x" * 8000
    messages: list[tuple[bytes, Headers]] = [(json.dumps(oversize).encode(), []), (event(contract, "after"), [])]
    async with (
        TopicReader(infra.kafka_bootstrap, dlq) as dead,
        TopicReader(infra.kafka_bootstrap, contract.widgets_topic) as painted,
        RunningApp(app),
    ):
        await wait_for(lambda: reading_all_of(kit, contract.requests_topic), 30)  # exact counts below
        await produce_all(infra.kafka_bootstrap, contract.requests_topic, messages, b"w1")
        await wait_for(lambda: len(dead.records) >= 1, 30)
        events = await painted.wait_events(1)  # the producer still publishes after the refusal
        widget = await widgets.require("w1")
        metrics = (await kit.metrics.render()).decode()
    (record,) = dead.records
    headers = headers_of(record)
    assert record.value == b""
    assert headers["x-error-kind"] == "oversize"
    assert headers["x-error"].startswith("body of ")
    assert "MessageSizeTooLargeError" in headers["x-error"]
    assert headers["x-original-offset"] == "0"
    assert widget.coats == 1
    assert events[0]["causationid"] == "after"
    assert f'goldenkey_dlq_refused_total{{kept="headers",service="{settings.service}"}} 1.0' in metrics
    assert f'goldenkey_dlq_messages_total{{service="{settings.service}"}} 1.0' in metrics
