"""The concierge's metrics (DESIGN §9). Counters and histograms are counted where things happen;
state gauges are read from MongoDB before each scrape, so several instances agree.

Every label set a counter or histogram can have is created at 0 before anything is counted (the
items as soon as they are read): a series that appears only at its first use has no value on a
dashboard until then, and Prometheus sees no increase in its first value."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, get_args

from prometheus_client import Counter, Gauge, Histogram

from goldenkey.contracts.vocabulary import AssistanceKind
from goldenkey.kit.metrics import Metrics

if TYPE_CHECKING:
    from goldenkey.concierge.store import ConciergeStore

ACCEPT_BUCKETS = (10, 30, 60, 120, 180, 300, 600, 1200)
KINDS: tuple[AssistanceKind, ...] = get_args(AssistanceKind)


class ConciergeMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.loans = Counter("goldenkey_loans_total", "Units lent", ["sku"], registry=registry)
        self.dispensed = Counter(
            "goldenkey_consumables_dispensed_total", "Consumables handed out (pieces)", ["sku"], registry=registry
        )
        self.accept = Histogram(
            "goldenkey_assistance_accept_seconds",
            "From an assistance request to its acceptance by a concierge",
            ["kind"],
            buckets=ACCEPT_BUCKETS,
            registry=registry,
        )
        self.escalations = Counter(
            "goldenkey_assistance_escalations_total",
            "Assistance requests not accepted within 3 minutes",
            ["kind"],
            registry=registry,
        )
        for kind in KINDS:
            self.accept.labels(kind)
            self.escalations.labels(kind)
        self.loans_out = Gauge("goldenkey_loans_out", "Units lent and not back", ["sku"], registry=registry)
        self.loans_overdue = Gauge("goldenkey_loans_overdue", "Loans out past their due time", registry=registry)
        self.stock = Gauge("goldenkey_stock_level", "Consumables left", ["sku"], registry=registry)
        self.minimum = Gauge("goldenkey_stock_minimum", "Restock below this level", ["sku"], registry=registry)
        self.assistance_open = Gauge(
            "goldenkey_assistance_open",
            "Assistance requests not yet completed or cancelled",
            ["kind"],
            registry=registry,
        )
        self.on_duty = Gauge("goldenkey_concierges_on_duty", "Golden Key concierges on duty", registry=registry)

    async def refresh(self, store: ConciergeStore, now: Callable[[], datetime]) -> None:
        """Set the state gauges from the database."""
        at = now()
        out = await store.loans_out()
        for item in await store.lendables.find({}):
            self.loans.labels(item.id)
            self.loans_out.labels(item.id).set(sum(1 for loan in out if loan.sku == item.id))
        self.loans_overdue.set(sum(1 for loan in out if loan.due_at <= at))
        for consumable in await store.consumables.find({}):
            self.dispensed.labels(consumable.id)
            self.stock.labels(consumable.id).set(consumable.stock)
            self.minimum.labels(consumable.id).set(consumable.minimum)
        open_kinds = Tally(a.kind for a in await store.open_assistance())
        for kind in KINDS:
            self.assistance_open.labels(kind).set(open_kinds.get(kind, 0))
        self.on_duty.set(len(await store.on_duty()))
