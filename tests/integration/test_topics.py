"""The topics a service creates at start (`kit.kafka.ensure_topics`), against the test stack's one-broker Kafka:
the broker's own replication factor unless one is configured, a topic that exists already is fine, and any
other refusal is an error that names the topic and says what the broker said."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from goldenkey.kit.kafka import TopicsNotCreated, admin_kwargs, default_replication_factor, ensure_topics
from tests.support import unique
from tests.widgets import settings_for

pytestmark = pytest.mark.integration


async def described(bootstrap: str, *topics: str) -> dict[str, list[list[int]]]:
    """Each topic's partitions' replicas, by partition number."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return {t["topic"]: [p["replicas"] for p in sorted(t["partitions"], key=lambda p: p["partition"])] for t in found}


async def existing(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_topics_get_the_broker_s_replication_factor_and_creating_them_again_is_fine(infra: Any) -> None:
    settings = settings_for(infra, kafka_topic_partitions=2)
    assert settings.kafka_replication_factor is None
    topics = [unique("test.topics."), unique("test.topics.")]
    await ensure_topics(settings, topics)
    await ensure_topics(settings, topics)  # they exist: nothing to do
    # Two instances starting at once: one of them finds the topic created under it.
    late = unique("test.topics.")
    await asyncio.gather(*(ensure_topics(settings, [late]) for _ in range(3)))
    admin = AIOKafkaAdminClient(**admin_kwargs(settings))
    await admin.start()
    try:
        broker_default = await default_replication_factor(admin)
    finally:
        await admin.close()
    assert broker_default == 1, "the native stack's broker leaves default.replication.factor at Kafka's 1"
    assert await described(infra.kafka_bootstrap, *topics, late) == {t: [[1], [1]] for t in [*topics, late]}


async def test_asking_for_more_replicas_than_brokers_is_an_error_naming_each_topic_and_the_broker_s_reason(
    infra: Any,
) -> None:
    settings = settings_for(infra, kafka_replication_factor=3)
    topics = [unique("test.topics."), unique("test.topics.")]
    with pytest.raises(TopicsNotCreated) as refused:
        await ensure_topics(settings, topics)
    message = str(refused.value)
    for topic in topics:
        assert f"{topic}: InvalidReplicationFactorError: " in message
    assert "cannot be reached because only 1 broker(s) are registered" in message, "the broker's own words"
    assert not set(topics) & await existing(infra.kafka_bootstrap), "nothing created"


async def test_a_topic_the_broker_refuses_is_named_and_the_others_are_created(infra: Any) -> None:
    settings = settings_for(infra)
    fine, bad = unique("test.topics."), "test.topics.no spaces, please"
    with pytest.raises(TopicsNotCreated) as refused:
        await ensure_topics(settings, [fine, bad])
    message = str(refused.value)
    assert f"{bad}: InvalidTopicError: " in message
    assert fine not in message
    assert await described(infra.kafka_bootstrap, fine) == {fine: [[1], [1], [1]]}
