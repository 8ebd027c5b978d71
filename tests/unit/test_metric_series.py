"""Every counter and histogram a service registers has its series from the start, at 0.

A labelled counter that appears only when first counted leaves a dashboard panel at "No data" until
then (a missed round, a stage overdue may not happen for days), and Prometheus sees no increase in
its first value: a kind counted once a day would never show. The demo's dashboard check
(goldenkey.demo.panels) finds such panels after a day; this finds them before."""

from __future__ import annotations

import importlib

import pytest
from prometheus_client import CollectorRegistry

from goldenkey.kit.metrics import Metrics
from goldenkey.queue.metrics import CHANNELS, PRIORITIES, QueueMetrics

SERVICES = {
    "queue": "QueueMetrics",
    "concierge": "ConciergeMetrics",
    "parking": "ParkingMetrics",
    "feedback": "FeedbackMetrics",
}
# Labelled by what the service's database holds, not by a fixed vocabulary: created when the state
# gauges are first read (before the first scrape answers), not when the class is built.
FROM_THE_DATABASE = {
    "goldenkey_tickets_issued",  # category
    "goldenkey_wait_seconds",  # category
    "goldenkey_service_seconds",  # category
    "goldenkey_loans",  # sku
    "goldenkey_consumables_dispensed",  # sku
}
# The kit's, labelled by route and status as requests come.
PER_REQUEST = {"goldenkey_http_requests", "goldenkey_http_request_seconds"}


def without_series(registry: CollectorRegistry) -> set[str]:
    return {
        family.name for family in registry.collect() if family.type in ("counter", "histogram") and not family.samples
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_counter_and_histogram_has_its_series_before_anything_is_counted(service: str) -> None:
    metrics = Metrics(service)
    module = importlib.import_module(f"goldenkey.{service}.metrics")
    getattr(module, SERVICES[service])(metrics)
    assert without_series(metrics.registry) - FROM_THE_DATABASE - PER_REQUEST == set()


def test_a_category_s_tickets_waits_and_services_exist_once_it_is_known() -> None:
    metrics = Metrics("queue")
    queue = QueueMetrics(metrics)
    queue.count_category("B")
    queue.count_category("B")
    assert without_series(metrics.registry) - PER_REQUEST == set()
    issued = [
        s for family in metrics.registry.collect() for s in family.samples if s.name == "goldenkey_tickets_issued_total"
    ]
    assert len(issued) == len(CHANNELS) * len(PRIORITIES)
    assert {(s.labels["channel"], s.labels["priority"]) for s in issued} >= {("kiosk", "none"), ("app", "elderly")}
    assert all(s.value == 0 for s in issued)
