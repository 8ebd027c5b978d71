"""Helpers for tests that talk to real Kafka and the MongoDB-protocol server: waiting, reading topics, running apps."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI


async def wait_for(condition: Callable[[], Awaitable[Any] | Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TopicReader:
    """Reads a topic from its beginning, without a consumer group, collecting every record."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())
        await wait_for(self.consumer.assignment, 30)  # reading, not still finding the partitions
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.records.extend(records)

    def events(self) -> list[dict[str, Any]]:
        """The records that are JSON objects (other tests leave poison on shared topics)."""
        found = []
        for record in self.records:
            try:
                value = json.loads(record.value or b"")
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    async def wait_events(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        await wait_for(lambda: len(self.events()) >= count, timeout)
        return self.events()


async def produce(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


class RunningApp:
    """A FastAPI app served by uvicorn on a free loopback port, lifespan and all."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_config=None, access_log=False)
        )
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RunningApp:
        self._task = asyncio.create_task(self.server.serve())
        await wait_for(lambda: self.server.started or self._task.done(), 30)  # type: ignore[union-attr]
        if self._task.done():
            self._task.result()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        assert self._task is not None
        await asyncio.wait_for(self._task, 30)


def on_the_test_stack(infra: Any, service: str, **more: Any) -> dict[str, Any]:
    """Settings of a service under test: the test stack's Kafka and database server, a database of
    its own, dev mode with the dev tokens (and the dev PII key), and quick retries."""
    return {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": unique(f"{service}_"),
        "dev_mode": True,
        "dev_tokens": True,
        "consumer_backoff_s": 0.05,
        **more,
    }
