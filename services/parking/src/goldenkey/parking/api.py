"""The parking service's HTTP API: thin — validate, authorise, call the use case, answer.

Who may do what: guards (and the gate's camera, which holds a guard's token) record arrivals and
departures, report, patrol and resolve; ops read everything and take escalations over; admin edits
the lot and the schedule; concierges may read incidents (they go out to help). Kiosks and windows
have no business here. Raw plates are shown to guards, who stand by the car; ops see them masked.
A guard's own handset (a token bound to them) speaks only as them (docs/access.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, overload

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, StrictInt

from goldenkey.contracts.vocabulary import IncidentKind, VehicleSource
from goldenkey.kit import Invalid, NewId, Principal, error_responses, require
from goldenkey.kit.errors import Forbidden
from goldenkey.kit.inputs import PAGE, Limit, Lines, Offset, Strict, matching
from goldenkey.parking.domain import (
    Correction,
    Incident,
    IncidentStatus,
    Lot,
    LotPlan,
    Patrol,
    PatrolSchedule,
    RoundState,
    Visit,
    VisitStatus,
    ZoneKind,
)
from goldenkey.parking.service import HeadCountResult, ParkingService, RoundView

router = APIRouter()
GUARDS = ("guard",)
READERS = ("guard", "ops")
INCIDENT_READERS = ("guard", "ops", "concierge")
SEES_PLATES = {"guard", "admin"}
PlateText = Annotated[str, Field(min_length=1, max_length=20, description="As read or typed: 陕A12345, 陕a·12345…")]
GuardId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
Slug = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Z0-9][A-Z0-9-]{0,19}$")]
Space = Annotated[str, Field(min_length=3, max_length=26, pattern=r"^[A-Z0-9][A-Z0-9-]{0,19}-[0-9]{1,5}$")]
Note = Annotated[Lines, Field(max_length=1000)]
ItemId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[\w.:-]+$", description="An id this service gave out.")
]
STEP = error_responses(404, 409, 422)
"""What a step of a round's or an incident's lifecycle can end in besides success (and 403: a
guard's own handset acting for another guard)."""


class Arrival(Strict):
    plate: PlateText
    source: VehicleSource = "camera"
    zone: Slug | None = None
    """The zone it is counted in, when the camera or guard knows it; else the lot's default zone."""


class Departure(Strict):
    plate: PlateText
    source: VehicleSource = "camera"


class PlateCorrection(Strict):
    plate: PlateText
    guard_id: GuardId


class HeadCountBody(Strict):
    guard_id: GuardId
    counted: Annotated[StrictInt, Field(ge=0, le=100_000)]


class StartPatrol(Strict):
    guard_id: GuardId
    round_id: Slug | None = None
    """The scheduled round to walk; by default the one due now (or the latest missed one)."""


class ScanCheckpoint(Strict):
    checkpoint_id: Slug


class ReportIncident(Strict):
    kind: IncidentKind
    guard_id: GuardId
    plate: PlateText | None = None
    space: Space | None = None
    """`<zone>-<number>`, e.g. `B-017`; a report names the plate, the space, or both."""
    note: Note | None = None


class Acknowledge(Strict):
    guard_id: GuardId | None = None
    note: Note | None = None


class Resolve(Strict):
    resolution: Annotated[Lines, Field(max_length=1000)]
    guard_id: GuardId | None = None


def service(request: Request) -> ParkingService:
    return request.app.state.parking  # type: ignore[no-any-return]


Parking = Annotated[ParkingService, Depends(service)]


def sees_plates(principal: Principal) -> bool:
    return principal.role in SEES_PLATES


@overload
def as_guard(who: Principal, guard_id: str) -> str: ...
@overload
def as_guard(who: Principal, guard_id: str | None) -> str | None: ...
def as_guard(who: Principal, guard_id: str | None) -> str | None:
    """The guard a request speaks for. A guard's own handset (a token bound to them) speaks only
    as them, and names them when the body leaves the guard out; any other token as it says."""
    if who.role != "guard" or who.bound_to is None:
        return guard_id
    if guard_id is not None and guard_id != who.bound_to:
        raise Forbidden(f"this token is guard {who.bound_to}'s: it may not act as {guard_id}")
    return who.bound_to


def own_round(who: Principal) -> Callable[[Patrol], None]:
    """The check a round's step makes of the caller: a guard's own handset, their own round."""
    if who.role == "guard" and who.bound_to is not None:
        guard_id = who.bound_to
        return lambda patrol: patrol.must_be_walked_by(guard_id)
    return lambda _: None


# --- views -------------------------------------------------------------------------------------------


class VisitView(BaseModel):
    visit_id: str
    plate: str | None
    """Shown to guards only; ops see `plate_masked`."""
    plate_masked: str
    zone: str | None
    status: VisitStatus
    arrived_at: datetime | None
    departed_at: datetime | None
    arrival_recorded: bool
    """False for a departure no arrival was recorded for."""
    unseen: bool
    """Closed without anyone seeing it leave (its plate came in again)."""
    ticket_id: str | None
    corrections: list[Correction]

    @classmethod
    def of(cls, visit: Visit, principal: Principal) -> VisitView:
        return cls(
            visit_id=visit.id,
            plate=visit.plate if sees_plates(principal) else None,
            plate_masked=visit.plate_masked,
            zone=visit.zone,
            status=visit.status,
            arrived_at=visit.arrived_at,
            departed_at=visit.departed_at,
            arrival_recorded=visit.arrived_at is not None,
            unseen=visit.unseen,
            ticket_id=visit.ticket_id,
            corrections=visit.corrections,
        )


class ZoneView(BaseModel):
    zone_id: str
    name_zh: str
    name_en: str
    kind: ZoneKind
    spaces: int
    occupied: int
    free: int


class HeadCountSummary(BaseModel):
    counted: int
    recorded: int
    guard_id: str
    at: datetime


class OccupancyView(BaseModel):
    lot_id: str
    name_zh: str
    name_en: str
    capacity: int
    occupied: int
    free: int
    full: bool
    """As announced: `lot.full` went out and `lot.available` has not yet."""
    adjustment: int
    """Cars the last head count found beyond (or, negative, short of) the recorded visits."""
    zones: list[ZoneView]
    """Cars counted per zone (the head count's adjustment is in the lot's total only)."""
    last_head_count: HeadCountSummary | None

    @classmethod
    def of(cls, lot: Lot) -> OccupancyView:
        by_zone = lot.occupied_by_zone()
        count = lot.last_head_count
        return cls(
            lot_id=lot.id,
            name_zh=lot.plan.name_zh,
            name_en=lot.plan.name_en,
            capacity=lot.capacity,
            occupied=lot.occupied,
            free=lot.free,
            full=lot.full,
            adjustment=lot.adjustment,
            zones=[
                ZoneView(
                    zone_id=z.zone_id,
                    name_zh=z.name_zh,
                    name_en=z.name_en,
                    kind=z.kind,
                    spaces=z.spaces,
                    occupied=by_zone.get(z.zone_id, 0),
                    free=max(0, z.spaces - by_zone.get(z.zone_id, 0)),
                )
                for z in lot.plan.zones
            ],
            last_head_count=HeadCountSummary(**count.model_dump()) if count else None,
        )


class HeadCountView(BaseModel):
    counted: int
    recorded: int
    difference: int
    """Counted minus recorded: negative when fewer cars are there than the records say."""
    occupancy: OccupancyView
    long_stays: list[VisitView]
    """Cars recorded inside since before today or for hours: probably gone unseen (a lower count)."""
    departures_without_arrival: list[VisitView]
    """Cars that left today with no arrival recorded: the camera misses a higher count comes from."""

    @classmethod
    def of(cls, result: HeadCountResult, principal: Principal) -> HeadCountView:
        return cls(
            counted=result.count.counted,
            recorded=result.count.recorded,
            difference=result.count.counted - result.count.recorded,
            occupancy=OccupancyView.of(result.lot),
            long_stays=[VisitView.of(v, principal) for v in result.long_stays],
            departures_without_arrival=[VisitView.of(v, principal) for v in result.departures_without_arrival],
        )


class ScanView(BaseModel):
    checkpoint_id: str
    at: datetime


class PatrolView(BaseModel):
    patrol_id: str | None
    """None for a scheduled round nobody has started (or missed) yet."""
    round_id: str | None
    scheduled_at: datetime | None
    state: RoundState
    late: bool
    """Started after it had been reported missed."""
    guard_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    route: list[str]
    scanned: list[ScanView]
    missing: list[str]
    """Checkpoints of the route not scanned (so far, while in progress)."""

    @classmethod
    def of(cls, patrol: Patrol) -> PatrolView:
        return cls(
            patrol_id=patrol.id,
            round_id=patrol.round_id,
            scheduled_at=patrol.scheduled_at,
            state=patrol.state,
            late=patrol.late,
            guard_id=patrol.guard_id,
            started_at=patrol.started_at,
            finished_at=patrol.finished_at,
            route=patrol.route,
            scanned=[ScanView(checkpoint_id=s.checkpoint_id, at=s.at) for s in patrol.scans],
            missing=patrol.missing,
        )

    @classmethod
    def of_round(cls, view: RoundView) -> PatrolView:
        if view.patrol is not None:
            return cls.of(view.patrol)
        assert view.scheduled is not None
        return cls(
            patrol_id=None,
            round_id=view.scheduled.round_id,
            scheduled_at=view.scheduled.scheduled_at,
            state=view.state,
            late=False,
            guard_id=None,
            started_at=None,
            finished_at=None,
            route=view.route,
            scanned=[],
            missing=view.route,
        )


class IncidentView(BaseModel):
    incident_id: str
    kind: IncidentKind
    status: IncidentStatus
    plate: str | None
    """Shown to guards only."""
    plate_masked: str | None
    space: str | None
    note: str | None
    guard_id: str
    ticket_id: str | None
    """The owner's ticket, through which the queue pages them."""
    visit_id: str | None
    reported_at: datetime
    notified_at: datetime | None
    window_id: str | None
    """Where the owner was paged (absent: the waiting-area display)."""
    escalated_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    assistance_id: str | None

    @classmethod
    def of(cls, i: Incident, principal: Principal) -> IncidentView:
        return cls(
            incident_id=i.id,
            kind=i.kind,
            status=i.status,
            plate=i.plate if sees_plates(principal) else None,
            plate_masked=i.plate_masked,
            space=i.space,
            note=i.note,
            guard_id=i.guard_id,
            ticket_id=i.ticket_id,
            visit_id=i.visit_id,
            reported_at=i.reported_at,
            notified_at=i.notified_at,
            window_id=i.window_id,
            escalated_at=i.escalated_at,
            acknowledged_at=i.acknowledged_at,
            acknowledged_by=i.acknowledged_by,
            resolved_at=i.resolved_at,
            resolution=i.resolution,
            assistance_id=i.assistance_id,
        )


# --- the gate and the lot ----------------------------------------------------------------------------


@router.post("/vehicles/arrivals", status_code=201, tags=["vehicles"], responses=error_responses(422))
async def arrival(
    body: Arrival, new_id: NewId, parking: Parking, principal: Annotated[Principal, Depends(require(*GUARDS))]
) -> VisitView:
    """A car came in (read by the camera, or typed by a guard): counted, and its visit opened."""
    return VisitView.of(await parking.arrive(new_id, body.plate, body.source, body.zone), principal)


@router.post("/vehicles/departures", tags=["vehicles"], responses=error_responses(422))
async def departure(
    body: Departure, new_id: NewId, parking: Parking, principal: Annotated[Principal, Depends(require(*GUARDS))]
) -> VisitView:
    """A car left: its visit closed. A departure with no recorded arrival is recorded too
    (`arrival_recorded: false`), not refused, so counts can be reconciled."""
    visit, _ = await parking.depart(new_id, body.plate, body.source)
    return VisitView.of(visit, principal)


@router.get("/occupancy", tags=["vehicles"])
async def occupancy(parking: Parking, _: Annotated[Principal, Depends(require(*READERS))]) -> OccupancyView:
    """Cars in the lot, free spaces, by zone; and whether the lot is announced full."""
    return OccupancyView.of(await parking.lot())


@router.post("/headcounts", tags=["vehicles"], responses=error_responses(422))
async def head_count(
    body: HeadCountBody, parking: Parking, principal: Annotated[Principal, Depends(require(*GUARDS))]
) -> HeadCountView:
    """A guard counted the cars: the lot's count becomes theirs, and the answer lists the visits
    that explain the difference."""
    guard_id = as_guard(principal, body.guard_id)
    return HeadCountView.of(await parking.head_count(body.counted, guard_id), principal)


@router.get("/visits", tags=["vehicles"], responses=error_responses(422))
async def visits(
    parking: Parking,
    principal: Annotated[Principal, Depends(require(*READERS))],
    status: Annotated[VisitStatus | None, Query()] = None,
    ticket_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[VisitView]:
    """Visits by status or ticket, latest arrival first, a page at a time. Visits that ended on an
    earlier day are archived: look them up by id."""
    found = await parking.store.visits.find(
        matching(status=status, ticket_id=ticket_id), sort=[("arrived_at", -1), ("_id", 1)], limit=limit, skip=offset
    )
    return [VisitView.of(v, principal) for v in found]


@router.get("/visits/{visit_id}", tags=["vehicles"], responses=error_responses(404))
async def get_visit(
    visit_id: ItemId, parking: Parking, principal: Annotated[Principal, Depends(require(*READERS))]
) -> VisitView:
    return VisitView.of(await parking.visit(visit_id), principal)


@router.post("/visits/{visit_id}/plate", tags=["vehicles"], responses=error_responses(404, 422))
async def correct_plate(
    visit_id: ItemId,
    body: PlateCorrection,
    parking: Parking,
    principal: Annotated[Principal, Depends(require(*GUARDS))],
) -> VisitView:
    """A guard corrects the plate the camera misread (`vehicle.plate_corrected`)."""
    guard_id = as_guard(principal, body.guard_id)
    return VisitView.of(await parking.correct_plate(visit_id, body.plate, guard_id), principal)


@router.get("/lot", tags=["lot"])
async def lot_plan(parking: Parking, _: Annotated[Principal, Depends(require(*READERS))]) -> LotPlan:
    """The lot's zones and spaces, its default zone, and the free spaces a full lot needs before
    it is announced available again."""
    return (await parking.lot()).plan


@router.put("/lot", tags=["lot"], responses=error_responses(422))
async def replan(body: LotPlan, parking: Parking, _: Annotated[Principal, Depends(require("admin"))]) -> OccupancyView:
    """Change the zones, their spaces or the margin: admin only. Crossing full or available by
    it is announced like any other."""
    return OccupancyView.of(await parking.replan(body))


# --- patrol rounds -----------------------------------------------------------------------------------


@router.get("/patrols/schedule", tags=["patrols"])
async def schedule(parking: Parking, _: Annotated[Principal, Depends(require(*READERS))]) -> PatrolSchedule:
    """The checkpoints, and the rounds of a business day with their ordered checkpoints."""
    return await parking.schedule()


@router.put("/patrols/schedule", tags=["patrols"], responses=error_responses(422))
async def reschedule(
    body: PatrolSchedule, parking: Parking, _: Annotated[Principal, Depends(require("admin"))]
) -> PatrolSchedule:
    """Replace the schedule: admin only. Rounds already started or missed keep their route."""
    return await parking.reschedule(body)


@router.post("/patrols", status_code=201, tags=["patrols"], responses=error_responses(409, 422))
async def start_patrol(
    body: StartPatrol, new_id: NewId, parking: Parking, who: Annotated[Principal, Depends(require(*GUARDS))]
) -> PatrolView:
    """A guard sets off on a round: the one due now (or named), else the latest missed one, else a
    round outside the schedule."""
    guard_id = as_guard(who, body.guard_id)
    return PatrolView.of(await parking.start_patrol(new_id, guard_id, body.round_id))


@router.get("/patrols", tags=["patrols"], responses=error_responses(422))
async def rounds(
    parking: Parking,
    _: Annotated[Principal, Depends(require(*READERS))],
    day: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            description="A local date in the hall, `YYYY-MM-DD` (default: today).",
        ),
    ] = None,
) -> list[PatrolView]:
    """A day's rounds, scheduled ones first (`planned` until started or missed), then those walked
    outside the schedule."""
    try:
        wanted = date.fromisoformat(day) if day else parking.today()
    except ValueError:
        raise Invalid(f"day {day!r} is not a date like 2026-11-25") from None
    return [PatrolView.of_round(view) for view in await parking.rounds(wanted)]


