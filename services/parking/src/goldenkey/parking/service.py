"""The parking service's use cases: what the gate, a guard, ops or an event asks of it, on the rules.

The lot's document is the authority on which cars are inside: every arrival, departure and
correction is decided in one versioned write of it, so concurrent ones never miscount. A visit's
own document (with its events) is written next; a crash between the two is mended by the
watchdog, which brings visits in line with the lot (`mend_visits`).
"""

from __future__ import annotations

import contextlib
import time as monotonic
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from goldenkey.contracts import AssistanceCompleted, CloudEvent, TicketIssued, TicketPaged
from goldenkey.contracts.vocabulary import IncidentKind, VehicleSource
from goldenkey.kit import AlreadyExists, BusinessCalendar, Clock, Invalid, Missing, NotFound
from goldenkey.kit.pii import InvalidPlate, mask_plate, normalise_plate, plate_hash
from goldenkey.parking.domain import (
    NOTIFY_WITHIN,
    SCHEDULE_ID,
    Entry,
    HeadCount,
    Incident,
    Lot,
    LotPlan,
    Patrol,
    PatrolSchedule,
    PlateTicket,
    RoundState,
    Schedule,
    ScheduledRound,
    Visit,
    explains_a_lower_count,
    round_is_missed,
    round_to_start,
    rounds_of_day,
    same_problem,
)
from goldenkey.parking.metrics import ParkingMetrics
from goldenkey.parking.store import ParkingStore

MEND_AFTER = timedelta(minutes=1)
"""A lot entry without its visit document is mended only once it is this old (its arrival may
still be writing it)."""
LOT_ATTEMPTS = 200
"""Every gate event of every instance writes the one lot document: a write that lost to another
instance tries again this often before the request gives up with a 409."""
ARCHIVE_EVERY_S = 600.0
"""How often (at most) a sweep moves what earlier days closed into the archive."""


@dataclass(frozen=True)
class Plate:
    """A plate as typed or read, normalised, with the forms events carry."""

    raw: str
    hash: str
    masked: str


@dataclass(frozen=True)
class HeadCountResult:
    count: HeadCount
    lot: Lot
    long_stays: list[Visit]
    """Cars recorded inside that probably left unseen: they explain a lower count."""
    departures_without_arrival: list[Visit]
    """Cars that left today without a recorded arrival: the camera misses a higher count comes from."""


@dataclass(frozen=True)
class RoundView:
    scheduled: ScheduledRound | None
    patrol: Patrol | None
    state: RoundState
    route: list[str]


