"""The car park's rules, without I/O: the lot and who is in it, visits, the guards' patrol rounds,
and incidents on parked cars, from a guard's report to their resolution."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from goldenkey.contracts import (
    CloudEvent,
    IncidentAcknowledged,
    IncidentEscalated,
    IncidentReported,
    IncidentResolved,
    LotAvailable,
    LotFull,
    OwnerNotified,
    PatrolCompleted,
    PatrolMissed,
    TyreAlert,
    VehicleArrived,
    VehicleDeparted,
    VehiclePlateCorrected,
)
from goldenkey.contracts.vocabulary import EscalationReason, IncidentKind, VehicleSource
from goldenkey.kit import Aggregate, Conflict, Invalid
from goldenkey.kit.errors import Forbidden

NOTIFY_WITHIN = timedelta(minutes=5)
"""An incident whose owner is not paged within this long is escalated to ops."""
EARLY_START = timedelta(minutes=15)
"""How long before its time a scheduled round may be started."""
LONG_STAY = timedelta(hours=10)
"""A car inside longer than this was probably not seen leaving: a head count lists it."""

Slug = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Z0-9][A-Z0-9-]{0,19}$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
ZoneKind = Literal["standard", "accessible", "ev"]
VisitStatus = Literal["inside", "departed"]
PatrolStatus = Literal["in_progress", "completed", "missed"]
RoundState = Literal["planned", "in_progress", "completed", "incomplete", "missed"]
IncidentStatus = Literal["reported", "escalated", "owner_notified", "acknowledged", "resolved"]
OPEN_INCIDENT: tuple[IncidentStatus, ...] = ("reported", "escalated", "owner_notified", "acknowledged")
SPACE = re.compile(r"^(?P<zone>[A-Z0-9][A-Z0-9-]{0,19})-(?P<number>[0-9]{1,5})$")
"""A space is `<zone>-<number>`: 'B-017', 'A-NORTH-3' (a zone id may have hyphens; the number is last)."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the lot -----------------------------------------------------------------------------------------


class Zone(Config):
    zone_id: Slug
    name_zh: Name
    name_en: Name
    kind: ZoneKind = "standard"
    spaces: int = Field(ge=1, le=10_000)


class LotPlan(Config):
    """The lot as the hall describes it (data/lot.json; `PUT /lot` edits it)."""

    lot_id: Slug
    name_zh: Name
    name_en: Name
    zones: list[Zone] = Field(min_length=1, max_length=50)
    default_zone: Slug
    """Where a car is counted when its arrival names no zone (the gate's camera cannot tell)."""
    reopen_free: int = Field(default=5, ge=1)
    """A full lot is announced available again once this many spaces are free."""

    @model_validator(mode="after")
    def _consistent(self) -> LotPlan:
        ids = [z.zone_id for z in self.zones]
        if len(set(ids)) != len(ids):
            raise ValueError(f"zone ids must be unique: {ids}")
        if self.default_zone not in ids:
            raise ValueError(f"default_zone {self.default_zone!r} is not one of the zones {ids}")
        if self.reopen_free > self.capacity:
            raise ValueError(f"reopen_free {self.reopen_free} is more than the lot's {self.capacity} spaces")
        return self

    @property
    def capacity(self) -> int:
        return sum(zone.spaces for zone in self.zones)


LotCrossing = Literal["full", "available"]


def lot_crossing(was_full: bool, occupied: int, capacity: int, reopen_free: int) -> LotCrossing | None:
    """Whether the lot just became full, or room again, with hysteresis: full once every space is
    taken; available again only once `reopen_free` spaces are free, so a car leaving and another
    coming in at the edge does not flap the sign at the gate."""
    if not was_full and occupied >= capacity:
        return "full"
    if was_full and capacity - occupied >= reopen_free:
        return "available"
    return None


class Entry(BaseModel):
    """A car the lot counts as inside: its open visit."""

    visit_id: str
    zone: str
    since: datetime
    plate: str
    """Kept here too, so a visit whose document a crash left unwritten can be written from it."""


class HeadCount(BaseModel):
    counted: int
    recorded: int
    """What the lot counted before the head count."""
    guard_id: str
    at: datetime


