"""The queue's HTTP API: thin — validate, authorise, call the use case, answer.

Who may do what, and to whom, is docs/access.md: a kiosk acts on a ticket only when shown the code
on its slip; a window terminal whose token is bound to a window acts only for that window and the
tickets at it; kiosks and guards do not see a ticket's needs or priority, kiosks no window's staff.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from goldenkey.contracts.vocabulary import Channel, Need, Outcome, PauseReason, Priority
from goldenkey.kit import NewId, Principal, error_responses, require
from goldenkey.kit.errors import Forbidden
from goldenkey.kit.http import may_have_run_before
from goldenkey.kit.inputs import Line, Strict
from goldenkey.queue.domain import Ticket, TicketStatus, Window, WindowState
from goldenkey.queue.service import QueueService

router = APIRouter()
ANYONE = ("kiosk", "window", "concierge", "guard", "ops")
SEES_NEEDS = {"window", "concierge", "ops", "admin"}
"""A ticket's needs and priority tell of a disability, a pregnancy, an infant: for those who serve
or help the citizen."""
NEEDS = ("needs", "priority")
SEES_STAFF = {"window", "concierge", "guard", "ops", "admin"}
"""Who sees which member of staff is at a window (not the public kiosk)."""
Code = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z][A-Z0-9]{0,15}$")]
StaffId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
SlipCode = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$")]
TicketId = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[\w.:-]+$", description="A ticket's id, as `POST /tickets` gave it."),
]
WindowId = Annotated[
    str, Path(min_length=1, max_length=16, pattern=r"^[A-Z0-9][A-Z0-9-]*$", description="A window's id, e.g. `W09`.")
]
ItemCode = Annotated[
    str,
    Path(min_length=1, max_length=16, pattern=r"^[A-Z][A-Z0-9]*$", description="A service item's code, e.g. `B001`."),
]
CategoryCode = Annotated[str, Path(min_length=1, max_length=1, pattern=r"^[A-Z]$", description="A category's letter.")]
STEP = error_responses(404, 409)
"""What a step of a ticket's or a window's lifecycle can end in besides success (and 403: the
token's role may do it, but not for this window or ticket)."""


class IssueTicket(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"item_code": "B001", "channel": "kiosk", "priority": "elderly"}]}
    )

    item_code: Code
    channel: Channel
    priority: Priority | None = None
    needs: list[Need] = Field(default_factory=list, max_length=5)
    phone: str | None = Field(default=None, max_length=20)
    plate: str | None = Field(default=None, max_length=16)


class OpenWindow(Strict):
    staff_id: StaffId


class PauseWindow(Strict):
    reason: PauseReason
    force: bool = False
    """Pause even if a category is left with no open window: ops only."""


class CallTicket(Strict):
    ticket_id: Annotated[str, Field(min_length=1, max_length=64)]


class CompleteTicket(Strict):
    outcome: Outcome


class TransferTicket(Strict):
    category: Annotated[str, Field(pattern=r"^[A-Z]$")]


class StartService(Strict):
    staff_id: StaffId | None = None


class Slip(Strict):
    slip_code: SlipCode | None = None
    """The code printed on the ticket's slip: a kiosk must send it; staff need not."""


class EditItem(Strict):
    name_zh: Annotated[Line, Field(max_length=100)] | None = None
    name_en: Annotated[Line, Field(max_length=200)] | None = None
    service_min: Annotated[int, Field(ge=1, le=240)] | None = None
    materials: list[Annotated[Line, Field(max_length=100)]] | None = Field(default=None, max_length=20)
    materials_en: list[Annotated[Line, Field(max_length=200)]] | None = Field(default=None, max_length=20)


class EditCategory(Strict):
    name_zh: Annotated[Line, Field(max_length=100)] | None = None
    name_en: Annotated[Line, Field(max_length=200)] | None = None
    target_wait_min: Annotated[int, Field(ge=1, le=240)] | None = None
    service_min: Annotated[int, Field(ge=1, le=240)] | None = None


# --- what it answers (documented, and checked on the way out) --------------------------------


class IssuedTicket(BaseModel):
    ticket_id: str
    number: str
    category: str
    position: int | None
    estimated_wait_s: float | None
    slip_code: str
    """Print it on the slip (and in its QR): a kiosk must be shown it to cancel the ticket or
    rejoin the queue with it. Given only in this answer; the service keeps only its hash."""


class PublicTicketView(BaseModel):
    """A ticket as a kiosk or a guard sees it: no needs, no priority (docs/access.md)."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: str
    number: str
    category: str
    item_code: str
    status: TicketStatus
    window_id: str | None
    call_count: int
    issued_at: datetime
    outcome: Outcome | None
    position: int | None
    """In its category's queue, from 1, while it waits."""
    estimated_wait_s: float | None


