"""The Kafka side of a service: the FastStream broker, publishing, topics."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from goldenkey.kit.settings import KitSettings


def security(settings: KitSettings) -> BaseSecurity | None:
    """Kafka TLS / SASL from settings (DESIGN §8.4); None for a plaintext loopback broker."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    use_ssl = protocol.endswith("SSL")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    mechanism = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
        settings.kafka_sasl_mechanism or "PLAIN"
    ]
    return mechanism(username, password, ssl_context=context if use_ssl else None, use_ssl=use_ssl)


def admin_kwargs(settings: KitSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    protocol = settings.kafka_security_protocol
    if protocol != "PLAINTEXT":
        kwargs["security_protocol"] = protocol
        if protocol.endswith("SSL"):
            kwargs["ssl_context"] = ssl.create_default_context(
                cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
            )
        if protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = settings.kafka_sasl_username
            kwargs["sasl_plain_password"] = (
                settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
            )
    return kwargs


def make_broker(settings: KitSettings, middlewares: Iterable[Any] = ()) -> KafkaBroker:
    """A broker whose producer is idempotent with acks=all (DESIGN §7.1)."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        security=security(settings),
        client_id=f"goldenkey-{settings.service}",
        middlewares=tuple(middlewares),
        graceful_timeout=settings.shutdown_timeout_s / 2,
        request_timeout_ms=15_000,
        logger=logging.getLogger("faststream.goldenkey"),  # through the kit's JSON logs
        log_level=logging.DEBUG,  # FastStream's per-message "Received"/"Processed" lines; the kit logs what matters
    )


async def ensure_topics(settings: KitSettings, topics: Iterable[str]) -> None:
    """Create the topics a service publishes to and reads from, if the cluster lacks them."""
    wanted = sorted(set(topics))
    admin = AIOKafkaAdminClient(**admin_kwargs(settings), client_id=f"goldenkey-{settings.service}-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t, settings.kafka_topic_partitions, settings.kafka_replication_factor) for t in missing]
                )
            except TopicAlreadyExistsError:  # another instance was quicker
                pass
    finally:
        await admin.close()


class BrokerPublisher:
    """Publishes through the FastStream broker's idempotent producer, in order."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.running = False

    def connected(self) -> bool:
        return self.running

    async def publish_batch(self, records: list[tuple[str, bytes, bytes, dict[str, str]]]) -> None:
        # Sent without waiting one by one, then awaited together: the idempotent producer keeps
        # them in order per partition, and a batch costs one round trip instead of one each.
        futures = [
            await self.broker.publish(value, topic, key=key, headers=headers, no_confirm=True)
            for topic, key, value, headers in records
        ]
        await asyncio.gather(*futures)