class Lot(Aggregate):
    """The lot (id = its lot_id): its plan, which cars are inside (by plate hash, so a plate is
    inside at most once), a guard's head-count correction, and whether it is announced full."""

    plan: LotPlan
    inside: dict[str, Entry] = Field(default_factory=dict)
    adjustment: int = 0
    """Cars a head count found that the records do not explain (negative: fewer than recorded)."""
    full: bool = False
    last_head_count: HeadCount | None = None

    @property
    def capacity(self) -> int:
        return self.plan.capacity

    @property
    def occupied(self) -> int:
        return max(0, len(self.inside) + self.adjustment)

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.occupied)

    def occupied_by_zone(self) -> Counter[str]:
        return Counter(entry.zone for entry in self.inside.values())

    def zone(self, zone_id: str | None) -> str:
        """The zone an arrival is counted in: the one it names, or the lot's default."""
        if zone_id is None:
            return self.plan.default_zone
        if zone_id not in {z.zone_id for z in self.plan.zones}:
            raise Invalid(f"the lot has no zone {zone_id!r}; its zones are {[z.zone_id for z in self.plan.zones]}")
        return zone_id

    def check_space(self, space: str) -> None:
        """A space is named `<zone>-<number>` within the zone's spaces: 'B-017'."""
        match = SPACE.match(space)
        zones = {z.zone_id: z for z in self.plan.zones}
        zone = zones.get(match.group("zone")) if match else None
        if match is None or zone is None or not 1 <= int(match.group("number")) <= zone.spaces:
            spans = ", ".join(f"{z.zone_id}-1…{z.zone_id}-{z.spaces}" for z in self.plan.zones)
            raise Invalid(f"the lot has no space {space!r}; its spaces are {spans}")

    def enter(self, plate_hash: str, entry: Entry, at: datetime) -> Entry | None:
        """Count a car in. A plate already inside under another visit was not seen leaving: that
        visit is replaced (and returned, to be closed), and the count stays. The same visit again
        (a retried arrival) changes nothing."""
        stale = self.inside.get(plate_hash)
        if stale is not None and stale.visit_id == entry.visit_id:
            return None
        if stale is not None:
            self._gone_unseen(stale)
        self.inside[plate_hash] = entry
        self._announce(at)
        return stale

    def leave(self, plate_hash: str, at: datetime) -> Entry | None:
        """Count a car out; None when it was not counted in. Such a car was missed on its way in:
        if a head count had found it, the correction it made is used up."""
        entry = self.inside.pop(plate_hash, None)
        if entry is None and self.adjustment > 0:
            self.adjustment -= 1
        self._announce(at)
        return entry

    def rekey(self, visit_id: str, old_hash: str, new_hash: str, plate: str, at: datetime) -> Entry | None:
        """A visit's plate was corrected: count it under its new plate. A car already inside under
        that plate is the same car seen twice: its visit is dropped (and returned, to be closed).
        Nothing changes when the old plate is not this visit's any more (replaced meanwhile)."""
        entry = self.inside.get(old_hash)
        if entry is None or entry.visit_id != visit_id:
            return None
        del self.inside[old_hash]
        duplicate = self.inside.get(new_hash)
        if duplicate is not None and duplicate.visit_id != entry.visit_id:
            self._gone_unseen(duplicate)
        else:
            duplicate = None
        self.inside[new_hash] = entry.model_copy(update={"plate": plate})
        self._announce(at)
        return duplicate

    def _gone_unseen(self, entry: Entry) -> None:
        """An entry turned out to count a car that is not there (it left unseen, or was counted
        twice). If a head count since it came in found fewer cars than the records, this was one
        of the cars it missed: that much of its correction is used up, as `leave` does for a car
        it found beyond the records."""
        count = self.last_head_count
        if self.adjustment < 0 and count is not None and entry.since <= count.at:
            self.adjustment += 1

    def head_count(self, counted: int, guard_id: str, at: datetime) -> HeadCount:
        """A guard counted the cars: the lot's count becomes theirs."""
        count = HeadCount(counted=counted, recorded=self.occupied, guard_id=guard_id, at=at)
        self.adjustment = counted - len(self.inside)
        self.last_head_count = count
        self._announce(at)
        return count

    def replan(self, plan: LotPlan, at: datetime) -> None:
        """An admin changed the zones or the margin. Cars counted in a zone that is gone count in
        the default zone."""
        if plan.lot_id != self.plan.lot_id:
            raise Invalid(f"the lot's id is {self.plan.lot_id!r}; it cannot be renamed to {plan.lot_id!r}")
        zones = {z.zone_id for z in plan.zones}
        for entry in self.inside.values():
            if entry.zone not in zones:
                entry.zone = plan.default_zone
        self.plan = plan
        self._announce(at)

    def _announce(self, at: datetime) -> None:
        crossing = lot_crossing(self.full, self.occupied, self.capacity, self.plan.reopen_free)
        if crossing is None:
            return
        self.full = crossing == "full"
        event = LotFull if self.full else LotAvailable
        self.record(event(lot_id=self.id, capacity=self.capacity, occupied=self.occupied), at=at)


