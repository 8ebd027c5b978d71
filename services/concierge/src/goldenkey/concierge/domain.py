"""The concierge's rules, without I/O: the lending box and its loans, consumables and their minimum,
and assistance requests handed to the least-loaded Golden Key concierge on duty."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from goldenkey.contracts import (
    AssistanceAccepted,
    AssistanceAssigned,
    AssistanceCancelled,
    AssistanceCompleted,
    AssistanceEscalated,
    AssistanceRequested,
    CloudEvent,
    ConsumableDispensed,
    ItemLent,
    ItemLost,
    ItemOverdue,
    ItemReturned,
    ItemReturnRequested,
    StockLow,
    StockRestocked,
)
from goldenkey.contracts.vocabulary import AssistanceKind, Need, ReturnCondition, ReturnReminderReason
from goldenkey.kit import Aggregate, Conflict, Invalid, Missing
from goldenkey.kit.errors import Forbidden

UnitState = Literal["shelf", "lent", "maintenance", "lost"]
LoanStatus = Literal["out", "returned", "lost"]
AssistanceStatus = Literal["queued", "assigned", "accepted", "completed", "cancelled"]
OPEN_ASSISTANCE: tuple[AssistanceStatus, ...] = ("queued", "assigned", "accepted")

ACCEPT_WITHIN = timedelta(minutes=3)
""""Come at once when called": an assigned request not accepted within this long is escalated."""
REMIND_BEFORE_DUE = timedelta(minutes=15)
"""`item.return_requested` (due_soon) goes out this long before a loan is due."""
SHORTEST_LOAN = timedelta(minutes=30)
"""A loan made at or after closing time is due this long after it is made, not in the past."""
LONGEST_LOAN = timedelta(days=30)
"""The latest a loan may be due: the lending box serves visits, and a due time must stay storable."""

KIND_FOR_NEED: Mapping[Need, AssistanceKind] = {
    "wheelchair": "wheelchair",
    "escort": "escort",
    "proxy_service": "proxy_service",
    "mother_baby_room": "mother_baby_room",
    "reading_glasses": "other",
}
"""Which assistance a need on a ticket asks for (a concierge brings the reading glasses: `other`)."""


# --- the lending box ---------------------------------------------------------------------------------


class Unit(BaseModel):
    unit_id: str
    state: UnitState = "shelf"
    loan_id: str | None = None
    since: datetime | None = None


class Lendable(Aggregate):
    """One kind of lendable item (id = its sku) and its numbered units."""

    name_zh: str
    name_en: str
    units: list[Unit] = Field(default_factory=list)

    def free_units(self) -> list[Unit]:
        return [u for u in self.units if u.state == "shelf"]

    def unit(self, unit_id: str) -> Unit:
        for unit in self.units:
            if unit.unit_id == unit_id:
                return unit
        raise Missing(f"{self.id} has no unit {unit_id}")

    def claim(self, loan_id: str, at: datetime) -> Unit:
        """Take a free unit off the shelf for a loan; a loan that claimed one already keeps it (and
        renews the claim, so the watchdog does not take it for an orphan as the loan is written)."""
        for unit in self.units:
            if unit.loan_id == loan_id and unit.state == "lent":
                unit.since = at
                return unit
        free = self.free_units()
        if not free:
            counts = {state: sum(1 for u in self.units if u.state == state) for state in ("lent", "maintenance")}
            raise Conflict(
                f"no {self.id} is free: {counts['lent']} lent, {counts['maintenance']} in maintenance "
                f"of {len(self.units)}"
            )
        unit = free[0]
        unit.state, unit.loan_id, unit.since = "lent", loan_id, at
        return unit

    def take_back(self, unit_id: str, loan_id: str, condition: ReturnCondition, at: datetime) -> None:
        """A unit comes back: an ok one to the shelf, a damaged one to maintenance; a lost one is gone."""
        unit = self.unit(unit_id)
        if unit.loan_id != loan_id:  # returned before (a retry): nothing to do
            return
        unit.state = {"ok": "shelf", "damaged": "maintenance", "lost": "lost"}[condition]  # type: ignore[assignment]
        unit.loan_id, unit.since = None, at

    def release_claim_of(self, loan_id: str, *, claimed_before: datetime) -> None:
        """Undo a claim whose loan was never written (a crash between the two writes), unless a
        retry of the loan renewed it since the watchdog looked."""
        for unit in self.units:
            if (
                unit.loan_id == loan_id
                and unit.state == "lent"
                and (unit.since is None or unit.since <= claimed_before)
            ):
                unit.state, unit.loan_id = "shelf", None

    def repaired(self, unit_id: str, at: datetime) -> None:
        unit = self.unit(unit_id)
        if unit.state != "maintenance":
            raise Conflict(f"unit {unit_id} is {unit.state}, not in maintenance")
        unit.state, unit.since = "shelf", at

    def rename(self, name_zh: str | None, name_en: str | None) -> None:
        self.name_zh, self.name_en = name_zh or self.name_zh, name_en or self.name_en

    def add_unit(self, unit_id: str, at: datetime) -> None:
        if any(u.unit_id == unit_id for u in self.units):
            raise Conflict(f"{self.id} has a unit {unit_id} already")
        self.units.append(Unit(unit_id=unit_id, since=at))


def check_due_time(due_at: datetime, at: datetime) -> None:
    """A due time is ahead of the loan, and no further than the longest loan."""
    if due_at <= at:
        raise Invalid(f"due_at {due_at.isoformat()} is not in the future")
    if due_at - at > LONGEST_LOAN:
        raise Invalid(f"due_at {due_at.isoformat()} is more than {LONGEST_LOAN.days} days away")


def loan_due_at(now: datetime, closing: datetime) -> datetime:
    """The default due time: the end of the business day, or a short loan when that has passed."""
    return closing if closing - now >= SHORTEST_LOAN else now + SHORTEST_LOAN


class Loan(Aggregate):
    sku: str
    unit_id: str
    ticket_id: str | None = None
    borrower_name: str | None = None
    borrower_phone: str | None = None
    """A walk-in borrower's contact, raw and only here; events name the ticket at most."""
    lent_at: datetime
    due_at: datetime
    status: LoanStatus = "out"
    returned_at: datetime | None = None
    condition: ReturnCondition | None = None
    reminded: list[ReturnReminderReason] = Field(default_factory=list)
    overdue_at: datetime | None = None

    @classmethod
    def lend(
        cls,
        *,
        loan_id: str,
        sku: str,
        unit_id: str,
        at: datetime,
        due_at: datetime,
        ticket_id: str | None = None,
        borrower_name: str | None = None,
        borrower_phone: str | None = None,
    ) -> Loan:
        if ticket_id is None and not (borrower_name and borrower_phone):
            raise Invalid("a loan names the borrower's ticket, or their name and phone")
        check_due_time(due_at, at)
        loan = cls(
            id=loan_id,
            sku=sku,
            unit_id=unit_id,
            ticket_id=ticket_id,
            borrower_name=borrower_name,
            borrower_phone=borrower_phone,
            lent_at=at,
            due_at=due_at,
        )
        loan.record(
            ItemLent(loan_id=loan_id, sku=sku, unit_id=unit_id, due_at=due_at, ticket_id=ticket_id),
            at=at,
            correlation_id=ticket_id or loan_id,
        )
        return loan

    @property
    def correlation(self) -> str:
        return self.ticket_id or self.id

    def give_back(self, condition: ReturnCondition, at: datetime) -> None:
        if self.status != "out":
            raise Conflict(f"loan {self.id} is {self.status} already")
        self.status = "lost" if condition == "lost" else "returned"
        self.returned_at, self.condition = at, condition
        if condition == "lost":
            event: ItemLost | ItemReturned = ItemLost(
                loan_id=self.id, sku=self.sku, unit_id=self.unit_id, ticket_id=self.ticket_id
            )
        else:
            event = ItemReturned(
                loan_id=self.id,
                sku=self.sku,
                unit_id=self.unit_id,
                condition=condition,
                ticket_id=self.ticket_id,
                overdue=at > self.due_at,
            )
        self.record(event, at=at, correlation_id=self.correlation)

    def remind(self, reason: ReturnReminderReason, at: datetime, cause: CloudEvent | None = None) -> None:
        """Ask for the unit back, once per reason, while it is still out; `cause` is the event
        that ended the visit."""
        if self.status != "out" or reason in self.reminded:
            return
        self.reminded = [*self.reminded, reason]
        self.record(
            ItemReturnRequested(
                loan_id=self.id,
                sku=self.sku,
                unit_id=self.unit_id,
                due_at=self.due_at,
                reason=reason,
                ticket_id=self.ticket_id,
            ),
            at=at,
            causation=cause,
            correlation_id=self.correlation,
        )

    def mark_overdue(self, at: datetime) -> None:
        """`item.overdue`, exactly once per loan, once it is out past its due time."""
        if not loan_is_overdue(self, at):
            return
        self.overdue_at = at
        self.record(
            ItemOverdue(
                loan_id=self.id, sku=self.sku, unit_id=self.unit_id, due_at=self.due_at, ticket_id=self.ticket_id
            ),
            at=at,
            correlation_id=self.correlation,
        )