class ParkingService:
    def __init__(
        self,
        store: ParkingStore,
        clock: Clock,
        calendar: BusinessCalendar,
        metrics: ParkingMetrics,
        pii_key: str,
    ) -> None:
        self.store = store
        self.clock = clock
        self.calendar = calendar
        self.metrics = metrics
        self.pii_key = pii_key
        self._archive_next = 0.0

    def plate(self, text: str) -> Plate:
        try:
            raw = normalise_plate(text)
        except InvalidPlate as error:
            raise Invalid(str(error)) from None
        return Plate(raw, plate_hash(self.pii_key, raw), mask_plate(raw))

    async def lot(self) -> Lot:
        found = await self.store.lot()
        if found is None:  # not seeded yet (the database was away at start): seed now
            await self.store.seed()
            found = await self.store.lots.require(self.store.lot_id)
        return found

    async def _update_lot(self, change: Callable[[Lot], None]) -> Lot:
        """One versioned write of the lot (seeded first if the database was away at start)."""
        try:
            return await self.store.lots.update(self.store.lot_id, change, attempts=LOT_ATTEMPTS)
        except NotFound:
            await self.store.seed()
            return await self.store.lots.update(self.store.lot_id, change, attempts=LOT_ATTEMPTS)

    def today(self) -> date:
        return self.calendar.business_day(self.clock.now())

    # --- the gate ----------------------------------------------------------------------------------

    async def arrive(self, visit_id: str, plate_text: str, source: VehicleSource, zone: str | None) -> Visit:
        """A car came in: counted in the lot (closing the visit its plate left open, if any), then
        its visit written with `vehicle.arrived`, linked to the owner's ticket if one came first."""
        existing = await self.store.visits.get(visit_id)
        if existing is not None:
            return existing
        plate = self.plate(plate_text)
        now = self.clock.now()
        entries: list[Entry] = []
        replaced: list[Entry | None] = []

        def enter(lot: Lot) -> None:
            entries.append(Entry(visit_id=visit_id, zone=lot.zone(zone), since=now, plate=plate.raw))
            replaced.append(lot.enter(plate.hash, entries[-1], now))

        occupied = (await self._update_lot(enter)).occupied
        entry, stale = entries[-1], replaced[-1]
        if stale is not None:
            await self._close_unseen(stale.visit_id, now, occupied)
        visit, new = await self._open_visit(entry, source, occupied)
        if new:
            self.metrics.arrivals.labels(source).inc()
        return visit

    async def depart(self, departure_id: str, plate_text: str, source: VehicleSource) -> tuple[Visit, bool]:
        """A car left: counted out and its visit closed with `vehicle.departed`. One with no
        recorded arrival is recorded as a visit of its own (`matched` false), for reconciling."""
        plate = self.plate(plate_text)
        existing = await self.store.visits.get(departure_id)
        if existing is not None:  # a retried departure that had no arrival
            return existing, False
        now = self.clock.now()
        left: list[Entry | None] = []

        def leave(lot: Lot) -> None:
            left.append(lot.leave(plate.hash, now))

        occupied = (await self._update_lot(leave)).occupied
        entry = left[-1]
        if entry is not None:
            visit = await self._visit_of(entry)
            visit = await self.store.visits.update(visit.id, lambda v: v.depart(now, source, occupied))
            self.metrics.departures.labels(source, "true").inc()
            return visit, True
        visit = Visit.departed_unannounced(
            visit_id=departure_id,
            plate=plate.raw,
            plate_hash=plate.hash,
            plate_masked=plate.masked,
            source=source,
            at=now,
            occupied=occupied,
        )
        try:
            await self.store.visits.add(visit)
        except AlreadyExists:
            return await self.store.visits.require(departure_id), False
        self.metrics.departures.labels(source, "false").inc()
        return visit, False

    async def _visit_of(self, entry: Entry) -> Visit:
        """The visit of a lot entry, written from the entry if a crash left it unwritten."""
        found = await self.store.visits.get(entry.visit_id)
        if found is not None:
            return found
        visit, _ = await self._open_visit(entry, "camera", (await self.lot()).occupied)
        return visit

    async def _open_visit(self, entry: Entry, source: VehicleSource, occupied: int) -> tuple[Visit, bool]:
        """Write the visit of a car the lot counts, with `vehicle.arrived`, linked to the day's
        ticket with its plate; whether it is new (a retry, or the watchdog, may have written it)."""
        plate = self.plate(entry.plate)
        visit = Visit.arrive(
            visit_id=entry.visit_id,
            plate=plate.raw,
            plate_hash=plate.hash,
            plate_masked=plate.masked,
            zone=entry.zone,
            source=source,
            at=entry.since,
            occupied=occupied,
            ticket_id=await self.store.ticket_of_plate(plate.hash, self.calendar.business_day(entry.since)),
        )
        try:
            return await self.store.visits.add(visit), True
        except AlreadyExists:
            return await self.store.visits.require(entry.visit_id), False

    async def _close_unseen(self, visit_id: str, at: datetime, occupied: int) -> None:
        with contextlib.suppress(NotFound):  # never written (a crash): nothing to close
            await self.store.visits.update(visit_id, lambda v: v.depart(at, None, occupied, unseen=True))

    async def visit(self, visit_id: str) -> Visit:
        found = await self.store.visits.get(visit_id) or await self.store.visits.find_archived(visit_id)
        if found is None:
            raise Missing(f"no visit {visit_id}")
        return found

    async def correct_plate(self, visit_id: str, plate_text: str, guard_id: str) -> Visit:
        """A guard typed the plate the camera misread: the lot counts the car under it, and the
        visit takes it (and the ticket issued with it, if any)."""
        visit = await self.visit(visit_id)
        plate = self.plate(plate_text)
        if plate.hash == visit.plate_hash:
            return visit
        now = self.clock.now()
        if visit.status == "inside":
            merged: list[Entry | None] = []

            def rekey(lot: Lot) -> None:
                merged.append(lot.rekey(visit_id, visit.plate_hash, plate.hash, plate.raw, now))

            lot = await self._update_lot(rekey)
            duplicate = merged[-1]
            if duplicate is not None:  # the corrected plate was inside already: one car, seen twice
                await self._close_unseen(duplicate.visit_id, now, lot.occupied)
        ticket = await self.store.ticket_of_plate(plate.hash, self.today())
        return await self.store.visits.update(
            visit_id,
            lambda v: v.correct_plate(
                plate=plate.raw,
                plate_hash=plate.hash,
                plate_masked=plate.masked,
                guard_id=guard_id,
                at=now,
                ticket_id=ticket,
            ),
        )

    async def head_count(self, counted: int, guard_id: str) -> HeadCountResult:
        """A guard counted the cars: the lot's count becomes theirs, with the visits that explain
        the difference."""
        now = self.clock.now()
        counts: list[HeadCount] = []

        def count(lot: Lot) -> None:
            counts.append(lot.head_count(counted, guard_id, now))

        lot = await self._update_lot(count)
        day_start, _ = self.calendar.day_bounds(self.today())
        return HeadCountResult(
            count=counts[-1],
            lot=lot,
            long_stays=[v for v in await self.store.inside() if explains_a_lower_count(v, now, day_start)],
            departures_without_arrival=await self.store.departures_without_arrival(day_start),
        )

    async def replan(self, plan: LotPlan) -> Lot:
        now = self.clock.now()
        return await self._update_lot(lambda lot: lot.replan(plan, now))

    # --- tickets -----------------------------------------------------------------------------------

    async def ticket_issued(self, envelope: CloudEvent, ticket: TicketIssued) -> None:
        """A ticket carries a plate: remember it for the car's arrival, and link a car inside now."""
        if ticket.plate_hash is None:
            return
        day = self.calendar.business_day(ticket.issued_at)
        with contextlib.suppress(AlreadyExists):
            await self.store.plate_tickets.add(
                PlateTicket(
                    id=ticket.ticket_id, plate_hash=ticket.plate_hash, day=day.isoformat(), issued_at=ticket.issued_at
                )
            )
        lot = await self.lot()
        entry = lot.inside.get(ticket.plate_hash)
        if entry is not None and await self.store.visits.get(entry.visit_id) is not None:
            await self.store.visits.update(entry.visit_id, lambda v: v.link(ticket.ticket_id), cause=envelope)

    # --- patrols -----------------------------------------------------------------------------------

    async def schedule(self) -> PatrolSchedule:
        return await self.store.schedule()

    async def reschedule(self, plan: PatrolSchedule) -> PatrolSchedule:
        """An admin changed the rounds: rounds already started or missed keep what they had."""
        found = await self.store.schedules.get(SCHEDULE_ID)
        if found is None:
            await self.store.seed()

        def replace(schedule: Schedule) -> None:
            schedule.plan = plan

        updated = await self.store.schedules.update(SCHEDULE_ID, replace)
        return updated.plan

    def _working(self, day: date) -> bool:
        return day.weekday() in self.calendar.hours.days

    async def rounds(self, day: date) -> list[RoundView]:
        """A day's rounds as the guards' handsets and ops see them: each scheduled round with its
        patrol (or `planned`), then the rounds walked outside the schedule."""
        schedule = await self.schedule()
        patrols = {p.id: p for p in await self.store.patrols_of_day(day)}
        views = []
        for scheduled in rounds_of_day(schedule, day, self.calendar.zone, self._working(day)):
            patrol = patrols.pop(scheduled.patrol_id, None)
            route = patrol.route if patrol else schedule.route(scheduled.round_id)
            views.append(RoundView(scheduled, patrol, patrol.state if patrol else "planned", route))
        for patrol in patrols.values():
            views.append(RoundView(None, patrol, patrol.state, patrol.route))
        return views

    async def round_states(self, at: datetime) -> Counter[str]:
        """Today's scheduled rounds by state."""
        return Counter(view.state for view in await self.rounds(self.calendar.business_day(at)) if view.scheduled)

    async def start_patrol(self, patrol_id: str, guard_id: str, round_id: str | None) -> Patrol:
        """A guard sets off: on the round due now (or the one named), or else outside the schedule."""
        existing = await self.store.patrols.get(patrol_id)
        if existing is not None:  # a retried start of a round outside the schedule
            return existing
        now, day = self.clock.now(), self.today()
        schedule = await self.schedule()
        scheduled_rounds = rounds_of_day(schedule, day, self.calendar.zone, self._working(day))
        patrols = {p.id: p for p in await self.store.patrols_of_day(day)}
        if round_id is not None:
            chosen = next((r for r in scheduled_rounds if r.round_id == round_id), None)
            if chosen is None:
                known = [r.round_id for r in scheduled_rounds]
                raise Invalid(f"no round {round_id!r} today; today's rounds are {known}")
        else:
            chosen = round_to_start(scheduled_rounds, patrols, now, schedule.start_within)
        if chosen is None:
            patrol = Patrol.start(patrol_id=patrol_id, day=day, route=schedule.route(None), guard_id=guard_id, at=now)
            return await self.store.patrols.add(patrol)
        found = patrols.get(chosen.patrol_id)
        if found is not None:
            return await self.store.patrols.update(found.id, lambda p: p.start_late(guard_id, now))
        patrol = Patrol.start(
            patrol_id=chosen.patrol_id,
            day=day,
            route=schedule.route(chosen.round_id),
            guard_id=guard_id,
            at=now,
            scheduled=chosen,
        )
        try:
            return await self.store.patrols.add(patrol)
        except AlreadyExists:  # missed, or started by another guard, meanwhile
            return await self.store.patrols.update(chosen.patrol_id, lambda p: p.start_late(guard_id, now))

    async def patrol(self, patrol_id: str) -> Patrol:
        found = await self.store.patrols.get(patrol_id)
        if found is None:
            raise Missing(f"no patrol round {patrol_id}")
        return found

    async def scan(
        self, patrol_id: str, checkpoint_id: str, check: Callable[[Patrol], None] = lambda _: None
    ) -> Patrol:
        await self.patrol(patrol_id)

        def scan(p: Patrol) -> None:
            check(p)
            p.scan(checkpoint_id, self.clock.now())

        return await self.store.patrols.update(patrol_id, scan)

    async def finish_patrol(self, patrol_id: str, check: Callable[[Patrol], None] = lambda _: None) -> Patrol:
        await self.patrol(patrol_id)

        def finish(p: Patrol) -> None:
            check(p)
            p.finish(self.clock.now())

        patrol = await self.store.patrols.update(patrol_id, finish)
        self.metrics.patrols_completed.labels("false" if patrol.missing else "true").inc()
        return patrol

    # --- incidents ---------------------------------------------------------------------------------

    async def report(
        self,
        incident_id: str,
        *,
        kind: IncidentKind,
        guard_id: str,
        plate_text: str | None,
        space: str | None,
        note: str | None,
    ) -> tuple[Incident, bool]:
        """A guard reports a problem on a parked car. The car's visit names the owner's ticket, so
        the queue can page them; the guard never learns who they are. A second report of the same
        open problem returns the first (`False`: nothing new)."""
        existing = await self.store.incidents.get(incident_id)
        if existing is not None:
            return existing, False
        if plate_text is None and space is None:
            raise Invalid("an incident names the car's plate, or the space it is parked in")
        plate = self.plate(plate_text) if plate_text is not None else None
        lot = await self.lot()
        if space is not None:
            lot.check_space(space)
        plate_key = plate.hash if plate else None
        for incident in await self.store.open_incidents_of(plate_key):
            if same_problem(incident, kind, plate_key, space):
                return incident, False
        visit_id = ticket_id = None
        if plate is not None:
            entry = lot.inside.get(plate.hash)
            visit = await self.store.visits.get(entry.visit_id) if entry else None
            visit_id = entry.visit_id if entry else None
            ticket_id = (visit.ticket_id if visit else None) or await self.store.ticket_of_plate(
                plate.hash, self.today()
            )
        incident = Incident.report(
            incident_id=incident_id,
            kind=kind,
            guard_id=guard_id,
            at=self.clock.now(),
            plate=plate.raw if plate else None,
            plate_hash=plate.hash if plate else None,
            plate_masked=plate.masked if plate else None,
            space=space,
            note=note,
            visit_id=visit_id,
            ticket_id=ticket_id,
        )
        try:
            await self.store.incidents.add(incident)
        except AlreadyExists:
            return await self.store.incidents.require(incident_id), False
        self.metrics.incidents.labels(kind).inc()
        return incident, True

    async def incident(self, incident_id: str) -> Incident:
        found = await self.store.incidents.get(incident_id) or await self.store.incidents.find_archived(incident_id)
        if found is None:
            raise Missing(f"no incident {incident_id}")
        return found

    async def acknowledge(self, incident_id: str, *, guard_id: str | None, by_ops: bool, note: str | None) -> Incident:
        await self.incident(incident_id)
        return await self.store.incidents.update(
            incident_id, lambda i: i.acknowledge(self.clock.now(), guard_id=guard_id, by_ops=by_ops, note=note)
        )

    async def resolve(self, incident_id: str, resolution: str, guard_id: str | None) -> Incident:
        await self.incident(incident_id)
        incident = await self.store.incidents.update(
            incident_id, lambda i: i.resolve(self.clock.now(), resolution, guard_id=guard_id)
        )
        self._resolved(incident)
        return incident

    def _resolved(self, incident: Incident) -> None:
        if incident.resolve_s is not None:
            self.metrics.resolve.labels(incident.kind).observe(incident.resolve_s)

    async def ticket_paged(self, envelope: CloudEvent, page: TicketPaged) -> None:
        """The queue paged the owner about one of our incidents: they are notified."""
        if page.incident_id is None or await self.store.incidents.get(page.incident_id) is None:
            return
        news: list[bool] = []

        def notified(incident: Incident) -> None:
            news.append(
                incident.owner_paged(
                    ticket_id=page.ticket_id, window_id=page.window_id, at=self.clock.now(), cause=envelope
                )
            )

        incident = await self.store.incidents.update(page.incident_id, notified, cause=envelope)
        if news and news[-1] and incident.notify_s is not None:
            self.metrics.notify.labels(incident.kind).observe(incident.notify_s)

    async def assistance_completed(self, envelope: CloudEvent, done: AssistanceCompleted) -> None:
        """A concierge's `vehicle_help` for one of our incidents is done: so is the incident."""
        if done.kind != "vehicle_help" or done.incident_id is None:
            return
        if await self.store.incidents.get(done.incident_id) is None:
            return
        news: list[bool] = []

        def resolved(incident: Incident) -> None:
            if incident.status == "resolved":  # a guard resolved it first
                news.append(False)
                return
            note = f": {done.note}" if done.note else ""
            resolution = f"a Golden Key concierge helped with the car{note}"[:1000]
            incident.resolve(self.clock.now(), resolution, assistance_id=done.assistance_id, cause=envelope)
            news.append(True)

        incident = await self.store.incidents.update(done.incident_id, resolved, cause=envelope)
        if news and news[-1]:
            self._resolved(incident)

    # --- the watchdog ------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """What time alone triggers: escalations, missed rounds, visits a crash left behind the
        lot, and archiving what earlier days closed."""
        now = self.clock.now()
        overdue = await self.store.incidents.find({"status": "reported", "reported_at": {"$lte": now - NOTIFY_WITHIN}})
        for incident in overdue:
            await self._escalate(incident.id, now)
        await self.mark_missed_rounds(now)
        await self.mend_visits(now)
        if monotonic.monotonic() >= self._archive_next:
            self._archive_next = monotonic.monotonic() + ARCHIVE_EVERY_S
            day_start, _ = self.calendar.day_bounds(self.calendar.business_day(now))
            await self.store.visits.archive({"status": "departed", "departed_at": {"$lt": day_start}})
            await self.store.incidents.archive({"status": "resolved", "resolved_at": {"$lt": day_start}})
            await self.store.forget_plate_tickets_before(self.calendar.business_day(now))

    async def _escalate(self, incident_id: str, now: datetime) -> None:
        escalated: list[bool] = []

        def escalate(incident: Incident) -> None:
            escalated.append(incident.escalate_if_overdue(now))

        updated = await self.store.incidents.update(incident_id, escalate)
        if escalated and escalated[-1]:
            self.metrics.escalations.labels(updated.kind).inc()

    async def mark_missed_rounds(self, now: datetime) -> int:
        """Rounds of today not started within their margin: `patrol.missed`, once each."""
        day = self.calendar.business_day(now)
        schedule = await self.schedule()
        started = {p.id for p in await self.store.patrols_of_day(day)}
        missed = 0
        for scheduled in rounds_of_day(schedule, day, self.calendar.zone, self._working(day)):
            if not round_is_missed(scheduled, scheduled.patrol_id in started, now, schedule.start_within):
                continue
            patrol = Patrol.missed(scheduled=scheduled, day=day, route=schedule.route(scheduled.round_id), at=now)
            try:
                await self.store.patrols.add(patrol)
            except AlreadyExists:  # started, or reported by another instance, meanwhile
                continue
            self.metrics.patrols_missed.inc()
            missed += 1
        return missed

    async def mend_visits(self, now: datetime) -> int:
        """Bring visits in line with the lot after a crash between their two writes: a car the lot
        counts without its visit gets it; a visit still open that the lot no longer counts is
        closed; a visit whose plate the lot knows corrected takes the correction. How many mended."""
        open_visits = await self.store.inside()  # read before the lot: see the module's docstring
        lot = await self.lot()
        by_visit = {entry.visit_id: (plate_hash, entry) for plate_hash, entry in lot.inside.items()}
        known = {v.id: v for v in open_visits}
        mended = 0
        for visit in open_visits:
            counted = by_visit.get(visit.id)
            if counted is None:
                await self.store.visits.update(visit.id, lambda v: v.depart(now, None, lot.occupied, unseen=True))
                mended += 1
            elif counted[0] != visit.plate_hash:
                plate = self.plate(counted[1].plate)
                await self.store.visits.update(
                    visit.id,
                    lambda v, p=plate: v.correct_plate(  # type: ignore[misc]
                        plate=p.raw, plate_hash=p.hash, plate_masked=p.masked, guard_id=None, at=now, ticket_id=None
                    ),
                )
                mended += 1
        for visit_id, (_, entry) in by_visit.items():
            old_enough = now - entry.since >= MEND_AFTER
            if visit_id not in known and old_enough and await self.store.visits.get(visit_id) is None:
                await self._visit_of(entry)
                mended += 1
        return mended
