"""Wiring of the queue service: settings, the kit, its repositories, handlers and routes."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from goldenkey.contracts import EVENTS
from goldenkey.kit import Clock, KitSettings, ServiceKit
from goldenkey.queue import api, handlers
from goldenkey.queue.domain import Coverage, Ticket, TicketCounter, Window
from goldenkey.queue.metrics import QueueMetrics
from goldenkey.queue.service import QueueService
from goldenkey.queue.store import INDEXES, QueueStore, seed


class Settings(KitSettings):
    model_config = SettingsConfigDict(env_prefix="GOLDENKEY_", extra="ignore")

    service: str = "queue"
    http_port: int = 8001
    coverage_check_s: float = 30.0
    """How often the watchdog looks for categories with no open window."""
    end_of_day_check_s: float = 600.0
    """How often the end-of-day watchdog looks for tickets an earlier business day left behind
    (it cancels them, and archives that day): the hall is closed for hours before it matters."""


def build_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    kit = ServiceKit(settings, clock=clock)
    store = QueueStore(
        kit.db,
        tickets=kit.repository("tickets", Ticket, INDEXES),
        windows=kit.repository("windows", Window),
        counters=kit.repository("counters", TicketCounter),
        coverage=kit.repository("coverage", Coverage),
    )
    metrics = QueueMetrics(kit.metrics)
    queue = QueueService(store, kit.clock, kit.calendar, settings.pii_key.get_secret_value(), metrics)
    kit.metrics.refresh_with(lambda: metrics.refresh(store, lambda: kit.calendar.business_day(kit.clock.now())))
    kit.emits(*(spec.model for spec in EVENTS.values() if spec.producer == kit.service))
    handlers.register(kit, queue)

    async def started() -> None:
        await seed(kit.db, store.windows)
        await queue.watch_coverage()  # the coverage from the windows, before the first pause is decided on it

    kit.on_start(started)
    kit.every(settings.coverage_check_s, queue.watch_coverage, what="coverage watchdog")
    kit.every(settings.end_of_day_check_s, queue.close_earlier_days, what="end-of-day watchdog")
    app = kit.app([api.router], description="Tickets, windows and the service catalog of the hall.")
    app.state.queue = queue
    return app