def loan_is_overdue(loan: Loan, now: datetime) -> bool:
    """Out past its due time and not announced yet."""
    return loan.status == "out" and now >= loan.due_at and loan.overdue_at is None


def loan_is_due_soon(loan: Loan, now: datetime) -> bool:
    """Out, due within the reminder lead time, and not reminded of it yet."""
    return (
        loan.status == "out"
        and loan.due_at - REMIND_BEFORE_DUE <= now < loan.due_at
        and ("due_soon" not in loan.reminded)
    )


# --- consumables -------------------------------------------------------------------------------------


def falls_below_minimum(before: int, after: int, minimum: int) -> bool:
    """Whether taking stock from `before` to `after` crosses the minimum downwards (`stock.low` once)."""
    return before >= minimum > after


class Consumable(Aggregate):
    """A consumable (id = its sku): what is left, and the level under which it must be restocked."""

    name_zh: str
    name_en: str
    stock: int = Field(ge=0)
    minimum: int = Field(ge=0)

    @property
    def low(self) -> bool:
        return self.stock < self.minimum

    def edit(self, at: datetime, *, name_zh: str | None, name_en: str | None, minimum: int | None) -> None:
        """An admin's edit; a minimum raised above what is left is a crossing too (`stock.low`)."""
        was_low = self.low
        self.name_zh, self.name_en = name_zh or self.name_zh, name_en or self.name_en
        if minimum is not None:
            self.minimum = minimum
        if self.low and not was_low:
            self.record(StockLow(sku=self.id, remaining=self.stock, minimum=self.minimum), at=at)

    def dispense(self, qty: int, at: datetime, *, ticket_id: str | None, dispensation_id: str) -> None:
        """Take `qty` off the stock, once per dispensation: a retry of one that was applied (its
        answer lost in a crash) changes nothing."""
        if self.has_applied(dispensation_id):
            return
        if qty < 1:
            raise Invalid("qty must be at least 1")
        if qty > self.stock:
            raise Conflict(f"only {self.stock} {self.id} left; {qty} asked for")
        before, self.stock = self.stock, self.stock - qty
        self.mark_applied(dispensation_id)
        self.record(
            ConsumableDispensed(
                sku=self.id, qty=qty, remaining=self.stock, ticket_id=ticket_id, dispensation_id=dispensation_id
            ),
            at=at,
            correlation_id=ticket_id,
        )
        if falls_below_minimum(before, self.stock, self.minimum):
            self.record(StockLow(sku=self.id, remaining=self.stock, minimum=self.minimum), at=at)

    def restock(self, qty: int, at: datetime) -> None:
        if qty < 1:
            raise Invalid("qty must be at least 1")
        self.stock += qty
        self.record(StockRestocked(sku=self.id, qty=qty, remaining=self.stock, minimum=self.minimum), at=at)