class TicketView(PublicTicketView):
    """A ticket as the staff who serve or help the citizen see it: with their needs and priority."""

    model_config = ConfigDict(extra="ignore")

    priority: Priority | None
    needs: list[Need]


class PublicWindowView(BaseModel):
    """A window as a kiosk sees it: no staff, no counts (docs/access.md)."""

    model_config = ConfigDict(extra="forbid")

    window_id: str
    name_zh: str
    categories: list[str]
    state: WindowState
    pause_reason: PauseReason | None


class WindowView(PublicWindowView):
    model_config = ConfigDict(extra="ignore")

    staff_id: str | None
    out_of_order_calls: int


class CategoryView(BaseModel):
    code: str
    name_zh: str
    name_en: str
    target_wait_min: int
    service_min: int


class CatalogItem(BaseModel):
    code: str
    category: str
    name_zh: str
    name_en: str
    service_min: int
    materials: list[str]
    materials_en: list[str]


class QueueView(BaseModel):
    category: str
    name_zh: str
    waiting: int
    open_windows: int


def service(request: Request) -> QueueService:
    return request.app.state.queue  # type: ignore[no-any-return]


Queue = Annotated[QueueService, Depends(service)]


def for_window(who: Principal, window_id: str) -> None:
    """A window token bound to a window acts only for that window; an unbound one (a person's,
    the dev token) for any."""
    if who.role == "window" and who.bound_to is not None and who.bound_to != window_id:
        raise Forbidden(f"this token is window {who.bound_to}'s: it may not act for window {window_id}")


def at_callers_window(who: Principal, *, or_at_none: bool = False) -> Callable[[Ticket], None]:
    """The check a ticket's step makes of a window caller: a bound token, a ticket at its window."""
    if who.role == "window" and who.bound_to is not None:
        window_id = who.bound_to
        return lambda ticket: ticket.must_be_at_window(window_id, or_at_none=or_at_none)
    return lambda _: None


def holder_or_staff(who: Principal, slip: Slip | None, *, or_at_none: bool = False) -> Callable[[Ticket], None]:
    """A kiosk acts for the ticket's holder, who shows its slip; staff as `at_callers_window`."""
    if who.role == "kiosk":
        code = slip.slip_code if slip else None
        return lambda ticket: ticket.must_be_shown_its_slip(code)
    return at_callers_window(who, or_at_none=or_at_none)


def checked(
    check: Callable[[Ticket], None], step: Callable[[Ticket, datetime], None]
) -> Callable[[Ticket, datetime], None]:
    """`step`, once `check` let the caller take it (nothing is written when it does not)."""

    def checked_step(ticket: Ticket, at: datetime) -> None:
        check(ticket)
        step(ticket, at)

    return checked_step


def answer_for(who: Principal, view: dict[str, Any], hidden: tuple[str, ...], sees: set[str]) -> dict[str, Any]:
    return view if who.role in sees else {k: v for k, v in view.items() if k not in hidden}


def ticket_view(ticket: Ticket, position: int | None = None, wait: float | None = None) -> dict[str, Any]:
    return {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "category": ticket.category,
        "item_code": ticket.item_code,
        "status": ticket.status,
        "priority": ticket.priority,
        "needs": ticket.needs,
        "window_id": ticket.window_id,
        "call_count": ticket.call_count,
        "issued_at": ticket.issued_at,
        "outcome": ticket.outcome,
        "position": position,
        "estimated_wait_s": wait,
    }


def window_view(window: Window) -> dict[str, Any]:
    return {
        "window_id": window.id,
        "name_zh": window.name_zh,
        "categories": window.categories,
        "state": window.state,
        "staff_id": window.staff_id,
        "pause_reason": window.pause_reason,
        "out_of_order_calls": window.out_of_order_calls,
    }


# --- tickets -----------------------------------------------------------------------------------


@router.post("/tickets", status_code=201, tags=["tickets"], response_model=IssuedTicket, responses=error_responses(422))
async def issue_ticket(
    body: IssueTicket,
    ticket_id: NewId,
    request: Request,
    queue: Queue,
    _: Annotated[Principal, Depends(require("kiosk"))],
) -> dict[str, Any]:
    """Take a ticket for a service item; `Idempotency-Key` makes a kiosk's retry safe. The answer's
    `slip_code` goes on the slip: a kiosk asks for it before it cancels the ticket or rejoins it."""
    ticket, position, wait, slip_code = await queue.issue(
        ticket_id,
        item_code=body.item_code,
        channel=body.channel,
        priority=body.priority,
        needs=body.needs,
        phone=body.phone,
        plate=body.plate,
        retry=may_have_run_before(request),
    )
    if position is None:  # a retry of a ticket issued before: where it stands now
        _, position, wait = await queue.status(ticket.id)
    return {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "category": ticket.category,
        "position": position,
        "estimated_wait_s": wait,
        "slip_code": slip_code,
    }


