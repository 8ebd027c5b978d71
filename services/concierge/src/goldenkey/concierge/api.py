"""The concierge's HTTP API: thin — validate, authorise, call the use case, answer.

Who may do what, and to whom, is docs/access.md: a concierge's own handset (a token bound to
them) acts on the requests given to them and on their own duty; a window's or a guard's device
withdraws only the requests it made; a kiosk asks for help and sees no concierge's id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from goldenkey.concierge.domain import (
    Assistance,
    AssistanceStatus,
    Concierge,
    Consumable,
    Lendable,
    Loan,
    LoanStatus,
    UnitState,
    requester,
)
from goldenkey.concierge.service import ConciergeService
from goldenkey.contracts.vocabulary import AssistanceKind, ReturnCondition, ReturnReminderReason
from goldenkey.kit import NewId, Principal, error_responses, require
from goldenkey.kit.errors import Forbidden
from goldenkey.kit.inputs import PAGE, Limit, Line, Lines, Offset, Strict, matching
from goldenkey.kit.pii import mask_phone

router = APIRouter()
STAFF = ("concierge",)
READERS = ("concierge", "ops")
REQUESTERS = ("concierge", "kiosk", "window", "guard")
CANCELLERS = ("concierge", "window", "guard", "ops")
SEES_CONCIERGES = {"concierge", "window", "guard", "ops", "admin"}
"""Who sees which concierge holds a request (not the public kiosk)."""
Sku = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9-]{0,39}$")]
UnitId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Z0-9][A-Z0-9-]{0,39}$")]
Ref = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
"""A ticket or incident id another service gave out."""
Note = Annotated[Lines, Field(max_length=1000)]
Short = Annotated[Line, Field(max_length=200)]
ItemId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[\w.:-]+$", description="An id this service gave out.")
]
SkuPath = Annotated[
    str, Path(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9-]*$", description="An item's sku, e.g. `umbrella`.")
]
UnitPath = Annotated[
    str, Path(min_length=1, max_length=40, pattern=r"^[A-Z0-9][A-Z0-9-]*$", description="A unit's id, e.g. `UM-03`.")
]
ConciergeId = Annotated[
    str, Path(min_length=1, max_length=16, pattern=r"^[A-Z0-9][A-Z0-9-]*$", description="A concierge's id, e.g. `GK2`.")
]
STEP = error_responses(404, 409, 422)
"""What a step of a request's lifecycle can end in besides success (and 403: the token's role
may do it, but not to this request)."""


class Borrower(Strict):
    """A walk-in borrower without a ticket: name and phone stay in the concierge service."""

    name: Annotated[Line, Field(max_length=50)]
    phone: Annotated[str, Field(min_length=5, max_length=20)]


class LendItem(Strict):
    sku: Sku
    ticket_id: Ref | None = None
    borrower: Borrower | None = None
    due_at: AwareDatetime | None = None
    """Default: the end of the business day."""


class ReturnItem(Strict):
    condition: ReturnCondition


class Dispense(Strict):
    sku: Sku
    qty: Annotated[StrictInt, Field(ge=1, le=100)]
    ticket_id: Ref | None = None


class Restock(Strict):
    qty: Annotated[StrictInt, Field(ge=1, le=10000)]


class NewUnit(Strict):
    unit_id: UnitId


class EditInventory(Strict):
    name_zh: Annotated[Line, Field(max_length=100)] | None = None
    name_en: Annotated[Line, Field(max_length=200)] | None = None
    minimum: Annotated[StrictInt, Field(ge=0, le=100000)] | None = None
    """Consumables only."""


class RequestAssistance(Strict):
    kind: AssistanceKind
    ticket_id: Ref | None = None
    incident_id: Ref | None = None
    location: Short | None = None
    note: Note | None = None


class CompleteAssistance(Strict):
    note: Note | None = None


class CancelAssistance(Strict):
    reason: Short | None = None


class Duty(Strict):
    on_duty: StrictBool


def service(request: Request) -> ConciergeService:
    return request.app.state.concierge  # type: ignore[no-any-return]


Desk = Annotated[ConciergeService, Depends(service)]


class LoanView(BaseModel):
    loan_id: str
    sku: str
    unit_id: str
    ticket_id: str | None
    lent_at: datetime
    due_at: datetime
    status: LoanStatus
    returned_at: datetime | None
    condition: ReturnCondition | None
    overdue: bool
    """`item.overdue` went out for it."""
    reminded: list[ReturnReminderReason]
    borrower_name: str | None
    """A walk-in borrower's name, for the desk to ask for the unit back."""
    borrower_phone_masked: str | None
    """Their phone, masked: the full number stays in the database."""

    @classmethod
    def of(cls, loan: Loan) -> LoanView:
        return cls(
            loan_id=loan.id,
            sku=loan.sku,
            unit_id=loan.unit_id,
            ticket_id=loan.ticket_id,
            lent_at=loan.lent_at,
            due_at=loan.due_at,
            status=loan.status,
            returned_at=loan.returned_at,
            condition=loan.condition,
            overdue=loan.overdue_at is not None,
            reminded=loan.reminded,
            borrower_name=loan.borrower_name,
            borrower_phone_masked=mask_phone(loan.borrower_phone) if loan.borrower_phone else None,
        )