# --- assistance --------------------------------------------------------------------------------------


CLAIM_GRACE = timedelta(minutes=2)
"""How long a request counted against a concierge may go without its own document saying so (it
is being written) before the watchdog stops counting it (the process died before writing it)."""


class Held(BaseModel):
    """An open request counted against a concierge."""

    assistance_id: str
    since: datetime


class Concierge(Aggregate):
    """One of the Golden Key concierges: whether they are on duty, and the open requests (assigned
    or accepted) they hold — their load, which the least-loaded rule reads and each assignment
    writes, with this document's version."""

    name_zh: str
    name_en: str
    on_duty: bool = False
    duty_since: datetime | None = None
    holding: list[Held] = Field(default_factory=list)

    @property
    def load(self) -> int:
        return len(self.holding)

    def holds(self, assistance_id: str) -> bool:
        return any(h.assistance_id == assistance_id for h in self.holding)

    def set_duty(self, on_duty: bool, at: datetime) -> None:
        if self.on_duty != on_duty:
            self.on_duty, self.duty_since = on_duty, at

    def take(self, assistance_id: str, at: datetime) -> None:
        """Count a request against them (once)."""
        if not self.on_duty:
            raise Conflict(f"concierge {self.id} is off duty")
        if not self.holds(assistance_id):
            self.holding = [*self.holding, Held(assistance_id=assistance_id, since=at)]

    def let_go(self, assistance_id: str) -> None:
        """The request is done, cancelled, or gone to someone else: it no longer counts."""
        self.holding = [h for h in self.holding if h.assistance_id != assistance_id]

    def settle(self, holds: Mapping[str, datetime], at: datetime) -> bool:
        """Match what they hold to the requests that name them (`holds`: id → when assigned), as
        read just before: count those missing, stop counting those that do not name them unless
        taken within `CLAIM_GRACE` (their request is being written). Whether anything changed."""
        kept = [h for h in self.holding if h.assistance_id in holds or at - h.since < CLAIM_GRACE]
        have = {h.assistance_id for h in kept}
        missing = [Held(assistance_id=a, since=since) for a, since in sorted(holds.items()) if a not in have]
        changed = len(kept) != len(self.holding) or bool(missing)
        self.holding = [*kept, *missing]
        return changed


