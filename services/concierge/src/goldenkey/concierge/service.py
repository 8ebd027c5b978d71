"""The concierge's use cases: what the desk, a window, a guard or an event asks of it, on the rules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from goldenkey.concierge.domain import (
    KIND_FOR_NEED,
    Assistance,
    Concierge,
    Consumable,
    Lendable,
    Loan,
    acceptance_overdue,
    check_due_time,
    least_loaded_concierge,
    loan_due_at,
    loan_is_due_soon,
    loan_is_overdue,
)
from goldenkey.concierge.metrics import ConciergeMetrics
from goldenkey.concierge.store import ConciergeStore
from goldenkey.contracts import CloudEvent, TicketIssued, TyreAlert, derived_id
from goldenkey.contracts.vocabulary import AssistanceKind, ReturnCondition
from goldenkey.kit import (
    AlreadyExists,
    BusinessCalendar,
    Clock,
    ConcurrencyError,
    Conflict,
    Invalid,
    Missing,
    NotFound,
)
from goldenkey.kit.pii import normalise_phone

ORPHAN_CLAIM_AFTER = timedelta(minutes=2)
"""A unit claimed for a loan that was never written is put back on the shelf after this long."""
ROSTER_FRESH_S = 1.0
"""How old this instance's view of who is on duty and how loaded may be when it assigns."""
CLAIM_ATTEMPTS = 20
"""How often an assignment is decided again when the chosen concierge's document changed meanwhile."""


ARCHIVE_EVERY_S = 600.0
"""How often (at most) a sweep moves what earlier days closed into the archive."""


@dataclass
class Roster:
    concierges: dict[str, Concierge]
    read_at: float


