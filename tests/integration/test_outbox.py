"""The outbox and its relay, over real Kafka and the MongoDB-protocol server (DESIGN §7.1, §7.7)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from goldenkey.kit import Repository, ServiceKit
from goldenkey.kit.kafka import BrokerPublisher, ensure_topics, make_broker
from goldenkey.kit.outbox import OutboxRelay
from tests.support import TopicReader, wait_for
from tests.widgets import Widget, new_contract, settings_for

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


class CrashAfterPublish:
    """A publisher that publishes, then dies before the relay can remove what it published."""

    def __init__(self, inner: BrokerPublisher) -> None:
        self.inner = inner

    def connected(self) -> bool:
        return True

    async def publish_batch(self, records: list[Any]) -> None:
        await self.inner.publish_batch(records)
        raise asyncio.CancelledError("process killed")


async def started_publisher(settings: Any, topics: list[str]) -> BrokerPublisher:
    await ensure_topics(settings, topics)
    broker = make_broker(settings)
    await broker.start()
    publisher = BrokerPublisher(broker)
    publisher.running = True
    return publisher


async def test_events_saved_before_a_crash_are_published_once_on_restart(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit = ServiceKit(settings)
    # The "crashed" process: state and events written in one document, never published.
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget, relay=None)
    for n in range(20):
        widget = Widget(id=f"w{n}", colour="red")
        widget.record(contract.WidgetMade(widget_id=widget.id, colour="red"), at=NOW)
        await widgets.add(widget)
        widget.colour = "blue"
        widget.record(contract.WidgetPainted(widget_id=widget.id, colour="blue"), at=NOW)
        await widgets.save(widget)
    assert await kit.db["widgets"].count_documents({"outbox_n": 2}) == 20

    # The restarted process: its relay finds and publishes them.
    publisher = await started_publisher(settings, [contract.widgets_topic])
    relay = OutboxRelay(kit.db, publisher, ["widgets"])
    async with TopicReader(settings.kafka_bootstrap, contract.widgets_topic) as reader:
        assert await relay.drain() == 40
        events = await reader.wait_events(40)
        await asyncio.sleep(0.5)  # nothing more may arrive
        ids = [e["id"] for e in reader.events()]
    assert len(ids) == len(set(ids)) == 40
    assert await relay.pending() == 0
    assert await kit.db["widgets"].count_documents({"outbox_n": {"$gt": 0}}) == 0
    first = next(e for e in events if e["subject"] == "w3")
    assert first["type"] == contract.WidgetMade.__event_type__  # type: ignore[attr-defined]
    assert first["source"] == "goldenkey/kittest"
    assert [e["sequence"] for e in events if e["subject"] == "w3"] == [1, 2]
    await publisher.broker.stop()


async def test_a_relay_killed_after_publishing_republishes_the_same_ids_and_loses_none(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit = ServiceKit(settings)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    for n in range(5):
        widget = Widget(id=f"w{n}", colour="green")
        widget.record(contract.WidgetMade(widget_id=widget.id, colour="green"), at=NOW)
        await widgets.add(widget)
    publisher = await started_publisher(settings, [contract.widgets_topic])
    async with TopicReader(settings.kafka_bootstrap, contract.widgets_topic) as reader:
        dying = OutboxRelay(kit.db, CrashAfterPublish(publisher), ["widgets"], lease_s=0.2)
        with pytest.raises(asyncio.CancelledError):
            await dying.drain()
        await reader.wait_events(1)
        await asyncio.sleep(0.3)  # the dead relay's lease runs out
        survivor = OutboxRelay(kit.db, publisher, ["widgets"])
        assert await survivor.drain() == 5
        await reader.wait_events(6)
        await asyncio.sleep(0.3)
        ids = [e["id"] for e in reader.events()]
    assert len(set(ids)) == 5, "every event is on the topic"
    assert len(ids) == 6, "the one published before the crash came again, with the same id"
    await publisher.broker.stop()


async def test_two_relays_at_once_keep_each_subjects_events_in_order(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit = ServiceKit(settings)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    publishers = [await started_publisher(settings, [contract.widgets_topic]) for _ in range(2)]
    relays = [OutboxRelay(kit.db, p, ["widgets"], interval_s=0.01, workers=2) for p in publishers]
    subjects, coats = 12, 15
    async with TopicReader(settings.kafka_bootstrap, contract.widgets_topic) as reader:
        for relay in relays:
            relay.start()

        async def keep_painting(n: int) -> None:
            widget = Widget(id=f"w{n}", colour="red")
            widget.record(contract.WidgetMade(widget_id=widget.id, colour="red"), at=NOW)
            await widgets.add(widget)
            for coat in range(coats):
                colour = "blue" if coat % 2 == 0 else "red"
                widget.colour = colour
                widget.record(contract.WidgetPainted(widget_id=widget.id, colour=colour), at=NOW)
                await widgets.save(widget)

        await asyncio.gather(*(keep_painting(n) for n in range(subjects)))
        total = subjects * (coats + 1)
        await wait_for(lambda: len({e["id"] for e in reader.events()}) == total, 60)
        for relay in relays:
            await relay.stop()
        sequences: dict[str, list[int]] = defaultdict(list)
        for e in reader.events():
            sequences[e["subject"]].append(e["sequence"])
    assert len(sequences) == subjects
    for subject, seen in sequences.items():
        assert seen == sorted(seen), f"{subject} published out of order: {seen}"
        assert set(seen) == set(range(1, coats + 2))
    for publisher in publishers:
        await publisher.broker.stop()


async def test_a_burst_of_saves_on_one_document_goes_out_in_order_without_waiting_for_a_sweep(
    infra: Any,
) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit = ServiceKit(settings)
    publisher = await started_publisher(settings, [contract.widgets_topic])
    relay = OutboxRelay(kit.db, publisher, ["widgets"], interval_s=600)  # no sweep will help
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget, relay=relay)
    async with TopicReader(settings.kafka_bootstrap, contract.widgets_topic) as reader:
        relay.start()
        await asyncio.sleep(0.2)  # the start-up sweep is done
        widget = Widget(id="w1", colour="red")
        widget.record(contract.WidgetMade(widget_id="w1", colour="red"), at=NOW)
        await widgets.add(widget)
        for coat in range(20):  # each save nudges while the previous nudge may hold the lease
            widget.colour = "blue" if coat % 2 == 0 else "red"
            widget.record(contract.WidgetPainted(widget_id="w1", colour=widget.colour), at=NOW)
            await widgets.save(widget)
        await reader.wait_events(21, timeout=15)
        await relay.stop()
    assert [e["sequence"] for e in reader.events()] == list(range(1, 22))
    await publisher.broker.stop()


async def test_a_change_that_updates_its_own_aggregate_fails_at_once_instead_of_waiting_forever(infra: Any) -> None:
    kit = ServiceKit(settings_for(infra))
    widgets = Repository(kit.db["widgets"], Widget)
    await widgets.add(Widget(id="w1", colour="red"))

    async def recoat(widget: Widget) -> None:
        await widgets.update("w1", lambda w: setattr(w, "coats", 5))

    with pytest.raises(RuntimeError, match="must not update its own aggregate"):
        await asyncio.wait_for(widgets.update("w1", recoat), 5)
    await widgets.update("w1", lambda w: setattr(w, "colour", "blue"))  # nothing left held
    assert (await widgets.require("w1")).colour == "blue"


class SlowPublisher:
    """Publishes only when the test lets it: a relay stalled in the middle of a publish."""

    def __init__(self, inner: BrokerPublisher) -> None:
        self.inner = inner
        self.started = asyncio.Event()
        self.go_on = asyncio.Event()

    def connected(self) -> bool:
        return True

    async def publish_batch(self, records: list[Any]) -> None:
        self.started.set()
        await self.go_on.wait()
        await self.inner.publish_batch(records)


async def test_a_relay_whose_lease_ran_out_mid_publish_removes_nothing_and_the_count_stays_right(
    infra: Any,
) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit = ServiceKit(settings)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    widget = Widget(id="w1", colour="red")
    widget.record(contract.WidgetMade(widget_id="w1", colour="red"), at=NOW)
    await widgets.add(widget)
    publisher = await started_publisher(settings, [contract.widgets_topic])
    stalled = SlowPublisher(publisher)
    slow = OutboxRelay(kit.db, stalled, ["widgets"], lease_s=0.2)
    quick = OutboxRelay(kit.db, publisher, ["widgets"])
    async with TopicReader(settings.kafka_bootstrap, contract.widgets_topic) as reader:
        slow_drain = asyncio.create_task(slow.drain())
        await stalled.started.wait()

        async def taken_over() -> int:  # the slow relay's lease runs out; the quick one publishes
            return await quick.drain()

        assert await wait_for(taken_over, 10) == 1
        stalled.go_on.set()
        assert await slow_drain == 0, "the stalled relay published, but removed nothing: it had lost its lease"
        document = await kit.db["widgets"].find_one({"_id": "w1"})
        assert document is not None
        assert (document["outbox_n"], document["outbox"]) == (0, [])

        widget.colour = "blue"
        widget.record(contract.WidgetPainted(widget_id="w1", colour="blue"), at=NOW)
        await widgets.save(widget)
        assert await quick.drain() == 1, "a later event is still found and published"
        assert await quick.pending() == 0
        await reader.wait_events(3)
    assert sorted(e["sequence"] for e in reader.events()) == [1, 1, 2], "at-least-once: the stalled publish repeats"
    await publisher.broker.stop()


class RefusesOne:
    """A publisher that refuses one document's events for good (too large for the topic, say)."""

    def __init__(self, inner: BrokerPublisher, refused_key: str) -> None:
        self.inner = inner
        self.refused_key = refused_key.encode()

    def connected(self) -> bool:
        return True

    async def publish_batch(self, records: list[Any]) -> None:
        if any(key == self.refused_key for _, key, _, _ in records):
            raise MessageSizeTooLargeError()
        await self.inner.publish_batch(records)


async def test_a_document_whose_events_are_refused_does_not_hold_up_the_others(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra)
    kit = ServiceKit(settings)
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget, relay=None)
    for n in range(6):
        widget = Widget(id=f"w{n}", colour="red")
        widget.record(contract.WidgetMade(widget_id=widget.id, colour="red"), at=NOW)
        await widgets.add(widget)
    publisher = await started_publisher(settings, [contract.widgets_topic])
    relay = OutboxRelay(kit.db, RefusesOne(publisher, "w0"), ["widgets"])
    async with TopicReader(settings.kafka_bootstrap, contract.widgets_topic) as reader:
        assert await relay.drain() == 5
        events = await reader.wait_events(5)
    assert sorted(e["subject"] for e in events) == ["w1", "w2", "w3", "w4", "w5"]
    assert await relay.pending() == 1, "the refused one stays in its outbox, for a later sweep"