class Assistance(Aggregate):
    kind: AssistanceKind
    ticket_id: str | None = None
    incident_id: str | None = None
    location: str | None = None
    note: str | None = None
    correlation: str
    """The visit (ticket) or case (incident) this help belongs to, for every event's correlation id."""
    status: AssistanceStatus = "queued"
    concierge_id: str | None = None
    requested_at: datetime
    assigned_at: datetime | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    escalations: int = 0
    escalated_at: datetime | None = None
    passed_over: list[str] = Field(default_factory=list)
    """Concierges who let it wait past the acceptance time, or went off duty with it: the next
    assignment avoids them."""
    requested_by: str | None = None
    """The device that asked (`requester`): `window:W09`, `guard`, `kiosk`…; None for a request
    made from an event (a ticket's needs, a tyre alert)."""

    @classmethod
    def request(
        cls,
        *,
        assistance_id: str,
        kind: AssistanceKind,
        at: datetime,
        ticket_id: str | None = None,
        incident_id: str | None = None,
        location: str | None = None,
        note: str | None = None,
        cause: CloudEvent | None = None,
        requested_by: str | None = None,
    ) -> Assistance:
        """A new request; with the `cause` (a ticket's needs, a tyre alert) its event derives from it."""
        assistance = cls(
            id=assistance_id,
            kind=kind,
            ticket_id=ticket_id,
            incident_id=incident_id,
            location=location,
            note=note,
            correlation=(cause.correlationid if cause else None) or ticket_id or incident_id or assistance_id,
            requested_at=at,
            requested_by=requested_by,
        )
        assistance.record(
            AssistanceRequested(
                assistance_id=assistance_id,
                kind=kind,
                ticket_id=ticket_id,
                incident_id=incident_id,
                location=location,
                note=note,
            ),
            at=at,
            causation=cause,
            correlation_id=assistance.correlation,
        )
        return assistance

    def _require(self, *allowed: AssistanceStatus, doing: str) -> None:
        if self.status not in allowed:
            raise Conflict(f"assistance {self.id} is {self.status}; cannot {doing} (needs {' or '.join(allowed)})")

    # --- who may act on it (docs/access.md) -------------------------------------------------------

    def must_be_held_by(self, concierge_id: str) -> None:
        """A concierge's own handset acts on the requests given to them, not a colleague's."""
        if self.concierge_id != concierge_id:
            held = f"given to {self.concierge_id}" if self.concierge_id else "given to nobody yet"
            raise Forbidden(f"assistance {self.id} is {held}: {concierge_id} may not act on it")

    def must_be_asked_by(self, role: str, bound_to: str | None) -> None:
        """A window's or a guard's device withdraws the requests it made; a token of the role not
        bound to one device, any its role made. What events asked for is the desk's to cancel."""
        asked = self.requested_by or ""
        if asked.partition(":")[0] == role and (bound_to is None or asked == requester(role, bound_to)):
            return
        raise Forbidden(f"assistance {self.id} was not asked for from this {role}: the concierge desk may cancel it")

    def assign(self, concierge_id: str, at: datetime) -> None:
        self._require("queued", doing="assign it")
        previous = self.passed_over[-1] if self.passed_over else None
        self.status, self.concierge_id, self.assigned_at = "assigned", concierge_id, at
        self.record(
            AssistanceAssigned(
                assistance_id=self.id,
                kind=self.kind,
                concierge_id=concierge_id,
                ticket_id=self.ticket_id,
                incident_id=self.incident_id,
                previous_concierge_id=previous,
            ),
            at=at,
            correlation_id=self.correlation,
        )

    def accept(self, at: datetime) -> None:
        self._require("assigned", doing="accept it")
        assert self.concierge_id is not None
        self.status, self.accepted_at = "accepted", at
        self.record(
            AssistanceAccepted(
                assistance_id=self.id,
                kind=self.kind,
                concierge_id=self.concierge_id,
                ticket_id=self.ticket_id,
                incident_id=self.incident_id,
                waited_s=(at - self.requested_at).total_seconds(),
            ),
            at=at,
            correlation_id=self.correlation,
        )

    def complete(self, at: datetime, note: str | None = None) -> None:
        self._require("assigned", "accepted", doing="complete it")
        self.status, self.closed_at = "completed", at
        self.record(
            AssistanceCompleted(
                assistance_id=self.id,
                kind=self.kind,
                ticket_id=self.ticket_id,
                incident_id=self.incident_id,
                concierge_id=self.concierge_id,
                note=note,
            ),
            at=at,
            correlation_id=self.correlation,
        )

    def cancel(self, at: datetime, reason: str | None = None) -> None:
        self._require(*OPEN_ASSISTANCE, doing="cancel it")
        self.status, self.closed_at = "cancelled", at
        self.record(
            AssistanceCancelled(
                assistance_id=self.id,
                kind=self.kind,
                ticket_id=self.ticket_id,
                incident_id=self.incident_id,
                reason=reason,
            ),
            at=at,
            correlation_id=self.correlation,
        )

    def hand_over(self, concierge_id: str) -> None:
        """Its concierge went off duty before accepting it: back in the queue, for someone else.
        (The next `assistance.assigned` names them as the previous concierge.)"""
        if self.status != "assigned" or self.concierge_id != concierge_id:
            return
        self.passed_over = [*self.passed_over, concierge_id]
        self.status, self.concierge_id, self.assigned_at = "queued", None, None

    def escalate(self, at: datetime) -> None:
        """Not accepted in time: announce it and put it back in the queue for another concierge."""
        if not acceptance_overdue(self, at):
            return
        waiting_since = self.assigned_at if self.status == "assigned" else self.requested_at
        assert waiting_since is not None
        late = self.concierge_id
        if late is not None:
            self.passed_over = [*self.passed_over, late]
        self.status, self.concierge_id, self.assigned_at = "queued", None, None
        self.escalations += 1
        self.escalated_at = at
        self.record(
            AssistanceEscalated(
                assistance_id=self.id,
                kind=self.kind,
                concierge_id=late,
                waited_s=(at - waiting_since).total_seconds(),
                ticket_id=self.ticket_id,
                incident_id=self.incident_id,
            ),
            at=at,
            correlation_id=self.correlation,
        )