class ConciergeService:
    def __init__(
        self, store: ConciergeStore, clock: Clock, calendar: BusinessCalendar, metrics: ConciergeMetrics
    ) -> None:
        self.store = store
        self.clock = clock
        self.calendar = calendar
        self._archive_next = 0.0
        self.metrics = metrics
        self._view: Roster | None = None
        self._assigning = asyncio.Lock()
        """This instance's assignments take turns (see `_claim_concierge`)."""

    # --- loans ---------------------------------------------------------------------------------

    async def lend(
        self,
        loan_id: str,
        *,
        sku: str,
        ticket_id: str | None,
        borrower_name: str | None,
        borrower_phone: str | None,
        due_at: datetime | None,
    ) -> Loan:
        """Lend a free unit of `sku`. The unit is claimed on the item's document first (two loans
        never get one unit), then the loan is written with `item.lent`; a retry finds either."""
        existing = await self.store.loans.get(loan_id)
        if existing is not None:
            return existing
        if ticket_id is None and not (borrower_name and borrower_phone):
            raise Invalid("a loan names the borrower's ticket, or their name and phone")
        try:
            phone = normalise_phone(borrower_phone) if borrower_phone else None
        except ValueError as error:
            raise Invalid(str(error)) from None
        now = self.clock.now()
        due = due_at or loan_due_at(now, self.calendar.closing_time(now))
        check_due_time(due, now)
        await self.lendable(sku)
        claimed: dict[str, str] = {}

        def claim(item: Lendable) -> None:
            claimed["unit_id"] = item.claim(loan_id, now).unit_id

        await self.store.lendables.update(sku, claim)
        loan = Loan.lend(
            loan_id=loan_id,
            sku=sku,
            unit_id=claimed["unit_id"],
            at=now,
            due_at=due,
            ticket_id=ticket_id,
            borrower_name=borrower_name,
            borrower_phone=phone,
        )
        try:
            await self.store.loans.add(loan)
        except AlreadyExists:
            return await self.store.loans.require(loan_id)
        self.metrics.loans.labels(sku).inc()
        return loan

    async def give_back(self, loan_id: str, condition: ReturnCondition) -> Loan:
        loan = await self.loan(loan_id)
        now = self.clock.now()
        loan = await self.store.loans.update(loan_id, lambda entry: entry.give_back(condition, now))
        await self.store.lendables.update(loan.sku, lambda item: item.take_back(loan.unit_id, loan_id, condition, now))
        return loan

    async def loan(self, loan_id: str) -> Loan:
        """A loan, also one an earlier day closed (archived: it can be read, not changed)."""
        found = await self.store.loans.get(loan_id) or await self.store.loans.find_archived(loan_id)
        if found is None:
            raise Missing(f"no loan {loan_id}")
        return found

    async def lendable(self, sku: str) -> Lendable:
        try:
            return await self.store.lendables.require(sku)
        except NotFound:
            raise Missing(f"no lendable item {sku!r}; see GET /inventory") from None

    async def repaired(self, sku: str, unit_id: str) -> Lendable:
        await self.lendable(sku)
        return await self.store.lendables.update(sku, lambda item: item.repaired(unit_id, self.clock.now()))

    async def add_unit(self, sku: str, unit_id: str) -> Lendable:
        await self.lendable(sku)
        for item in await self.store.lendables.find({}):
            if item.id != sku and any(u.unit_id == unit_id for u in item.units):
                raise Conflict(f"unit {unit_id} belongs to {item.id} already")
        return await self.store.lendables.update(sku, lambda item: item.add_unit(unit_id, self.clock.now()))

    async def edit_item(
        self, sku: str, *, name_zh: str | None, name_en: str | None, minimum: int | None
    ) -> Consumable | Lendable:
        """An admin renames an item, or changes a consumable's minimum."""
        now = self.clock.now()
        if await self.store.consumables.get(sku) is not None:
            return await self.store.consumables.update(
                sku, lambda c: c.edit(now, name_zh=name_zh, name_en=name_en, minimum=minimum)
            )
        await self.lendable(sku)
        if minimum is not None:
            raise Invalid(f"{sku} is lendable: it has units, not a minimum")
        return await self.store.lendables.update(sku, lambda item: item.rename(name_zh, name_en))

    async def visit_ended(self, envelope: CloudEvent, ticket_id: str) -> None:
        """The citizen's ticket is done with: whatever they still hold is asked back."""
        for loan in await self.store.loans_of_ticket(ticket_id):
            if loan.status == "out":
                await self.store.loans.update(
                    loan.id, lambda entry: entry.remind("visit_ended", self.clock.now(), envelope), cause=envelope
                )

    # --- consumables ---------------------------------------------------------------------------

    async def consumable(self, sku: str) -> Consumable:
        try:
            return await self.store.consumables.require(sku)
        except NotFound:
            raise Missing(f"no consumable {sku!r}; see GET /inventory") from None

    async def dispense(self, dispensation_id: str, sku: str, qty: int, ticket_id: str | None) -> Consumable:
        """Hand out `qty` at once or not at all (409 when short): one versioned write of the stock."""
        await self.consumable(sku)
        now = self.clock.now()
        handed_out: list[bool] = []

        def hand_out(item: Consumable) -> None:
            handed_out.append(not item.has_applied(dispensation_id))
            item.dispense(qty, now, ticket_id=ticket_id, dispensation_id=dispensation_id)

        item = await self.store.consumables.update(sku, hand_out)
        if handed_out[-1]:
            self.metrics.dispensed.labels(sku).inc(qty)
        return item

    async def restock(self, sku: str, qty: int) -> Consumable:
        await self.consumable(sku)
        now = self.clock.now()
        return await self.store.consumables.update(sku, lambda c: c.restock(qty, now))

    # --- assistance ----------------------------------------------------------------------------

    async def request_assistance(
        self,
        assistance_id: str,
        *,
        kind: AssistanceKind,
        ticket_id: str | None = None,
        incident_id: str | None = None,
        location: str | None = None,
        note: str | None = None,
        cause: CloudEvent | None = None,
        requested_by: str | None = None,
    ) -> Assistance:
        """Record the request and give it at once to the least-loaded concierge on duty (or queue it):
        the request and its assignment are one write, so the desk hears of both together."""
        now = self.clock.now()
        assistance = Assistance.request(
            assistance_id=assistance_id,
            kind=kind,
            at=now,
            ticket_id=ticket_id,
            incident_id=incident_id,
            location=location,
            note=note,
            cause=cause,
            requested_by=requested_by,
        )
        chosen = await self._claim_concierge(assistance, retry=True)
        if chosen is not None:
            assistance.assign(chosen, now)
        try:
            await self.store.assistance.add(assistance)
        except AlreadyExists:  # a retried request, or a redelivered event: the first one stands
            assistance = await self.store.assistance.require(assistance_id)
            if chosen is not None and assistance.concierge_id != chosen:
                await self._let_go(chosen, assistance_id)
            return await self.assign(assistance) if assistance.status == "queued" else assistance
        return assistance

    async def _claim_concierge(self, assistance: Assistance, *, retry: bool = False) -> str | None:
        """Choose the least-loaded concierge on duty for a request and count it against them, in one
        write of their document with the version the choice was made on: two requests decided on
        the same load of one concierge cannot both land there (the second is decided again), and
        one going off duty meanwhile is not chosen. None when nobody is on duty.

        This instance's assignments take turns, so a burst here does not spend its attempts racing
        itself; the view of the others' loads may be `ROSTER_FRESH_S` old, which only matters for
        requests they finished since (the chosen one's load is always checked). With `retry` (a
        request that may have been recorded before), whoever holds it already keeps it."""
        async with self._assigning:
            for _ in range(CLAIM_ATTEMPTS):
                roster = await self._roster()
                if retry:
                    for concierge in roster.concierges.values():
                        if concierge.holds(assistance.id):
                            return concierge.id
                on_duty = [c.id for c in roster.concierges.values() if c.on_duty]
                load = {c.id: c.load for c in roster.concierges.values()}
                chosen = least_loaded_concierge(on_duty, load, avoid=assistance.passed_over)
                if chosen is None:
                    return None
                concierge = roster.concierges[chosen].model_copy(deep=True)
                concierge.take(assistance.id, self.clock.now())
                try:
                    roster.concierges[chosen] = await self.store.concierges.save(concierge)
                except ConcurrencyError:  # their load or duty changed since the view was read
                    self._roster_changed()
                    continue
                return chosen
        raise ConcurrencyError(f"assistance {assistance.id}: the roster kept changing, gave up assigning it")

    async def _let_go(self, concierge_id: str, assistance_id: str) -> None:
        """A request no longer counts against a concierge (done, cancelled, or gone to another)."""
        try:
            concierge = await self.store.concierges.update(concierge_id, lambda c: c.let_go(assistance_id))
        except NotFound:
            return
        if self._view is not None and concierge_id in self._view.concierges:
            self._view.concierges[concierge_id] = concierge

    async def _roster(self) -> Roster:
        """The concierges, their duty and loads, read at most `ROSTER_FRESH_S` ago (or at once
        after a duty change, or a write that found the view behind)."""
        now = time.monotonic()
        if self._view is None or now - self._view.read_at > ROSTER_FRESH_S:
            concierges = await self.store.concierges.find({}, sort=[("_id", 1)])
            self._view = Roster({c.id: c for c in concierges}, now)
        return self._view

    def _roster_changed(self) -> None:
        self._view = None

    async def assign(self, assistance: Assistance) -> Assistance:
        """Hand a queued request to the least-loaded on-duty concierge, if anyone is on duty."""
        chosen = await self._claim_concierge(assistance)
        if chosen is None:
            return assistance

        def give(a: Assistance) -> None:
            if a.status == "queued":  # someone else assigned it meanwhile: leave it
                a.assign(chosen, self.clock.now())

        assigned = await self.store.assistance.update(assistance.id, give)
        if assigned.concierge_id != chosen:
            await self._let_go(chosen, assistance.id)
        return assigned

    async def assistance(self, assistance_id: str) -> Assistance:
        """A request, also one an earlier day closed (archived: it can be read, not changed)."""
        found = await self.store.assistance.get(assistance_id) or await self.store.assistance.find_archived(
            assistance_id
        )
        if found is None:
            raise Missing(f"no assistance request {assistance_id}")
        return found

    async def accept(self, assistance_id: str, check: Callable[[Assistance], None] = lambda _: None) -> Assistance:
        await self.assistance(assistance_id)

        def accept(a: Assistance) -> None:
            check(a)
            a.accept(self.clock.now())

        assistance = await self.store.assistance.update(assistance_id, accept)
        assert assistance.accepted_at is not None
        self.metrics.accept.labels(assistance.kind).observe(
            (assistance.accepted_at - assistance.requested_at).total_seconds()
        )
        return assistance

    async def complete(
        self, assistance_id: str, note: str | None, check: Callable[[Assistance], None] = lambda _: None
    ) -> Assistance:
        await self.assistance(assistance_id)

        def complete(a: Assistance) -> None:
            check(a)
            a.complete(self.clock.now(), note)

        assistance = await self.store.assistance.update(assistance_id, complete)
        if assistance.concierge_id is not None:
            await self._let_go(assistance.concierge_id, assistance_id)
        return assistance

    async def cancel(
        self, assistance_id: str, reason: str | None, check: Callable[[Assistance], None] = lambda _: None
    ) -> Assistance:
        await self.assistance(assistance_id)

        def cancel(a: Assistance) -> None:
            check(a)
            a.cancel(self.clock.now(), reason)

        assistance = await self.store.assistance.update(assistance_id, cancel)
        if assistance.concierge_id is not None:
            await self._let_go(assistance.concierge_id, assistance_id)
        return assistance

    async def set_duty(self, concierge_id: str, on_duty: bool) -> Concierge:
        try:
            await self.store.concierges.require(concierge_id)
        except NotFound:
            raise Missing(f"no concierge {concierge_id}; see GET /concierges") from None
        concierge = await self.store.concierges.update(concierge_id, lambda c: c.set_duty(on_duty, self.clock.now()))
        self._roster_changed()
        if not on_duty:  # what they were given and had not accepted goes to someone on duty now
            for assistance in await self.store.open_assistance():
                if assistance.status == "assigned" and assistance.concierge_id == concierge_id:
                    handed = await self.store.assistance.update(assistance.id, lambda a: a.hand_over(concierge_id))
                    if handed.concierge_id != concierge_id:
                        await self._let_go(concierge_id, assistance.id)
        await self.assign_queued()
        return concierge

    async def assign_queued(self) -> None:
        for assistance in await self.store.open_assistance():
            if assistance.status == "queued":
                await self.assign(assistance)

    # --- events --------------------------------------------------------------------------------

    async def ticket_issued(self, envelope: CloudEvent, ticket: TicketIssued) -> None:
        """One assistance request per need on the ticket, its id derived from the event."""
        for need in ticket.needs:
            await self.request_assistance(
                derived_id(envelope.id, "assistance", need),
                kind=KIND_FOR_NEED[need],
                ticket_id=ticket.ticket_id,
                note=need if KIND_FOR_NEED[need] == "other" else None,
                cause=envelope,
            )

    async def tyre_alert(self, envelope: CloudEvent, alert: TyreAlert) -> None:
        """A flat tyre in the car park: a concierge helps the owner with the car."""
        await self.request_assistance(
            derived_id(envelope.id, "assistance", "vehicle_help"),
            kind="vehicle_help",
            ticket_id=alert.ticket_id,
            incident_id=alert.incident_id,
            location=f"car park {alert.space}" if alert.space else "car park",
            cause=envelope,
        )

    # --- the watchdog --------------------------------------------------------------------------

    async def sweep(self) -> None:
        """What time alone triggers: escalations, reminders before due, overdue loans, requests
        waiting for someone to come on duty, and units a crash left between a loan's two writes."""
        now = self.clock.now()
        for assistance in await self.store.open_assistance():
            if acceptance_overdue(assistance, now):
                assistance = await self._escalate(assistance.id, now)
            if assistance.status == "queued":
                await self.assign(assistance)
        await self._settle_loads(now)
        for loan in await self.store.loans_out():
            if loan_is_overdue(loan, now):
                await self.store.loans.update(loan.id, lambda entry: entry.mark_overdue(now))
            elif loan_is_due_soon(loan, now):
                await self.store.loans.update(loan.id, lambda entry: entry.remind("due_soon", now))
        await self._settle_units(now)
        if time.monotonic() >= self._archive_next:
            self._archive_next = time.monotonic() + ARCHIVE_EVERY_S
            await self.archive_earlier_days(now)

    async def archive_earlier_days(self, now: datetime) -> int:
        """Move loans given back and requests closed before today out of the working collections,
        which the sweep and the desk read all day (docs/decisions.md, "Storage"); how many moved."""
        today_began, _ = self.calendar.day_bounds(self.calendar.business_day(now))
        loans = await self.store.loans.archive({"status": {"$ne": "out"}, "returned_at": {"$lt": today_began}})
        closed = {"status": {"$in": ["completed", "cancelled"]}, "closed_at": {"$lt": today_began}}
        return loans + await self.store.assistance.archive(closed)

    async def _escalate(self, assistance_id: str, now: datetime) -> Assistance:
        """Escalate a request not accepted in time, and count it if this sweep did (another
        instance's sweep may have been first)."""
        before: list[tuple[int, str | None]] = []

        def escalate(a: Assistance) -> None:
            before.append((a.escalations, a.concierge_id))
            a.escalate(now)

        escalated = await self.store.assistance.update(assistance_id, escalate)
        escalations, late = before[-1]
        if escalated.escalations > escalations:
            self.metrics.escalations.labels(escalated.kind).inc()
            if late is not None:  # it no longer counts against the concierge who let it wait
                await self._let_go(late, assistance_id)
        return escalated

    async def _settle_loads(self, now: datetime) -> None:
        """Mend what a crash between a request's write and its concierge's left: each concierge
        counts the open requests that name them, and no others (see `Concierge.settle`)."""
        concierges = await self.store.concierges.find({})
        holds: dict[str, dict[str, datetime]] = {}
        for assistance in await self.store.open_assistance():
            if assistance.status in ("assigned", "accepted") and assistance.concierge_id is not None:
                since = assistance.assigned_at or assistance.requested_at
                holds.setdefault(assistance.concierge_id, {})[assistance.id] = since
        for concierge in concierges:
            mine: Mapping[str, datetime] = holds.get(concierge.id, {})
            if concierge.model_copy(deep=True).settle(mine, now):
                await self.store.concierges.update(concierge.id, lambda c, held=mine: c.settle(held, now))
                self._roster_changed()

    async def _settle_units(self, now: datetime) -> None:
        """Mend what a crash between a loan's two writes left: a unit claimed for a loan that was
        never written goes back on the shelf; a unit whose loan came back (or was lost) follows it."""
        items = await self.store.lendables.find({})
        claimed_before = now - ORPHAN_CLAIM_AFTER
        stale = {
            unit.loan_id: item.id
            for item in items
            for unit in item.units
            if unit.state == "lent" and unit.loan_id and unit.since and unit.since < claimed_before
        }
        if not stale:
            return
        loans = {loan.id: loan for loan in await self.store.loans.find({"_id": {"$in": list(stale)}})}
        for loan_id, sku in stale.items():
            loan = loans.get(loan_id)
            if loan is None:
                await self.store.lendables.update(
                    sku, lambda i, lid=loan_id: i.release_claim_of(lid, claimed_before=claimed_before)
                )
            elif loan.status != "out" and loan.condition is not None:
                await self.store.lendables.update(
                    sku, lambda i, entry=loan: i.take_back(entry.unit_id, entry.id, entry.condition, now)
                )
