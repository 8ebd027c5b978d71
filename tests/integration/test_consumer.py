"""Consuming events over real Kafka and the MongoDB-protocol server: idempotent, committed after success, poison to
the dead-letter topic (DESIGN §7.2-7.4)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.errors import AutoReconnect

from goldenkey.contracts import CloudEvent, dlq_topic
from goldenkey.kit import Repository
from goldenkey.kit.consumer import INBOX
from tests.support import RunningApp, TopicReader, produce, wait_for
from tests.widgets import Contract, Widget, build, new_contract, settings_for

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def paint_request(contract: Contract, widget_id: str, colour: str, event_id: str = "req-1") -> bytes:
    return CloudEvent(
        id=event_id,
        type=contract.PaintRequested.__event_type__,  # type: ignore[attr-defined]
        source="goldenkey/kittest",
        time=NOW,
        subject=widget_id,
        data={"widget_id": widget_id, "colour": colour},
        correlationid="visit-7",
    ).to_bytes()


async def seed_widget(kit: Any, widget_id: str) -> Repository[Widget]:
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    await widgets.add(Widget(id=widget_id, colour="red"))
    return widgets


async def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    """The sum of the group's committed offsets on `topic` (0 when it committed nothing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def test_a_redelivered_event_changes_nothing_and_emits_nothing_new(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit, app = build(settings, contract)
    widgets = await seed_widget(kit, "w1")
    async with TopicReader(infra.kafka_bootstrap, contract.widgets_topic) as reader, RunningApp(app):
        await produce(infra.kafka_bootstrap, contract.requests_topic, paint_request(contract, "w1", "blue"), b"w1")
        first = await reader.wait_events(1)
        # The same event again, as a redelivery after a lost commit would bring it, twice: once
        # caught by the inbox, once with the inbox forgotten so the aggregate itself must refuse it.
        await produce(infra.kafka_bootstrap, contract.requests_topic, paint_request(contract, "w1", "blue"), b"w1")
        await wait_for(lambda: kit.consumer.handled_total + 0 >= 1)
        await kit.db[INBOX].delete_many({})
        await produce(infra.kafka_bootstrap, contract.requests_topic, paint_request(contract, "w1", "blue"), b"w1")
        await wait_for(lambda: kit.db[INBOX].count_documents({"_id": "req-1", "state": "done"}))
        await asyncio.sleep(0.5)
        widget = await widgets.require("w1")
        events = reader.events()
    assert widget.coats == 1, "the event was applied once"
    assert len(events) == 1, f"one downstream event, not {len(events)}"
    assert events[0]["causationid"] == "req-1"
    assert events[0]["correlationid"] == "visit-7"
    assert events == first


async def test_a_failing_handler_commits_nothing_and_the_event_is_handled_after_a_restart(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)

    async def database_down(envelope: CloudEvent, data: Any) -> None:
        raise AutoReconnect("connection refused")

    kit, app = build(settings, contract, before_paint=database_down)
    widgets = await seed_widget(kit, "w1")
    async with RunningApp(app):
        await produce(infra.kafka_bootstrap, contract.requests_topic, paint_request(contract, "w1", "green"), b"w1")
        await wait_for(lambda: kit.consumer.subscriber is not None and kit.kafka_ready.is_set())
        await asyncio.sleep(1.5)  # it keeps failing, backing off
    assert await committed_offset(infra.kafka_bootstrap, settings.service, contract.requests_topic) == 0

    restarted, app = build(settings, contract)  # same service, same consumer group
    widgets = Repository(restarted.db["widgets"], Widget)
    assert (await widgets.require("w1")).coats == 0
    async with TopicReader(infra.kafka_bootstrap, contract.widgets_topic) as reader, RunningApp(app):
        events = await reader.wait_events(1)
        await wait_for(lambda: committed_offset(infra.kafka_bootstrap, settings.service, contract.requests_topic))
        assert (await widgets.require("w1")).coats == 1
    assert events[0]["data"] == {"widget_id": "w1", "colour": "green"}


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_next_good_one_is_handled(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit, app = build(settings, contract)
    widgets = await seed_widget(kit, "w1")
    good = paint_request(contract, "w1", "blue", event_id="good-1")
    schema_violation = paint_request(contract, "w1", "purple", event_id="bad-colour")
    unknown = json.loads(paint_request(contract, "w1", "blue", event_id="bad-type"))
    unknown["type"] = "widget.exploded"
    poison = [b"{not json", schema_violation, json.dumps(unknown).encode()]
    dlq = dlq_topic(settings.service)
    async with TopicReader(infra.kafka_bootstrap, dlq) as dead, RunningApp(app):
        for message in poison:
            await produce(infra.kafka_bootstrap, contract.requests_topic, message, b"w1")
        await produce(infra.kafka_bootstrap, contract.requests_topic, good, b"w1")
        await wait_for(lambda: len(dead.records) >= 3)
        await wait_for(lambda: kit.consumer.handled_total == 1)
        assert (await widgets.require("w1")).colour == "blue"
        metrics = await kit.metrics.render()
    assert [r.value for r in dead.records] == poison
    kinds = []
    for record in dead.records:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["x-original-topic"] == contract.requests_topic
        assert headers["x-original-partition"].isdigit()
        assert headers["x-original-offset"].isdigit()
        assert headers["x-error"]
        assert record.key == b"w1"
        kinds.append(headers["x-error-kind"])
    assert kinds == ["malformed", "schema_violation", "unknown_type"]
    assert f'goldenkey_dlq_messages_total{{service="{settings.service}"}} 3.0' in metrics.decode()
    assert "faststream_received_messages_total" in metrics.decode(), "FastStream's own middleware metrics"
    assert f'goldenkey_consumer_lag{{topic="{contract.requests_topic}"}} 0.0' in metrics.decode()