# --- visits ------------------------------------------------------------------------------------------


class Correction(BaseModel):
    previous_plate_masked: str
    plate_masked: str
    guard_id: str | None
    at: datetime


class Visit(Aggregate):
    """One car's stay: from its arrival (when one was seen) to its departure. The raw plate stays
    in this service; events carry its keyed hash and masked form."""

    plate: str
    plate_hash: str
    plate_masked: str
    zone: str | None = None
    status: VisitStatus = "inside"
    arrived_at: datetime | None = None
    """None for a departure no arrival was recorded for."""
    departed_at: datetime | None = None
    arrival_source: VehicleSource | None = None
    departure_source: VehicleSource | None = None
    unseen: bool = False
    """Nobody saw it leave (its plate came in again, or the lot no longer counted it)."""
    ticket_id: str | None = None
    corrections: list[Correction] = Field(default_factory=list)

    @property
    def correlation(self) -> str:
        return self.ticket_id or self.id

    @classmethod
    def arrive(
        cls,
        *,
        visit_id: str,
        plate: str,
        plate_hash: str,
        plate_masked: str,
        zone: str,
        source: VehicleSource,
        at: datetime,
        occupied: int,
        ticket_id: str | None,
    ) -> Visit:
        visit = cls(
            id=visit_id,
            plate=plate,
            plate_hash=plate_hash,
            plate_masked=plate_masked,
            zone=zone,
            arrived_at=at,
            arrival_source=source,
            ticket_id=ticket_id,
        )
        visit.record(
            VehicleArrived(
                visit_id=visit_id,
                plate_hash=plate_hash,
                plate_masked=plate_masked,
                arrived_at=at,
                manual=source == "guard",
                occupied=occupied,
                zone=zone,
                ticket_id=ticket_id,
            ),
            at=at,
            correlation_id=visit.correlation,
        )
        return visit

    @classmethod
    def departed_unannounced(
        cls,
        *,
        visit_id: str,
        plate: str,
        plate_hash: str,
        plate_masked: str,
        source: VehicleSource,
        at: datetime,
        occupied: int,
    ) -> Visit:
        """A car left that no arrival was recorded for: kept, so a head count can explain it."""
        visit = cls(
            id=visit_id,
            plate=plate,
            plate_hash=plate_hash,
            plate_masked=plate_masked,
            status="departed",
            departed_at=at,
            departure_source=source,
        )
        visit.record(visit._departed(occupied), at=at, correlation_id=visit.correlation)
        return visit

    def depart(self, at: datetime, source: VehicleSource | None, occupied: int, *, unseen: bool = False) -> None:
        """The car left (or, `unseen`, is known to have left since it came in again). A visit that
        is over already stays as it is: a retried departure."""
        if self.status == "departed":
            return
        self.status, self.departed_at, self.departure_source, self.unseen = "departed", at, source, unseen
        self.record(self._departed(occupied), at=at, correlation_id=self.correlation)

    def _departed(self, occupied: int) -> VehicleDeparted:
        assert self.departed_at is not None
        return VehicleDeparted(
            visit_id=self.id,
            plate_hash=self.plate_hash,
            plate_masked=self.plate_masked,
            departed_at=self.departed_at,
            arrived_at=self.arrived_at,
            ticket_id=self.ticket_id,
            manual=self.departure_source == "guard",
            occupied=occupied,
            unseen=self.unseen,
        )

    def link(self, ticket_id: str) -> None:
        """The owner took a ticket: an incident on this car can reach them through it."""
        self.ticket_id = ticket_id

    def correct_plate(
        self,
        *,
        plate: str,
        plate_hash: str,
        plate_masked: str,
        guard_id: str | None,
        at: datetime,
        ticket_id: str | None,
    ) -> None:
        """A guard typed the plate the camera misread. The visit's ticket is the one of the
        corrected plate (if it has one; else it keeps its own)."""
        if plate_hash == self.plate_hash:
            return
        previous_hash, previous_masked = self.plate_hash, self.plate_masked
        self.corrections.append(
            Correction(previous_plate_masked=previous_masked, plate_masked=plate_masked, guard_id=guard_id, at=at)
        )
        self.plate, self.plate_hash, self.plate_masked = plate, plate_hash, plate_masked
        self.ticket_id = ticket_id or self.ticket_id
        self.record(
            VehiclePlateCorrected(
                visit_id=self.id,
                plate_hash=plate_hash,
                plate_masked=plate_masked,
                previous_plate_hash=previous_hash,
                previous_plate_masked=previous_masked,
                corrected_at=at,
                guard_id=guard_id,
                ticket_id=self.ticket_id,
            ),
            at=at,
            correlation_id=self.correlation,
        )