@router.get("/patrols/{patrol_id}", tags=["patrols"], responses=error_responses(404))
async def get_patrol(
    patrol_id: ItemId, parking: Parking, _: Annotated[Principal, Depends(require(*READERS))]
) -> PatrolView:
    return PatrolView.of(await parking.patrol(patrol_id))


@router.post("/patrols/{patrol_id}/checkpoints", tags=["patrols"], responses=STEP)
async def scan(
    patrol_id: ItemId, body: ScanCheckpoint, parking: Parking, who: Annotated[Principal, Depends(require(*GUARDS))]
) -> PatrolView:
    """A checkpoint scanned on the round (scanning one again changes nothing)."""
    return PatrolView.of(await parking.scan(patrol_id, body.checkpoint_id, own_round(who)))


@router.post("/patrols/{patrol_id}/finish", tags=["patrols"], responses=STEP)
async def finish_patrol(
    patrol_id: ItemId, parking: Parking, who: Annotated[Principal, Depends(require(*GUARDS))]
) -> PatrolView:
    """The round is over: `patrol.completed`, naming the checkpoints not scanned."""
    return PatrolView.of(await parking.finish_patrol(patrol_id, own_round(who)))


# --- incidents ---------------------------------------------------------------------------------------


@router.post(
    "/incidents",
    status_code=201,
    tags=["incidents"],
    responses={200: {"description": "The same problem is open already: that incident.", "model": IncidentView}}
    | error_responses(422),
)
async def report(
    body: ReportIncident,
    new_id: NewId,
    response: Response,
    parking: Parking,
    principal: Annotated[Principal, Depends(require(*GUARDS))],
) -> IncidentView:
    """A guard reports a problem on a parked car: `tyre.alert` for a flat tyre, else
    `incident.reported`, naming the owner's ticket when the car's visit has one. The same kind
    of problem on the same car, still open, is not reported twice: the answer is that incident (200)."""
    guard_id = as_guard(principal, body.guard_id)
    incident, new = await parking.report(
        new_id, kind=body.kind, guard_id=guard_id, plate_text=body.plate, space=body.space, note=body.note
    )
    if not new:
        response.status_code = 200
    return IncidentView.of(incident, principal)


