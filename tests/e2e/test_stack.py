"""The four services as `make up` runs them, over the real Kafka and MongoDB-protocol server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.native.devstack import SERVICE_PORTS, Part, Stack
from goldenkey.contracts import EVENTS, dlq_topic
from tests.support import free_port


@pytest.fixture(scope="module")
def services(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    stack = Stack(tmp_path_factory.mktemp("services"), prometheus_port=None)
    env = {"GOLDENKEY_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "GOLDENKEY_MONGODB_URL": infra.mongodb_url}
    parts: list[Part] = stack.service_parts({name: free_port() for name in SERVICE_PORTS}, env)
    started: list[Part] = []
    try:
        for part in parts:
            part.start()
            started.append(part)
        urls = {part.name: f"http://127.0.0.1:{part.port}" for part in parts}
        deadline = time.monotonic() + 60
        while not all(ready(url) for url in urls.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield urls
    finally:
        for part in started:
            part.stop()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("service", list(SERVICE_PORTS))
def test_each_service_becomes_ready_and_documents_the_events_it_publishes(
    services: dict[str, str], service: str
) -> None:
    url = services[service]
    readiness = httpx.get(f"{url}/health/ready", timeout=5).json()
    assert readiness["status"] == "ok", readiness
    assert readiness["service"] == service
    channels = str(httpx.get(f"{url}/asyncapi", timeout=5).json()["channels"])
    published = {spec.topic for spec in EVENTS.values() if spec.producer == service}
    assert published
    assert all(topic in channels for topic in published), channels
    assert "goldenkey_outbox_pending" in httpx.get(f"{url}/metrics", timeout=5).text
    assert httpx.get(f"{url}/docs", timeout=5).status_code == 200


async def test_every_service_created_its_topics_and_its_dead_letter_topic(services: dict[str, str], infra: Any) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    for service in SERVICE_PORTS:
        assert dlq_topic(service) in topics
    assert {spec.topic for spec in EVENTS.values()} <= topics
