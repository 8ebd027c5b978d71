"""Wiring of the parking service: settings, the kit, its repositories, handlers and routes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from goldenkey.contracts import EVENTS
from goldenkey.kit import Clock, KitSettings, ServiceKit
from goldenkey.parking import api, handlers
from goldenkey.parking.domain import Incident, Lot, LotPlan, Patrol, PatrolSchedule, PlateTicket, Schedule, Visit
from goldenkey.parking.metrics import ParkingMetrics
from goldenkey.parking.service import ParkingService
from goldenkey.parking.store import INDEXES, ParkingStore


class Settings(KitSettings):
    model_config = SettingsConfigDict(env_prefix="GOLDENKEY_", extra="ignore")

    service: str = "parking"
    http_port: int = 8003
    watch_s: float = 15.0
    """How often the watchdog looks for incidents to escalate, missed rounds and visits to mend."""
    lot_file: Path | None = None
    """The hall's own lot plan (JSON like the shipped data/lot.json); loaded when the database has none."""
    patrols_file: Path | None = None
    """The hall's own patrol schedule (JSON like the shipped data/patrols.json), likewise."""


def build_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    kit = ServiceKit(settings, clock=clock)
    store = ParkingStore(
        lots=kit.repository("lots", Lot),
        visits=kit.repository("visits", Visit, INDEXES),
        plate_tickets=kit.repository("plate_tickets", PlateTicket),
        patrols=kit.repository("patrols", Patrol),
        incidents=kit.repository("incidents", Incident),
        schedules=kit.repository("schedules", Schedule),
        lot_plan=LotPlan.model_validate(_read(settings.lot_file)) if settings.lot_file else None,
        patrol_schedule=PatrolSchedule.model_validate(_read(settings.patrols_file)) if settings.patrols_file else None,
    )
    metrics = ParkingMetrics(kit.metrics)
    parking = ParkingService(store, kit.clock, kit.calendar, metrics, settings.pii_key.get_secret_value())
    kit.metrics.refresh_with(lambda: metrics.refresh(parking))
    kit.emits(*(spec.model for spec in EVENTS.values() if spec.producer == kit.service))
    handlers.register(kit, parking)

    kit.on_start(store.seed)
    kit.every(settings.watch_s, parking.sweep, what="parking watchdog")
    app = kit.app(
        [api.router], description="The car park: the lot and its gate, the guards' rounds, incidents on parked cars."
    )
    app.state.parking = parking
    return app


def _read(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))