class UnitView(BaseModel):
    unit_id: str
    state: UnitState
    loan_id: str | None


class LendableView(BaseModel):
    sku: str
    name_zh: str
    name_en: str
    free: int
    units: list[UnitView]

    @classmethod
    def of(cls, item: Lendable) -> LendableView:
        return cls(
            sku=item.id,
            name_zh=item.name_zh,
            name_en=item.name_en,
            free=len(item.free_units()),
            units=[UnitView(unit_id=u.unit_id, state=u.state, loan_id=u.loan_id) for u in item.units],
        )


class ConsumableView(BaseModel):
    sku: str
    name_zh: str
    name_en: str
    stock: int
    minimum: int
    low: bool
    """Below its minimum: restock."""

    @classmethod
    def of(cls, item: Consumable) -> ConsumableView:
        return cls(
            sku=item.id,
            name_zh=item.name_zh,
            name_en=item.name_en,
            stock=item.stock,
            minimum=item.minimum,
            low=item.low,
        )


class InventoryView(BaseModel):
    lendables: list[LendableView]
    consumables: list[ConsumableView]


class Dispensed(BaseModel):
    dispensation_id: str
    sku: str
    qty: int
    remaining: int


class PublicAssistanceView(BaseModel):
    """A request as the kiosk that asked for it hears back: no concierge's id (docs/access.md)."""

    model_config = ConfigDict(extra="forbid")

    assistance_id: str
    kind: AssistanceKind
    status: AssistanceStatus
    ticket_id: str | None
    incident_id: str | None
    location: str | None
    note: str | None
    requested_at: datetime
    assigned_at: datetime | None
    accepted_at: datetime | None
    closed_at: datetime | None
    escalations: int

    @classmethod
    def of(cls, a: Assistance) -> PublicAssistanceView:
        return cls(
            assistance_id=a.id,
            kind=a.kind,
            status=a.status,
            ticket_id=a.ticket_id,
            incident_id=a.incident_id,
            location=a.location,
            note=a.note,
            requested_at=a.requested_at,
            assigned_at=a.assigned_at,
            accepted_at=a.accepted_at,
            closed_at=a.closed_at,
            escalations=a.escalations,
        )


class AssistanceView(PublicAssistanceView):
    model_config = ConfigDict(extra="ignore")

    concierge_id: str | None
    requested_by: str | None
    """The device that asked (`window:W09`, `guard`, `kiosk`…); none for what an event asked."""

    @classmethod
    def of(cls, a: Assistance) -> AssistanceView:
        return cls(**PublicAssistanceView.of(a).model_dump(), concierge_id=a.concierge_id, requested_by=a.requested_by)


def assistance_answer(who: Principal, a: Assistance) -> AssistanceView | PublicAssistanceView:
    return AssistanceView.of(a) if who.role in SEES_CONCIERGES else PublicAssistanceView.of(a)


def own_requests(who: Principal) -> Callable[[Assistance], None]:
    """The check a step makes of the caller: a concierge's handset, a request given to them."""
    if who.role == "concierge" and who.bound_to is not None:
        concierge_id = who.bound_to
        return lambda a: a.must_be_held_by(concierge_id)
    return lambda _: None


def may_withdraw(who: Principal) -> Callable[[Assistance], None]:
    """The desk and ops cancel any request; a window or a guard the requests it asked for."""
    if who.role in ("window", "guard"):
        role, bound_to = who.role, who.bound_to
        return lambda a: a.must_be_asked_by(role, bound_to)
    return own_requests(who)


class ConciergeView(BaseModel):
    concierge_id: str
    name_zh: str
    name_en: str
    on_duty: bool
    open_requests: int | None = None
    """Assigned or accepted requests they hold (in the roster listing)."""

    @classmethod
    def of(cls, c: Concierge, open_requests: int | None = None) -> ConciergeView:
        return cls(
            concierge_id=c.id, name_zh=c.name_zh, name_en=c.name_en, on_duty=c.on_duty, open_requests=open_requests
        )


# --- loans -------------------------------------------------------------------------------------