@router.get("/incidents", tags=["incidents"], responses=error_responses(422))
async def incidents(
    parking: Parking,
    principal: Annotated[Principal, Depends(require(*INCIDENT_READERS))],
    status: Annotated[IncidentStatus | None, Query()] = None,
    kind: Annotated[IncidentKind | None, Query()] = None,
    ticket_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[IncidentView]:
    """Incidents by status, kind or ticket, oldest first, a page at a time (`?status=escalated`
    is what ops take over). Incidents resolved on an earlier day are archived: look them up by id."""
    query = matching(status=status, kind=kind, ticket_id=ticket_id)
    found = await parking.store.incidents.find(query, sort=[("reported_at", 1), ("_id", 1)], limit=limit, skip=offset)
    return [IncidentView.of(i, principal) for i in found]


@router.get("/incidents/{incident_id}", tags=["incidents"], responses=error_responses(404))
async def get_incident(
    incident_id: ItemId, parking: Parking, principal: Annotated[Principal, Depends(require(*INCIDENT_READERS))]
) -> IncidentView:
    return IncidentView.of(await parking.incident(incident_id), principal)


@router.post("/incidents/{incident_id}/acknowledge", tags=["incidents"], responses=STEP)
async def acknowledge(
    incident_id: ItemId,
    parking: Parking,
    principal: Annotated[Principal, Depends(require("guard", "ops"))],
    body: Acknowledge | None = None,
) -> IncidentView:
    """Someone took it in hand: the owner came to the car (a guard says so), or ops take an
    escalation over."""
    incident = await parking.acknowledge(
        incident_id,
        guard_id=as_guard(principal, body.guard_id if body else None),
        by_ops=principal.role != "guard",
        note=body.note if body else None,
    )
    return IncidentView.of(incident, principal)


@router.post("/incidents/{incident_id}/resolve", tags=["incidents"], responses=STEP)
async def resolve(
    incident_id: ItemId,
    body: Resolve,
    parking: Parking,
    principal: Annotated[Principal, Depends(require("guard", "ops"))],
) -> IncidentView:
    """The problem is dealt with: `incident.resolved` with what was done."""
    guard_id = as_guard(principal, body.guard_id)
    return IncidentView.of(await parking.resolve(incident_id, body.resolution, guard_id), principal)
