"""A consumer that meets the database down for longer than its max poll interval stays in its group,
commits nothing past the unfinished message, and handles it once when the database is back.

The database is a durable one of the test's own (mongo-java-server on its H2 file backend, as in
test_database_restart.py), so stopping it leaves the session's shared stack alone; Kafka is the
session's. The max poll interval is configured short (8 s), so the outage outlasts it.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.native.devstack import Part, Stack
from goldenkey.kit import Repository
from tests.integration.test_consumer import paint_request
from tests.support import RunningApp, TopicReader, wait_for
from tests.widgets import Widget, build, new_contract, settings_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to run the native database"),
]

MAX_POLL_INTERVAL_MS = 8_000


async def produce_one(bootstrap: str, topic: str, value: bytes, key: bytes) -> TopicPartition:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    return TopicPartition(sent.topic, sent.partition)


async def group(bootstrap: str, group_id: str) -> tuple[str, list[str], dict[TopicPartition, int]]:
    """The group's state, its members' ids and its committed offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_consumer_groups([group_id])
        (found,) = described.to_object()["groups"]
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    members = [member["member_id"] for member in found["members"]]
    return found["state"], members, {tp: meta.offset for tp, meta in offsets.items()}


async def test_a_database_outage_longer_than_the_max_poll_interval_leaves_the_consumer_in_its_group(
    infra: Any, durable: tuple[Stack, Part]
) -> None:
    stack, db_server = durable
    contract = new_contract()
    settings = settings_for(
        infra,
        mongodb_url=stack.mongodb_url,
        consumer_max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        consumer_session_timeout_ms=6_000,
        consumer_heartbeat_interval_ms=1_000,
    )
    kit, app = build(settings, contract)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    await widgets.add(Widget(id="w1", colour="red"))
    bootstrap = infra.kafka_bootstrap
    async with TopicReader(bootstrap, contract.widgets_topic) as reader, RunningApp(app):
        await wait_for(lambda: kit.consumer.assignments == 1 and kit.consumer.subscriber.consumer.assignment(), 30)
        state, before, _ = await wait_for(lambda: _stable(bootstrap, settings.service), 30)

        db_server.stop()
        down_since = time.monotonic()
        partition = await produce_one(
            bootstrap, contract.requests_topic, paint_request(contract, "w1", "blue", event_id="during"), b"w1"
        )
        waits = {"service": settings.service, "reason": "infrastructure"}

        def outlasted_the_max_poll_interval() -> bool:
            waited = kit.metrics.registry.get_sample_value("goldenkey_consumer_redeliveries_total", waits) or 0
            return time.monotonic() - down_since > 1.5 * MAX_POLL_INTERVAL_MS / 1000 and waited >= 3

        await wait_for(outlasted_the_max_poll_interval, 60, interval=0.5)
        _, members, committed = await group(bootstrap, settings.service)
        assert committed.get(partition, 0) == 0, "nothing committed past the unfinished message (offset 0)"
        assert members == before, "the consumer never left its group"

        db_server.start()
        await wait_for(lambda: _coats(widgets, "w1", 1), 60)
        await produce_one(
            bootstrap, contract.requests_topic, paint_request(contract, "w1", "green", event_id="after"), b"w1"
        )
        await wait_for(lambda: _coats(widgets, "w1", 2), 30)
        painted = await reader.wait_events(2)
        await wait_for(lambda: _committed(bootstrap, settings.service, partition, 2), 30)
        state, after, _ = await group(bootstrap, settings.service)
    assert (state, after) == ("Stable", before), "still the same member of the group, never rejoined"
    assert kit.consumer.assignments == 1, "no rebalance"
    assert kit.consumer.handled_total == 2, "each message handled once"
    assert [e["data"]["colour"] for e in painted] == ["blue", "green"]
    assert [e["causationid"] for e in painted] == ["during", "after"]


async def _stable(bootstrap: str, group_id: str) -> tuple[str, list[str], dict[TopicPartition, int]] | None:
    found = await group(bootstrap, group_id)
    return found if found[0] == "Stable" and len(found[1]) == 1 else None


async def _coats(widgets: Repository[Widget], widget_id: str, coats: int) -> bool:
    try:
        widget = await widgets.require(widget_id)
    except Exception:  # the database is still coming back
        return False
    assert widget.coats <= coats, f"{widget.coats} coats: a message was applied twice"
    return widget.coats == coats


async def _committed(bootstrap: str, group_id: str, partition: TopicPartition, offset: int) -> bool:
    _, _, committed = await group(bootstrap, group_id)
    return committed.get(partition) == offset