@router.post("/loans", status_code=201, tags=["loans"], responses=error_responses(404, 409, 422))
async def lend(
    body: LendItem, new_id: NewId, desk: Desk, _: Annotated[Principal, Depends(require(*STAFF))]
) -> LoanView:
    """Lend a free unit (409 when none is free); the borrower is a ticket, or a name and phone."""
    loan = await desk.lend(
        new_id,
        sku=body.sku,
        ticket_id=body.ticket_id,
        borrower_name=body.borrower.name if body.borrower else None,
        borrower_phone=body.borrower.phone if body.borrower else None,
        due_at=body.due_at,
    )
    return LoanView.of(loan)


@router.get("/loans", tags=["loans"], responses=error_responses(422))
async def loans(
    desk: Desk,
    _: Annotated[Principal, Depends(require(*READERS))],
    status: Annotated[LoanStatus | None, Query()] = None,
    ticket_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[LoanView]:
    """Loans by status or ticket, oldest first, a page at a time (`limit`, `offset`). Loans
    returned on an earlier business day are archived: look them up by id."""
    found = await desk.store.loans.find(
        matching(status=status, ticket_id=ticket_id), sort=[("lent_at", 1), ("_id", 1)], limit=limit, skip=offset
    )
    return [LoanView.of(loan) for loan in found]


@router.get("/loans/{loan_id}", tags=["loans"], responses=error_responses(404))
async def get_loan(loan_id: ItemId, desk: Desk, _: Annotated[Principal, Depends(require(*READERS))]) -> LoanView:
    return LoanView.of(await desk.loan(loan_id))


@router.post("/loans/{loan_id}/return", tags=["loans"], responses=error_responses(404, 409, 422))
async def give_back(
    loan_id: ItemId, body: ReturnItem, desk: Desk, _: Annotated[Principal, Depends(require(*STAFF))]
) -> LoanView:
    """The unit is back (ok: to the shelf; damaged: to maintenance) or written off as lost."""
    return LoanView.of(await desk.give_back(loan_id, body.condition))


# --- consumables and inventory -------------------------------------------------------------------


@router.post("/dispensations", status_code=201, tags=["inventory"], responses=error_responses(404, 409, 422))
async def dispense(
    body: Dispense, new_id: NewId, desk: Desk, _: Annotated[Principal, Depends(require(*STAFF))]
) -> Dispensed:
    """Hand out consumables: all of `qty` or nothing (409 when the stock is short)."""
    dispensation_id = new_id
    item = await desk.dispense(dispensation_id, body.sku, body.qty, body.ticket_id)
    return Dispensed(dispensation_id=dispensation_id, sku=item.id, qty=body.qty, remaining=item.stock)


@router.get("/inventory", tags=["inventory"])
async def inventory(desk: Desk, _: Annotated[Principal, Depends(require(*READERS))]) -> InventoryView:
    """Every lendable item with its units, and every consumable with its stock and minimum."""
    return InventoryView(
        lendables=[LendableView.of(i) for i in await desk.store.lendables.find({}, sort=[("_id", 1)])],
        consumables=[ConsumableView.of(i) for i in await desk.store.consumables.find({}, sort=[("_id", 1)])],
    )


@router.post("/inventory/{sku}/restock", tags=["inventory"], responses=error_responses(404, 422))
async def restock(
    sku: SkuPath, body: Restock, desk: Desk, _: Annotated[Principal, Depends(require(*STAFF))]
) -> ConsumableView:
    return ConsumableView.of(await desk.restock(sku, body.qty))


@router.put("/inventory/{sku}", tags=["inventory"], responses=error_responses(404, 422))
async def edit_inventory(
    sku: SkuPath, body: EditInventory, desk: Desk, _: Annotated[Principal, Depends(require("admin"))]
) -> ConsumableView | LendableView:
    """Rename an item, or change a consumable's minimum: admin only."""
    if not body.model_dump(exclude_none=True):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "nothing to change")
    item = await desk.edit_item(sku, name_zh=body.name_zh, name_en=body.name_en, minimum=body.minimum)
    return ConsumableView.of(item) if isinstance(item, Consumable) else LendableView.of(item)


@router.post("/inventory/{sku}/units", status_code=201, tags=["inventory"], responses=error_responses(404, 409, 422))
async def add_unit(
    sku: SkuPath, body: NewUnit, desk: Desk, _: Annotated[Principal, Depends(require("admin"))]
) -> LendableView:
    """A new unit joins the lending box: admin only."""
    return LendableView.of(await desk.add_unit(sku, body.unit_id))


@router.post("/inventory/{sku}/units/{unit_id}/repaired", tags=["inventory"], responses=error_responses(404, 409, 422))
async def repaired(
    sku: SkuPath, unit_id: UnitPath, desk: Desk, _: Annotated[Principal, Depends(require(*STAFF))]
) -> LendableView:
    """A unit back from maintenance goes on the shelf again."""
    return LendableView.of(await desk.repaired(sku, unit_id))