class PlateTicket(Aggregate):
    """A ticket issued with a plate (id = ticket_id): how a car arriving after it finds its owner."""

    plate_hash: str
    day: str
    issued_at: datetime


def explains_a_lower_count(visit: Visit, now: datetime, day_start: datetime) -> bool:
    """An open visit that is probably over: it began before today, or long ago."""
    return visit.arrived_at is not None and (visit.arrived_at < day_start or now - visit.arrived_at > LONG_STAY)


# --- patrol rounds -----------------------------------------------------------------------------------


class Checkpoint(Config):
    checkpoint_id: Slug
    name_zh: Name
    name_en: Name


class Round(Config):
    round_id: Slug
    at: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    """Local time in the hall, `HH:MM`."""
    checkpoints: list[Slug] | None = None
    """In the order walked; all of the schedule's checkpoints, in their order, unless given."""


class PatrolSchedule(Config):
    """The guards' rounds (data/patrols.json; `PUT /patrols/schedule` edits it)."""

    checkpoints: list[Checkpoint] = Field(min_length=1, max_length=100)
    rounds: list[Round] = Field(max_length=96)
    start_within_minutes: int = Field(default=5, ge=1, le=60)

    @model_validator(mode="after")
    def _consistent(self) -> PatrolSchedule:
        known = [c.checkpoint_id for c in self.checkpoints]
        if len(set(known)) != len(known):
            raise ValueError(f"checkpoint ids must be unique: {known}")
        rounds = [r.round_id for r in self.rounds]
        if len(set(rounds)) != len(rounds):
            raise ValueError(f"round ids must be unique: {rounds}")
        for r in self.rounds:
            unknown = [c for c in r.checkpoints or [] if c not in known]
            if unknown:
                raise ValueError(f"round {r.round_id} names unknown checkpoints {unknown}")
            if r.checkpoints is not None and not r.checkpoints:
                raise ValueError(f"round {r.round_id} has no checkpoints")
        return self

    def route(self, round_id: str | None) -> list[str]:
        """The checkpoints of a round, in order; every checkpoint for a round outside the schedule."""
        for r in self.rounds:
            if r.round_id == round_id and r.checkpoints:
                return list(r.checkpoints)
        return [c.checkpoint_id for c in self.checkpoints]

    @property
    def start_within(self) -> timedelta:
        return timedelta(minutes=self.start_within_minutes)


class Schedule(Aggregate):
    """The schedule in force (one document, id `SCHEDULE_ID`)."""

    plan: PatrolSchedule


SCHEDULE_ID = "rounds"


