"""The parking service's MongoDB side: the lot and schedule loaded at start, and the reads the rules need."""

from __future__ import annotations

import json
from datetime import date, datetime
from importlib import resources
from typing import Any

from goldenkey.kit import AlreadyExists, Index, Repository
from goldenkey.parking.domain import (
    OPEN_INCIDENT,
    SCHEDULE_ID,
    Incident,
    Lot,
    LotPlan,
    Patrol,
    PatrolSchedule,
    PlateTicket,
    Schedule,
    Visit,
)

INDEXES = [
    Index("visits", [("status", 1), ("arrived_at", 1)]),
    Index("visits", [("plate_hash", 1)]),
    Index("visits", [("departed_at", 1)]),
    Index("plate_tickets", [("plate_hash", 1), ("day", 1)]),
    Index("patrols", [("day", 1)]),
    Index("incidents", [("status", 1), ("reported_at", 1)]),
    Index("incidents", [("plate_hash", 1)]),
    Index("incidents", [("ticket_id", 1)]),
]


def shipped(name: str) -> Any:
    """One of the data files shipped with the service (lot, patrols)."""
    return json.loads(resources.files("goldenkey.parking.data").joinpath(f"{name}.json").read_text("utf-8"))


class ParkingStore:
    def __init__(
        self,
        lots: Repository[Lot],
        visits: Repository[Visit],
        plate_tickets: Repository[PlateTicket],
        patrols: Repository[Patrol],
        incidents: Repository[Incident],
        schedules: Repository[Schedule],
        *,
        lot_plan: LotPlan | None = None,
        patrol_schedule: PatrolSchedule | None = None,
    ) -> None:
        self.lots = lots
        self.visits = visits
        self.plate_tickets = plate_tickets
        self.patrols = patrols
        self.incidents = incidents
        self.schedules = schedules
        self.plan = lot_plan or LotPlan.model_validate(shipped("lot"))
        self.shipped_schedule = patrol_schedule or PatrolSchedule.model_validate(shipped("patrols"))
        self.lot_id = self.plan.lot_id

    async def seed(self) -> None:
        """Load the lot and schedule (the shipped ones, or the hall's own files), unless they are
        there already (and perhaps edited since through the API)."""
        plan, schedule = self.plan, self.shipped_schedule
        for repository, aggregate in (
            (self.lots, Lot(id=plan.lot_id, plan=plan)),
            (self.schedules, Schedule(id=SCHEDULE_ID, plan=schedule)),
        ):
            if await repository.get(aggregate.id) is None:
                try:
                    await repository.add(aggregate)  # type: ignore[arg-type]
                except AlreadyExists:  # another instance seeded it meanwhile
                    pass

    async def lot(self) -> Lot | None:
        return await self.lots.get(self.lot_id)

    async def schedule(self) -> PatrolSchedule:
        found = await self.schedules.get(SCHEDULE_ID)
        return found.plan if found is not None else self.shipped_schedule

    async def ticket_of_plate(self, plate_hash: str, day: date) -> str | None:
        """The latest ticket issued on `day` with this plate."""
        found = await self.plate_tickets.find({"plate_hash": plate_hash, "day": day.isoformat()})
        return max(found, key=lambda t: t.issued_at).id if found else None

    async def inside(self) -> list[Visit]:
        return await self.visits.find({"status": "inside"}, sort=[("arrived_at", 1), ("_id", 1)])

    async def departures_without_arrival(self, since: datetime) -> list[Visit]:
        found = await self.visits.find({"departed_at": {"$gte": since}}, sort=[("departed_at", 1), ("_id", 1)])
        return [v for v in found if v.arrived_at is None]

    async def patrols_of_day(self, day: date) -> list[Patrol]:
        return await self.patrols.find({"day": day.isoformat()}, sort=[("scheduled_at", 1), ("started_at", 1)])

    async def open_incidents(self) -> list[Incident]:
        return await self.incidents.find({"status": {"$in": list(OPEN_INCIDENT)}}, sort=[("reported_at", 1)])

    async def open_incidents_of(self, plate_hash: str | None) -> list[Incident]:
        query: dict[str, Any] = {"status": {"$in": list(OPEN_INCIDENT)}}
        if plate_hash is not None:
            query["plate_hash"] = plate_hash
        return await self.incidents.find(query, sort=[("reported_at", 1)])

    async def forget_plate_tickets_before(self, day: date) -> int:
        """Tickets of earlier days link no car any more."""
        removed = await self.plate_tickets.collection.delete_many({"day": {"$lt": day.isoformat()}})
        return removed.deleted_count