# --- assistance --------------------------------------------------------------------------------


@router.post("/assistance", status_code=201, tags=["assistance"], responses=error_responses(422))
async def request_assistance(
    body: RequestAssistance,
    new_id: NewId,
    desk: Desk,
    who: Annotated[Principal, Depends(require(*REQUESTERS))],
) -> AssistanceView | PublicAssistanceView:
    """Ask for a concierge: assigned at once to the least-loaded one on duty, or queued. The
    request remembers the device that asked; a kiosk hears back no concierge's id."""
    assistance = await desk.request_assistance(
        new_id,
        kind=body.kind,
        ticket_id=body.ticket_id,
        incident_id=body.incident_id,
        location=body.location,
        note=body.note,
        requested_by=requester(who.role, who.bound_to),
    )
    return assistance_answer(who, assistance)


@router.get("/assistance", tags=["assistance"], responses=error_responses(422))
async def list_assistance(
    desk: Desk,
    _: Annotated[Principal, Depends(require(*READERS))],
    status: Annotated[AssistanceStatus | None, Query()] = None,
    ticket_id: Annotated[str | None, Query(max_length=64)] = None,
    concierge_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[AssistanceView]:
    """Requests by status, ticket, or concierge (a concierge's own list: `?concierge_id=GK2&status=assigned`),
    oldest first, a page at a time (`limit`, `offset`). Requests closed on an earlier business day
    are archived: look them up by id."""
    query = matching(status=status, ticket_id=ticket_id, concierge_id=concierge_id)
    found = await desk.store.assistance.find(query, sort=[("requested_at", 1), ("_id", 1)], limit=limit, skip=offset)
    return [AssistanceView.of(a) for a in found]


@router.get("/assistance/{assistance_id}", tags=["assistance"], responses=error_responses(404))
async def get_assistance(
    assistance_id: ItemId, desk: Desk, _: Annotated[Principal, Depends(require(*READERS))]
) -> AssistanceView:
    return AssistanceView.of(await desk.assistance(assistance_id))


@router.post("/assistance/{assistance_id}/accept", tags=["assistance"], responses=STEP)
async def accept(
    assistance_id: ItemId, desk: Desk, who: Annotated[Principal, Depends(require(*STAFF))]
) -> AssistanceView:
    """On my way: a concierge's own handset accepts only what was given to them."""
    return AssistanceView.of(await desk.accept(assistance_id, own_requests(who)))


@router.post("/assistance/{assistance_id}/complete", tags=["assistance"], responses=STEP)
async def complete(
    assistance_id: ItemId,
    desk: Desk,
    who: Annotated[Principal, Depends(require(*STAFF))],
    body: CompleteAssistance | None = None,
) -> AssistanceView:
    return AssistanceView.of(await desk.complete(assistance_id, body.note if body else None, own_requests(who)))


@router.post("/assistance/{assistance_id}/cancel", tags=["assistance"], responses=STEP)
async def cancel(
    assistance_id: ItemId,
    desk: Desk,
    who: Annotated[Principal, Depends(require(*CANCELLERS))],
    body: CancelAssistance | None = None,
) -> AssistanceView:
    """No help needed after all: the desk or ops, the concierge it was given to, or the window or
    guard device that asked for it. A kiosk cannot: anyone may stand at it."""
    return AssistanceView.of(await desk.cancel(assistance_id, body.reason if body else None, may_withdraw(who)))


# --- the roster --------------------------------------------------------------------------------


@router.get("/concierges", tags=["roster"])
async def concierges(desk: Desk, _: Annotated[Principal, Depends(require(*READERS))]) -> list[ConciergeView]:
    """The Golden Key concierges, whether on duty, and how many open requests each holds."""
    load = await desk.store.open_load()
    return [ConciergeView.of(c, load.get(c.id, 0)) for c in await desk.store.concierges.find({}, sort=[("_id", 1)])]


@router.post("/concierges/{concierge_id}/duty", tags=["roster"], responses=error_responses(404, 422))
async def duty(
    concierge_id: ConciergeId, body: Duty, desk: Desk, who: Annotated[Principal, Depends(require("concierge", "ops"))]
) -> ConciergeView:
    """On or off duty: the desk or ops for anyone; a concierge's own handset for them alone."""
    if who.role == "concierge" and who.bound_to is not None and who.bound_to != concierge_id:
        raise Forbidden(f"this token is {who.bound_to}'s: it may not change {concierge_id}'s duty")
    return ConciergeView.of(await desk.set_duty(concierge_id, body.on_duty))
