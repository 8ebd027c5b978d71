"""Prometheus metrics: one registry per service, and state gauges computed from MongoDB on scrape.

State gauges (queue length, loans out, outbox size…) are read from the database rather than
counted in memory, so several instances of a service report the same numbers (DESIGN §9).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        self.http_requests = Counter(
            "goldenkey_http_requests_total",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "goldenkey_http_request_seconds",
            "Time to answer an HTTP request, by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
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


class RequestMetrics:
    """ASGI middleware: rate, errors and duration of HTTP requests, labelled by route template
    (`/tickets/{ticket_id}`, never the id itself, so no personal data and bounded labels)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_seconds.labels(method, route).observe(time.perf_counter() - started)
