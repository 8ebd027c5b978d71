"""Where a consumer group starts: a new group acts on no history older than its horizon (an hour), yet
misses nothing published shortly before it first joined; a group that has read a topic before reads
everything it has not committed, however old (docs/kit.md, "Consumers")."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from goldenkey.kit import Repository
from tests.integration.test_consumer import committed_offset, paint_request
from tests.support import RunningApp, wait_for
from tests.widgets import Widget, build, new_contract, settings_for

pytestmark = pytest.mark.integration
TWO_HOURS_AGO_MS = int((time.time() - 2 * 3600) * 1000)


async def produce_at(bootstrap: str, topic: str, value: bytes, key: bytes, timestamp_ms: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


async def test_a_new_group_skips_history_past_its_horizon_and_an_old_group_reads_all_it_missed(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    assert settings.consumer_new_group_horizon_s == 3600
    bootstrap, topic = infra.kafka_bootstrap, contract.requests_topic
    kit, app = build(settings, contract)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    for widget_id in ("w1", "w2", "w3"):
        await widgets.add(Widget(id=widget_id, colour="red"))
    # Published before the group ever joined: one two hours ago, one just now (a first deploy's race).
    await produce_at(bootstrap, topic, paint_request(contract, "w1", "blue", "history"), b"k", TWO_HOURS_AGO_MS)
    await produce_at(bootstrap, topic, paint_request(contract, "w2", "blue", "recent"), b"k")
    async with RunningApp(app):
        await wait_for(lambda: _coats(widgets, "w2"), 30)
        await wait_for(lambda: _committed(bootstrap, settings.service, topic, 2))
        handled, history = kit.consumer.handled_total, await _coats(widgets, "w1")
    assert handled == 1, "the recent event only"
    assert history == 0, "two hours of history are not acted on"

    # While the service is away, an event that is already two hours old arrives (a long outage, a
    # slow producer): a group that has read the topic before misses nothing, however old.
    await produce_at(bootstrap, topic, paint_request(contract, "w3", "green", "missed"), b"other", TWO_HOURS_AGO_MS)
    restarted, app = build(settings, contract)
    widgets = Repository(restarted.db["widgets"], Widget)
    async with RunningApp(app):
        await wait_for(lambda: _coats(widgets, "w3"), 30)
        handled, history = restarted.consumer.handled_total, await _coats(widgets, "w1")
    assert handled == 1
    assert history == 0


async def _committed(bootstrap: str, group: str, topic: str, offsets: int) -> bool:
    return await committed_offset(bootstrap, group, topic) == offsets


async def _coats(widgets: Repository[Widget], widget_id: str) -> int:
    return (await widgets.require(widget_id)).coats
