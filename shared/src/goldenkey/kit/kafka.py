"""The Kafka side of a service: the FastStream broker, publishing, topics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    NoError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    for_code,
)
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from goldenkey.kit.logs import get_logger
from goldenkey.kit.settings import KitSettings

log = get_logger(__name__)


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


class TopicsNotCreated(RuntimeError):
    """The cluster refused to create a topic (replication beyond its brokers, a bad name, no rights…)."""


async def ensure_topics(settings: KitSettings, topics: Iterable[str]) -> None:
    """Create the topics a service publishes to and reads from, if the cluster lacks them.

    Each topic gets `kafka_topic_partitions` partitions and `kafka_replication_factor` replicas,
    or, with that unset, the broker's own `default.replication.factor`. A topic another instance
    created meanwhile is fine; any other refusal raises `TopicsNotCreated` naming the topic and
    saying what the broker said."""
    wanted = sorted(set(topics))
    admin = AIOKafkaAdminClient(**admin_kwargs(settings), client_id=f"goldenkey-{settings.service}-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return
        replicas = settings.kafka_replication_factor or await default_replication_factor(admin)
        response = await admin.create_topics([NewTopic(t, settings.kafka_topic_partitions, replicas) for t in missing])
        refused = [
            f"{topic}: {for_code(code).__name__}: {message or 'no message'}"
            for topic, code, message, *_ in response.topic_errors
            if code not in (NoError.errno, TopicAlreadyExistsError.errno)  # already there: another instance was quicker
        ]
        if refused:
            raise TopicsNotCreated(f"Kafka refused to create {len(refused)} topic(s): " + "; ".join(refused))
        await _until_led(admin, missing)
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 10.0) -> None:
    """Wait, a little, until every partition of new topics has a leader in the metadata: a consumer
    that subscribes before would see a topic come later and rebalance its group for it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(topics)
        if len(described) == len(topics) and all(
            topic["error_code"] == NoError.errno
            and topic["partitions"]
            and all(partition["leader"] >= 0 for partition in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.1)


async def default_replication_factor(admin: AIOKafkaAdminClient) -> int:
    """The broker's `default.replication.factor`: what it gives a topic created without one.

    (Asking for `-1`, KIP-464, needs CreateTopics v4; aiokafka 0.14 speaks v3 at most, and its
    `NewTopic` refuses -1 without a replica assignment, so the kit reads the setting instead.)"""
    cluster = await admin.describe_cluster()
    broker = str(cluster["brokers"][0]["node_id"])  # a cluster-wide setting: any broker says it
    resource = ConfigResource(ConfigResourceType.BROKER, broker, configs={"default.replication.factor": None})
    for response in await admin.describe_configs([resource]):
        for code, message, _type, _name, entries in response.resources:
            if code != NoError.errno:
                raise TopicsNotCreated(
                    f"cannot read the broker's default.replication.factor ({for_code(code).__name__}: {message}); "
                    "set GOLDENKEY_KAFKA_REPLICATION_FACTOR"
                )
            for name, value, *_ in entries:
                if name == "default.replication.factor":
                    return int(value)
    raise TopicsNotCreated(
        "the broker did not say its default.replication.factor; set GOLDENKEY_KAFKA_REPLICATION_FACTOR"
    )


def kafka_unreachable(error: BaseException) -> bool:
    """Whether a Kafka error means "not now" rather than "never": aiokafka's `retriable`, and the
    timeouts it does not mark so (a broker that did not answer in time)."""
    return isinstance(error, KafkaError) and (
        error.retriable or isinstance(error, KafkaTimeoutError | KafkaUnavailableError)
    )


PRODUCER_FATAL: tuple[type[KafkaError], ...] = (OutOfOrderSequenceNumber, ProducerFenced)
"""Errors after which aiokafka's producer sends nothing more: its sender task has ended, and every
later send fails with the same error. An idempotent producer meets OutOfOrderSequenceNumber when
a broker restarted with batches in flight and lost track of its sequence numbers."""


class BrokerPublisher:
    """Publishes through the FastStream broker's idempotent producer, in order."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.running = False
        self.renewals = 0
        """Producers replaced after a fatal error."""
        self._renewing = asyncio.Lock()

    def connected(self) -> bool:
        return self.running

    async def publish_batch(self, records: list[tuple[str, bytes, bytes, dict[str, str]]]) -> None:
        # Sent without waiting one by one, then awaited together: the idempotent producer keeps
        # them in order per partition, and a batch costs one round trip instead of one each.
        async with self._renewed_if_fatal():
            futures = [
                await self.broker.publish(value, topic, key=key, headers=headers, no_confirm=True)
                for topic, key, value, headers in records
            ]
            await asyncio.gather(*futures)

    async def publish(self, value: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]) -> None:
        """Publish one record and wait for the broker's acknowledgement (the dead-letter path)."""
        async with self._renewed_if_fatal():
            await self.broker.publish(value, topic, key=key, headers=headers)

    @contextlib.asynccontextmanager
    async def _renewed_if_fatal(self) -> AsyncIterator[None]:
        renewals = self.renewals
        try:
            yield
        except PRODUCER_FATAL as error:
            await self._renew(renewals, error)
            raise  # the caller tries again, on the new producer (the same event ids)

    async def _renew(self, renewals: int, error: KafkaError) -> None:
        """Replace a producer that cannot send any more with a new one (a new producer id), once
        however many batches met the error. FastStream has no call for this: its broker config
        builds the producer from the broker's connection settings, as at start."""
        async with self._renewing:
            if self.renewals != renewals:  # another batch's failure renewed it already
                return
            log.warning("the Kafka producer cannot send any more; starting a new one", error=repr(error))
            config = self.broker.config.broker_config
            with contextlib.suppress(Exception):
                await config.disconnect()
            await config.connect(**self.broker._connection_kwargs)
            self.renewals += 1
