"""Prometheus metrics: one registry per service, and state gauges computed from MongoDB on scrape.

State gauges (queue length, loans out, outbox size…) are read from the database rather than
counted in memory, so several instances of a service report the same numbers (DESIGN §9).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from goldenkey.kit.logs import get_logger

log = get_logger(__name__)
Refresh = Callable[[], Awaitable[None]]


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.dlq_messages = Counter(
            "goldenkey_dlq_messages_total",
            "Messages a service could not process and sent to its dead-letter topic",
            ["service"],
            registry=self.registry,
        )
        self.dlq_messages.labels(service=service)
        self.outbox_pending = Gauge(
            "goldenkey_outbox_pending", "Events saved but not yet published to Kafka", registry=self.registry
        )
        self.consumer_lag = Gauge(
            "goldenkey_consumer_lag",
            "Messages not yet consumed by this instance, per topic",
            ["topic"],
            registry=self.registry,
        )
        self._refreshers: list[Refresh] = []

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, list(labels), registry=self.registry)

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)

    def refresh_with(self, refresh: Refresh) -> Refresh:
        """Register a coroutine that sets state gauges from the database before each scrape."""
        self._refreshers.append(refresh)
        return refresh

    async def render(self, timeout: float = 2.0) -> bytes:
        results = await asyncio.gather(
            *(asyncio.wait_for(r(), timeout) for r in self._refreshers), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("a state gauge could not be refreshed", error=repr(result))
        return generate_latest(self.registry)