@dataclass(frozen=True)
class ScheduledRound:
    round_id: str
    patrol_id: str
    scheduled_at: datetime


def rounds_of_day(schedule: PatrolSchedule, day: date, zone: ZoneInfo, working: bool) -> list[ScheduledRound]:
    """The rounds due on a day (none on a day the hall is closed), earliest first."""
    if not working:
        return []
    rounds = [
        ScheduledRound(
            r.round_id,
            f"{day.isoformat()}-{r.round_id}",
            datetime.combine(day, time.fromisoformat(r.at), zone).astimezone(UTC),
        )
        for r in schedule.rounds
    ]
    return sorted(rounds, key=lambda r: r.scheduled_at)


def round_is_missed(scheduled: ScheduledRound, started: bool, now: datetime, start_within: timedelta) -> bool:
    """A round not started within `start_within` of its time is missed."""
    return not started and now >= scheduled.scheduled_at + start_within


def round_to_start(
    rounds: Iterable[ScheduledRound], patrols: dict[str, Patrol], now: datetime, start_within: timedelta
) -> ScheduledRound | None:
    """Which scheduled round a guard starting now walks: the one due now (from `EARLY_START`
    before its time to `start_within` after), else the latest one missed and not yet walked,
    else none (a round outside the schedule)."""
    open_rounds = [r for r in rounds if (p := patrols.get(r.patrol_id)) is None or p.status == "missed"]
    due = [r for r in open_rounds if r.scheduled_at - EARLY_START <= now < r.scheduled_at + start_within]
    if due:
        return due[0]
    missed = [r for r in open_rounds if r.scheduled_at + start_within <= now]
    return missed[-1] if missed else None


class Scan(BaseModel):
    checkpoint_id: str
    at: datetime


class Patrol(Aggregate):
    """One patrol round: scheduled (id `<day>-<round_id>`) or walked outside the schedule."""

    day: str
    round_id: str | None = None
    scheduled_at: datetime | None = None
    route: list[str]
    status: PatrolStatus = "in_progress"
    guard_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    missed_at: datetime | None = None
    scans: list[Scan] = Field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        patrol_id: str,
        day: date,
        route: list[str],
        guard_id: str,
        at: datetime,
        scheduled: ScheduledRound | None = None,
    ) -> Patrol:
        return cls(
            id=patrol_id,
            day=day.isoformat(),
            round_id=scheduled.round_id if scheduled else None,
            scheduled_at=scheduled.scheduled_at if scheduled else None,
            route=route,
            guard_id=guard_id,
            started_at=at,
        )

    def must_be_walked_by(self, guard_id: str) -> None:
        """A guard's own handset scans and finishes their own round, not a colleague's."""
        if self.guard_id != guard_id:
            walker = f"walked by {self.guard_id}" if self.guard_id else "not started by anyone"
            raise Forbidden(f"patrol round {self.id} is {walker}: {guard_id} may not scan or finish it")

    @classmethod
    def missed(cls, *, scheduled: ScheduledRound, day: date, route: list[str], at: datetime) -> Patrol:
        patrol = cls(
            id=scheduled.patrol_id,
            day=day.isoformat(),
            round_id=scheduled.round_id,
            scheduled_at=scheduled.scheduled_at,
            route=route,
            status="missed",
            missed_at=at,
        )
        patrol.record(
            PatrolMissed(patrol_id=patrol.id, scheduled_at=scheduled.scheduled_at, round_id=scheduled.round_id), at=at
        )
        return patrol

    @property
    def late(self) -> bool:
        """Walked after it had been reported missed."""
        return self.missed_at is not None and self.started_at is not None

    def start_late(self, guard_id: str, at: datetime) -> None:
        """A guard walks a round that was reported missed: better late than never."""
        if self.status != "missed":
            raise Conflict(f"round {self.id} is {self.status.replace('_', ' ')}: it was started at {self.started_at}")
        self.status, self.guard_id, self.started_at = "in_progress", guard_id, at

    def scan(self, checkpoint_id: str, at: datetime) -> None:
        """A checkpoint scanned on the round (again: nothing new)."""
        if self.status != "in_progress":
            raise Conflict(
                f"round {self.id} is {self.status.replace('_', ' ')}: checkpoints are scanned on a round in progress"
            )
        if checkpoint_id not in self.route:
            raise Invalid(f"checkpoint {checkpoint_id!r} is not on round {self.id}; its checkpoints are {self.route}")
        if checkpoint_id not in self.scanned:
            self.scans.append(Scan(checkpoint_id=checkpoint_id, at=at))

    @property
    def scanned(self) -> list[str]:
        return [s.checkpoint_id for s in self.scans]

    @property
    def missing(self) -> list[str]:
        return [c for c in self.route if c not in self.scanned]

    def finish(self, at: datetime) -> None:
        """The guard is back: the round is reported, with the checkpoints not scanned."""
        if self.status != "in_progress":
            raise Conflict(
                f"round {self.id} is {self.status.replace('_', ' ')}: only a round in progress can be finished"
            )
        assert self.guard_id is not None
        assert self.started_at is not None
        self.status, self.finished_at = "completed", at
        self.record(
            PatrolCompleted(
                patrol_id=self.id,
                guard_id=self.guard_id,
                started_at=self.started_at,
                finished_at=at,
                complete=not self.missing,
                checkpoints_scanned=self.scanned,
                missing_checkpoints=self.missing,
                round_id=self.round_id,
                scheduled_at=self.scheduled_at,
                late=self.late,
            ),
            at=at,
        )

    @property
    def state(self) -> RoundState:
        if self.status == "completed":
            return "incomplete" if self.missing else "completed"
        return self.status


