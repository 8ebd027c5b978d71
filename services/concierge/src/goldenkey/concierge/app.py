"""Wiring of the concierge service: settings, the kit, its repositories, handlers and routes."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from goldenkey.concierge import api, handlers
from goldenkey.concierge.domain import Assistance, Concierge, Consumable, Lendable, Loan
from goldenkey.concierge.metrics import ConciergeMetrics
from goldenkey.concierge.service import ConciergeService
from goldenkey.concierge.store import INDEXES, ConciergeStore
from goldenkey.contracts import EVENTS
from goldenkey.kit import Clock, KitSettings, ServiceKit


class Settings(KitSettings):
    model_config = SettingsConfigDict(env_prefix="GOLDENKEY_", extra="ignore")

    service: str = "concierge"
    http_port: int = 8002
    watch_s: float = 15.0
    """How often the watchdog looks for requests to escalate and loans due or overdue."""


def build_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    kit = ServiceKit(settings, clock=clock)
    store = ConciergeStore(
        lendables=kit.repository("lendables", Lendable),
        consumables=kit.repository("consumables", Consumable),
        loans=kit.repository("loans", Loan, INDEXES),
        assistance=kit.repository("assistance", Assistance),
        concierges=kit.repository("concierges", Concierge),
    )
    metrics = ConciergeMetrics(kit.metrics)
    concierge = ConciergeService(store, kit.clock, kit.calendar, metrics)
    kit.metrics.refresh_with(lambda: metrics.refresh(store, kit.clock.now))
    kit.emits(*(spec.model for spec in EVENTS.values() if spec.producer == kit.service))
    handlers.register(kit, concierge)

    async def started() -> None:
        await store.seed(kit.clock.now())

    kit.on_start(started)
    kit.every(settings.watch_s, concierge.sweep, what="concierge watchdog")
    app = kit.app([api.router], description="The Golden Key desk: the lending box, consumables, assistance.")
    app.state.concierge = concierge
    return app