def requester(role: str, bound_to: str | None) -> str:
    """How a request remembers the device that asked: its role, and what its token is bound to."""
    return f"{role}:{bound_to}" if bound_to else role


def acceptance_overdue(assistance: Assistance, now: datetime) -> bool:
    """An assigned request its concierge has not accepted within three minutes; or a request
    that has waited three minutes with nobody on duty to take it (announced once)."""
    if assistance.status == "assigned":
        assert assistance.assigned_at is not None
        return now - assistance.assigned_at >= ACCEPT_WITHIN
    if assistance.status == "queued":
        return assistance.escalations == 0 and now - assistance.requested_at >= ACCEPT_WITHIN
    return False


def least_loaded_concierge(
    on_duty: Iterable[str], open_load: Mapping[str, int], avoid: Iterable[str] = ()
) -> str | None:
    """Who takes a new request: the on-duty concierge with the fewest open requests, preferring
    those who have not let this one wait already; ties go to the lowest id (a stable order).
    The caller writes the choice with the chosen one's load, so it holds under concurrency."""
    candidates = sorted(on_duty)
    if not candidates:
        return None
    avoided = set(avoid)
    preferred = [c for c in candidates if c not in avoided] or candidates
    return min(preferred, key=lambda c: (open_load.get(c, 0), c))