# --- incidents ---------------------------------------------------------------------------------------

Step = Literal["notify", "escalate", "acknowledge", "resolve"]
STEPS: dict[IncidentStatus, frozenset[Step]] = {
    "reported": frozenset({"notify", "escalate", "acknowledge", "resolve"}),
    "escalated": frozenset({"notify", "acknowledge", "resolve"}),
    "owner_notified": frozenset({"acknowledge", "resolve"}),
    "acknowledged": frozenset({"resolve"}),
    "resolved": frozenset(),
}
"""The incident's lifecycle: reported → owner_notified → acknowledged → resolved; escalated when the
owner is not paged in time (a page may still come); anyone on the spot may resolve it at once."""
STEP_WORDS: dict[Step, str] = {
    "notify": "have its owner notified",
    "escalate": "be escalated",
    "acknowledge": "be acknowledged",
    "resolve": "be resolved",
}


def may(status: IncidentStatus, step: Step) -> bool:
    return step in STEPS[status]


class Incident(Aggregate):
    """A problem a guard found on a parked car, and how the hall dealt with it."""

    kind: IncidentKind
    plate: str | None = None
    plate_hash: str | None = None
    plate_masked: str | None = None
    space: str | None = None
    note: str | None = None
    guard_id: str
    visit_id: str | None = None
    ticket_id: str | None = None
    status: IncidentStatus = "reported"
    reported_at: datetime
    notified_at: datetime | None = None
    window_id: str | None = None
    escalated_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolved_by: str | None = None
    assistance_id: str | None = None

    @property
    def correlation(self) -> str:
        return self.ticket_id or self.id

    @property
    def awaits_someone(self) -> bool:
        """Nobody has taken it in hand yet: the owner is not paged, no one acknowledged it."""
        return self.status in ("reported", "escalated")

    @classmethod
    def report(
        cls,
        *,
        incident_id: str,
        kind: IncidentKind,
        guard_id: str,
        at: datetime,
        plate: str | None = None,
        plate_hash: str | None = None,
        plate_masked: str | None = None,
        space: str | None = None,
        note: str | None = None,
        visit_id: str | None = None,
        ticket_id: str | None = None,
    ) -> Incident:
        if plate is None and space is None:
            raise Invalid("an incident names the car's plate, or the space it is parked in")
        incident = cls(
            id=incident_id,
            kind=kind,
            plate=plate,
            plate_hash=plate_hash,
            plate_masked=plate_masked,
            space=space,
            note=note,
            guard_id=guard_id,
            visit_id=visit_id,
            ticket_id=ticket_id,
            reported_at=at,
        )
        event = TyreAlert if kind == "flat_tyre" else IncidentReported
        incident.record(
            event(
                incident_id=incident_id,
                kind=kind,
                space=space,
                plate_masked=plate_masked,
                plate_hash=plate_hash,
                ticket_id=ticket_id,
                visit_id=visit_id,
                guard_id=guard_id,
                reported_at=at,
                note=note,
            ),
            at=at,
            correlation_id=incident.correlation,
        )
        return incident

    def _check(self, step: Step) -> None:
        if not may(self.status, step):
            state = self.status.replace("_", " ")
            raise Conflict(f"incident {self.id} is {state}: it cannot {STEP_WORDS[step]}")

    def owner_paged(self, *, ticket_id: str, window_id: str | None, at: datetime, cause: CloudEvent) -> bool:
        """The queue paged the owner (at their window, or on the display). Whether that was news:
        a page after someone took the incident in hand changes nothing."""
        if not may(self.status, "notify"):
            return False
        self.status, self.notified_at, self.window_id = "owner_notified", at, window_id
        self.ticket_id = self.ticket_id or ticket_id
        self.record(
            OwnerNotified(
                incident_id=self.id,
                ticket_id=ticket_id,
                window_id=window_id,
                notify_s=(at - self.reported_at).total_seconds(),
            ),
            at=at,
            causation=cause,
            correlation_id=self.correlation,
        )
        return True

    def escalate_if_overdue(self, at: datetime) -> bool:
        """Not paged within `NOTIFY_WITHIN`: ops take over. Whether it was escalated now."""
        if self.status != "reported" or at - self.reported_at < NOTIFY_WITHIN:
            return False
        reason: EscalationReason = "not_paged" if self.ticket_id else "no_ticket"
        self.status, self.escalated_at = "escalated", at
        self.record(
            IncidentEscalated(
                incident_id=self.id,
                kind=self.kind,
                waited_s=(at - self.reported_at).total_seconds(),
                ticket_id=self.ticket_id,
                reason=reason,
            ),
            at=at,
            correlation_id=self.correlation,
        )
        return True

    def acknowledge(self, at: datetime, *, guard_id: str | None, by_ops: bool, note: str | None) -> None:
        """Someone took it in hand: the owner came to the car, or ops took an escalation over."""
        self._check("acknowledge")
        self.status, self.acknowledged_at = "acknowledged", at
        self.acknowledged_by = guard_id or ("ops" if by_ops else None)
        self.record(
            IncidentAcknowledged(
                incident_id=self.id, ticket_id=self.ticket_id, guard_id=guard_id, by_ops=by_ops, note=note
            ),
            at=at,
            correlation_id=self.correlation,
        )

    def resolve(
        self,
        at: datetime,
        resolution: str,
        *,
        guard_id: str | None = None,
        assistance_id: str | None = None,
        cause: CloudEvent | None = None,
    ) -> None:
        self._check("resolve")
        self.status, self.resolved_at, self.resolution = "resolved", at, resolution
        self.resolved_by, self.assistance_id = guard_id, assistance_id
        self.record(
            IncidentResolved(
                incident_id=self.id,
                resolution=resolution,
                ticket_id=self.ticket_id,
                kind=self.kind,
                assistance_id=assistance_id,
                resolve_s=(at - self.reported_at).total_seconds(),
                guard_id=guard_id or self.guard_id,
            ),
            at=at,
            causation=cause,
            correlation_id=self.correlation,
        )

    @property
    def resolve_s(self) -> float | None:
        return None if self.resolved_at is None else (self.resolved_at - self.reported_at).total_seconds()

    @property
    def notify_s(self) -> float | None:
        return None if self.notified_at is None else (self.notified_at - self.reported_at).total_seconds()


def same_problem(incident: Incident, kind: IncidentKind, plate_hash: str | None, space: str | None) -> bool:
    """A second report of an open incident: the same kind on the same car (or space, without a plate)."""
    if incident.status not in OPEN_INCIDENT or incident.kind != kind:
        return False
    if plate_hash is not None:
        return incident.plate_hash == plate_hash
    return incident.plate_hash is None and incident.space == space