@router.get(
    "/tickets/{ticket_id}",
    tags=["tickets"],
    response_model=TicketView | PublicTicketView,
    responses=error_responses(404),
)
async def get_ticket(
    ticket_id: TicketId, queue: Queue, who: Annotated[Principal, Depends(require(*ANYONE))]
) -> dict[str, Any]:
    """Where a ticket stands. Kiosks and guards do not see its `needs` and `priority`."""
    return answer_for(who, ticket_view(*await queue.status(ticket_id)), NEEDS, SEES_NEEDS)


@router.post("/tickets/{ticket_id}/recall", tags=["tickets"], response_model=TicketView, responses=STEP)
async def recall(
    ticket_id: TicketId, queue: Queue, who: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    """Call the ticket again, at the window it was called to (a bound window token: its own)."""
    return ticket_view(await queue.act(ticket_id, checked(at_callers_window(who), Ticket.recall)))


@router.post("/tickets/{ticket_id}/start", tags=["tickets"], response_model=TicketView, responses=STEP)
async def start(
    ticket_id: TicketId,
    queue: Queue,
    who: Annotated[Principal, Depends(require("window"))],
    body: StartService | None = None,
) -> dict[str, Any]:
    """Service begins, by the staff member named, or by whoever opened the window."""
    staff_id = body.staff_id if body else None
    return ticket_view(await queue.start_service(ticket_id, staff_id, at_callers_window(who)))


@router.post("/tickets/{ticket_id}/complete", tags=["tickets"], response_model=TicketView, responses=STEP)
async def complete(
    ticket_id: TicketId, body: CompleteTicket, queue: Queue, who: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    step = checked(at_callers_window(who), lambda t, at: t.complete(body.outcome, at))
    return ticket_view(await queue.act(ticket_id, step))


@router.post("/tickets/{ticket_id}/no-show", tags=["tickets"], response_model=TicketView, responses=STEP)
async def no_show(
    ticket_id: TicketId, queue: Queue, who: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    return ticket_view(await queue.act(ticket_id, checked(at_callers_window(who), Ticket.mark_no_show)))


@router.post(
    "/tickets/{ticket_id}/rejoin",
    tags=["tickets"],
    response_model=TicketView | PublicTicketView,
    responses=error_responses(404, 409, 422),
)
async def rejoin(
    ticket_id: TicketId,
    queue: Queue,
    who: Annotated[Principal, Depends(require("kiosk", "window"))],
    body: Slip | None = None,
) -> dict[str, Any]:
    """A no-show back within ten minutes keeps their place: at a kiosk, showing the slip's code;
    or at the window that called them."""
    ticket = await queue.act(ticket_id, checked(holder_or_staff(who, body), Ticket.rejoin))
    return answer_for(who, ticket_view(ticket), NEEDS, SEES_NEEDS)


@router.post(
    "/tickets/{ticket_id}/transfer",
    tags=["tickets"],
    response_model=TicketView,
    responses=error_responses(404, 409, 422),
)
async def transfer(
    ticket_id: TicketId, body: TransferTicket, queue: Queue, who: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    return ticket_view(await queue.transfer(ticket_id, body.category, at_callers_window(who)))


@router.post(
    "/tickets/{ticket_id}/cancel",
    tags=["tickets"],
    response_model=TicketView | PublicTicketView,
    responses=error_responses(404, 409, 422),
)
async def cancel(
    ticket_id: TicketId,
    queue: Queue,
    who: Annotated[Principal, Depends(require("kiosk", "window", "concierge", "ops"))],
    body: Slip | None = None,
) -> dict[str, Any]:
    """The citizen gives up their place: at a kiosk, showing the slip's code; at a window (a bound
    window token: a ticket at its window or at none); at the concierge desk; or by ops."""
    ticket = await queue.act(
        ticket_id, checked(holder_or_staff(who, body, or_at_none=True), lambda t, at: t.cancel(at))
    )
    return answer_for(who, ticket_view(ticket), NEEDS, SEES_NEEDS)


# --- windows -----------------------------------------------------------------------------------


@router.get("/windows", tags=["windows"], response_model=list[WindowView | PublicWindowView])
async def list_windows(queue: Queue, who: Annotated[Principal, Depends(require(*ANYONE))]) -> list[dict[str, Any]]:
    """Every window, what it serves and its state; who staffs it (not for kiosks)."""
    hidden = ("staff_id", "out_of_order_calls")
    return [answer_for(who, window_view(w), hidden, SEES_STAFF) for w in await queue.store.all_windows()]


@router.post("/windows/{window_id}/open", tags=["windows"], response_model=WindowView, responses=STEP)
async def open_window(
    window_id: WindowId, body: OpenWindow, queue: Queue, who: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    for_window(who, window_id)
    return window_view(await queue.open_window(window_id, body.staff_id))


@router.post("/windows/{window_id}/pause", tags=["windows"], response_model=WindowView, responses=STEP)
async def pause_window(
    window_id: WindowId, body: PauseWindow, queue: Queue, who: Annotated[Principal, Depends(require("window", "ops"))]
) -> dict[str, Any]:
    for_window(who, window_id)
    if body.force and who.role not in ("ops", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an ops token may force a pause")
    return window_view(await queue.pause(window_id, body.reason, force=body.force))


@router.post("/windows/{window_id}/resume", tags=["windows"], response_model=WindowView, responses=STEP)
async def resume_window(
    window_id: WindowId, queue: Queue, who: Annotated[Principal, Depends(require("window", "ops"))]
) -> dict[str, Any]:
    for_window(who, window_id)
    return window_view(await queue.resume(window_id))


@router.post("/windows/{window_id}/close", tags=["windows"], response_model=WindowView, responses=STEP)
async def close_window(
    window_id: WindowId, queue: Queue, who: Annotated[Principal, Depends(require("window", "ops"))]
) -> dict[str, Any]:
    for_window(who, window_id)
    return window_view(await queue.close(window_id))


@router.post(
    "/windows/{window_id}/call-next",
    tags=["windows"],
    response_model=TicketView,
    responses={204: {"description": "nobody waiting"}, **STEP},
)
async def call_next(window_id: WindowId, queue: Queue, who: Annotated[Principal, Depends(require("window"))]) -> Any:
    for_window(who, window_id)
    ticket = await queue.call_next(window_id)
    return Response(status_code=204) if ticket is None else ticket_view(ticket)


@router.post("/windows/{window_id}/call", tags=["windows"], response_model=TicketView, responses=STEP)
async def call_out_of_order(
    window_id: WindowId, body: CallTicket, queue: Queue, who: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    for_window(who, window_id)
    return ticket_view(await queue.call_ticket(window_id, body.ticket_id))


# --- the hall ----------------------------------------------------------------------------------


@router.get("/categories", tags=["hall"], response_model=list[CategoryView])
async def categories(queue: Queue, _: Annotated[Principal, Depends(require(*ANYONE))]) -> list[dict[str, Any]]:
    return await queue.store.category_rows()


@router.get("/catalog", tags=["hall"], response_model=list[CatalogItem])
async def catalog(
    queue: Queue,
    _: Annotated[Principal, Depends(require(*ANYONE))],
    category: Annotated[str | None, Query(pattern=r"^[A-Z]$")] = None,
) -> list[dict[str, Any]]:
    return await queue.store.catalog(category)


@router.get("/stats/today", tags=["hall"])
async def stats_today(queue: Queue, _: Annotated[Principal, Depends(require("ops"))]) -> dict[str, Any]:
    """Issued, served, no-shows, average wait and service, service level and one-trip breaches,
    overall, per category and per window."""
    return await queue.stats_today()


@router.put("/catalog/{code}", tags=["hall"], response_model=CatalogItem, responses=error_responses(404, 422))
async def edit_item(
    code: ItemCode, body: EditItem, queue: Queue, _: Annotated[Principal, Depends(require("admin"))]
) -> dict[str, Any]:
    """Change a service item (names, minutes, required materials): admin only."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "nothing to change")
    if ("materials" in changes) != ("materials_en" in changes):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "change materials and materials_en together")
    if "materials" in changes and len(changes["materials"]) != len(changes["materials_en"]):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "materials and materials_en differ in length")
    edited = await queue.store.edit("catalog", code, changes)
    if edited is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service item {code}")
    return edited


@router.put("/categories/{code}", tags=["hall"], response_model=CategoryView, responses=error_responses(404, 422))
async def edit_category(
    code: CategoryCode, body: EditCategory, queue: Queue, _: Annotated[Principal, Depends(require("admin"))]
) -> dict[str, Any]:
    """Change a category's names, target wait or typical service time: admin only."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "nothing to change")
    edited = await queue.store.edit("categories", code, changes)
    if edited is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no category {code}")
    return edited


@router.get("/queues", tags=["hall"], response_model=list[QueueView])
async def queues(queue: Queue, _: Annotated[Principal, Depends(require(*ANYONE))]) -> list[dict[str, Any]]:
    now, _ = queue.today()
    waiting = await queue.store.waiting(queue.calendar.business_day(now))
    windows = await queue.store.all_windows()
    return [
        {
            "category": row["code"],
            "name_zh": row["name_zh"],
            "waiting": sum(1 for t in waiting if t.category == row["code"]),
            "open_windows": sum(1 for w in windows if w.state == "open" and w.serves(row["code"])),
        }
        for row in await queue.store.category_rows()
    ]
