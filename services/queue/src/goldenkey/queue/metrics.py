"""The queue's metrics (DESIGN §9). Counters and histograms are counted where things happen;
state gauges are read from MongoDB before each scrape, so several instances agree.

Every label set a counter or histogram can have is created at 0 before anything is counted (the
categories as soon as they are read): a series that appears only at its first use has no value on a
dashboard until then, and Prometheus sees no increase in its first value."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from goldenkey.contracts.vocabulary import Channel, Outcome, Priority
from goldenkey.kit.metrics import Metrics
from goldenkey.queue.domain import Ticket
from goldenkey.queue.store import QueueStore

WAIT_BUCKETS = (60, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)
SERVICE_BUCKETS = (60, 180, 300, 600, 900, 1200, 1800, 2700, 3600)
CHANNELS: tuple[str, ...] = get_args(Channel)
PRIORITIES: tuple[str, ...] = (*get_args(Priority), "none")
OUTCOMES: tuple[str, ...] = get_args(Outcome)


class QueueMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.issued = Counter(
            "goldenkey_tickets_issued_total", "Tickets issued", ["category", "channel", "priority"], registry=registry
        )
        self.completed = Counter(
            "goldenkey_tickets_completed_total",
            "Tickets whose service ended, by outcome (needs_materials: the one-trip promise broken)",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.completed.labels(outcome)
        self.wait = Histogram(
            "goldenkey_wait_seconds",
            "From issue to the start of service",
            ["category"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.service = Histogram(
            "goldenkey_service_seconds",
            "Time at the window",
            ["category"],
            buckets=SERVICE_BUCKETS,
            registry=registry,
        )
        self.waiting = Gauge("goldenkey_queue_waiting", "Tickets waiting now", ["category"], registry=registry)
        self.windows_open = Gauge(
            "goldenkey_windows_open", "Open windows serving a category", ["category"], registry=registry
        )
        self.coverage_gaps = Gauge(
            "goldenkey_coverage_gaps", "Categories with no open window in business hours", registry=registry
        )
        self._counted: set[str] = set()
        """The categories whose counters and histograms exist."""

    def count_category(self, code: str) -> None:
        """Create a category's tickets, waits and services at 0, every channel and priority."""
        if code in self._counted:
            return
        for channel in CHANNELS:
            for priority in PRIORITIES:
                self.issued.labels(code, channel, priority)
        self.wait.labels(code)
        self.service.labels(code)
        self._counted.add(code)

    def ticket_issued(self, ticket: Ticket) -> None:
        self.issued.labels(ticket.category, ticket.channel, ticket.priority or "none").inc()

    def ticket_started(self, ticket: Ticket) -> None:
        self.wait.labels(ticket.category).observe(ticket.wait_s)

    def ticket_completed(self, ticket: Ticket) -> None:
        self.completed.labels(ticket.outcome or "done").inc()
        self.service.labels(ticket.category).observe(ticket.service_s)

    async def refresh(self, store: QueueStore, today: Callable[[], date]) -> None:
        """Set the state gauges from the database."""
        categories = await store.categories()
        waiting = await store.waiting(today())
        windows = await store.all_windows()
        for code in categories:
            self.count_category(code)
            self.waiting.labels(code).set(sum(1 for t in waiting if t.category == code))
            self.windows_open.labels(code).set(sum(1 for w in windows if w.state == "open" and w.serves(code)))
        coverage = await store.coverage.get("coverage")
        self.coverage_gaps.set(len(coverage.gaps) if coverage else 0)
