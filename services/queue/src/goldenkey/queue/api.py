"""The queue's HTTP API: thin — validate, authorise, call the use case, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from goldenkey.contracts.vocabulary import Channel, Need, Outcome, PauseReason, Priority
from goldenkey.kit import NewId, Principal, error_responses, require
from goldenkey.kit.http import may_have_run_before
from goldenkey.kit.inputs import Line, Strict
from goldenkey.queue.domain import Ticket, TicketStatus, Window, WindowState
from goldenkey.queue.service import QueueService

router = APIRouter()
ANYONE = ("kiosk", "window", "concierge", "guard", "ops")
Code = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z][A-Z0-9]{0,15}$")]
StaffId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
STEP = error_responses(404, 409)
"""What a step of a ticket's or a window's lifecycle can end in besides success."""


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


class TicketView(BaseModel):
    ticket_id: str
    number: str
    category: str
    item_code: str
    status: TicketStatus
    priority: Priority | None
    needs: list[Need]
    window_id: str | None
    call_count: int
    issued_at: datetime
    outcome: Outcome | None
    position: int | None
    """In its category's queue, from 1, while it waits."""
    estimated_wait_s: float | None


class WindowView(BaseModel):
    window_id: str
    name_zh: str
    categories: list[str]
    state: WindowState
    staff_id: str | None
    pause_reason: PauseReason | None
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
    """Take a ticket for a service item; `Idempotency-Key` makes a kiosk's retry safe."""
    ticket, position, wait = await queue.issue(
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
    }


@router.get("/tickets/{ticket_id}", tags=["tickets"], response_model=TicketView, responses=error_responses(404))
async def get_ticket(
    ticket_id: str, queue: Queue, _: Annotated[Principal, Depends(require(*ANYONE))]
) -> dict[str, Any]:
    return ticket_view(*await queue.status(ticket_id))


@router.post("/tickets/{ticket_id}/recall", tags=["tickets"], response_model=TicketView, responses=STEP)
async def recall(ticket_id: str, queue: Queue, _: Annotated[Principal, Depends(require("window"))]) -> dict[str, Any]:
    return ticket_view(await queue.act(ticket_id, Ticket.recall))


@router.post("/tickets/{ticket_id}/start", tags=["tickets"], response_model=TicketView, responses=STEP)
async def start(
    ticket_id: str, queue: Queue, _: Annotated[Principal, Depends(require("window"))], body: StartService | None = None
) -> dict[str, Any]:
    """Service begins, by the staff member named, or by whoever opened the window."""
    return ticket_view(await queue.start_service(ticket_id, body.staff_id if body else None))


@router.post("/tickets/{ticket_id}/complete", tags=["tickets"], response_model=TicketView, responses=STEP)
async def complete(
    ticket_id: str, body: CompleteTicket, queue: Queue, _: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    return ticket_view(await queue.act(ticket_id, lambda t, at: t.complete(body.outcome, at)))


@router.post("/tickets/{ticket_id}/no-show", tags=["tickets"], response_model=TicketView, responses=STEP)
async def no_show(ticket_id: str, queue: Queue, _: Annotated[Principal, Depends(require("window"))]) -> dict[str, Any]:
    return ticket_view(await queue.act(ticket_id, Ticket.mark_no_show))


@router.post("/tickets/{ticket_id}/rejoin", tags=["tickets"], response_model=TicketView, responses=STEP)
async def rejoin(
    ticket_id: str, queue: Queue, _: Annotated[Principal, Depends(require("kiosk", "window"))]
) -> dict[str, Any]:
    return ticket_view(await queue.act(ticket_id, Ticket.rejoin))


@router.post(
    "/tickets/{ticket_id}/transfer",
    tags=["tickets"],
    response_model=TicketView,
    responses=error_responses(404, 409, 422),
)
async def transfer(
    ticket_id: str, body: TransferTicket, queue: Queue, _: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    return ticket_view(await queue.transfer(ticket_id, body.category))


@router.post("/tickets/{ticket_id}/cancel", tags=["tickets"], response_model=TicketView, responses=STEP)
async def cancel(
    ticket_id: str, queue: Queue, _: Annotated[Principal, Depends(require("kiosk", "window"))]
) -> dict[str, Any]:
    return ticket_view(await queue.act(ticket_id, lambda t, at: t.cancel(at)))


# --- windows -----------------------------------------------------------------------------------


@router.get("/windows", tags=["windows"], response_model=list[WindowView])
async def list_windows(queue: Queue, _: Annotated[Principal, Depends(require(*ANYONE))]) -> list[dict[str, Any]]:
    return [window_view(w) for w in await queue.store.all_windows()]


@router.post("/windows/{window_id}/open", tags=["windows"], response_model=WindowView, responses=STEP)
async def open_window(
    window_id: str, body: OpenWindow, queue: Queue, _: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
    return window_view(await queue.open_window(window_id, body.staff_id))


@router.post("/windows/{window_id}/pause", tags=["windows"], response_model=WindowView, responses=STEP)
async def pause_window(
    window_id: str, body: PauseWindow, queue: Queue, who: Annotated[Principal, Depends(require("window", "ops"))]
) -> dict[str, Any]:
    if body.force and who.role not in ("ops", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an ops token may force a pause")
    return window_view(await queue.pause(window_id, body.reason, force=body.force))


@router.post("/windows/{window_id}/resume", tags=["windows"], response_model=WindowView, responses=STEP)
async def resume_window(
    window_id: str, queue: Queue, _: Annotated[Principal, Depends(require("window", "ops"))]
) -> dict[str, Any]:
    return window_view(await queue.resume(window_id))


@router.post("/windows/{window_id}/close", tags=["windows"], response_model=WindowView, responses=STEP)
async def close_window(
    window_id: str, queue: Queue, _: Annotated[Principal, Depends(require("window", "ops"))]
) -> dict[str, Any]:
    return window_view(await queue.close(window_id))


@router.post(
    "/windows/{window_id}/call-next",
    tags=["windows"],
    response_model=TicketView,
    responses={204: {"description": "nobody waiting"}, **STEP},
)
async def call_next(window_id: str, queue: Queue, _: Annotated[Principal, Depends(require("window"))]) -> Any:
    ticket = await queue.call_next(window_id)
    return Response(status_code=204) if ticket is None else ticket_view(ticket)


@router.post("/windows/{window_id}/call", tags=["windows"], response_model=TicketView, responses=STEP)
async def call_out_of_order(
    window_id: str, body: CallTicket, queue: Queue, _: Annotated[Principal, Depends(require("window"))]
) -> dict[str, Any]:
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
    code: str, body: EditItem, queue: Queue, _: Annotated[Principal, Depends(require("admin"))]
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
    code: str, body: EditCategory, queue: Queue, _: Annotated[Principal, Depends(require("admin"))]
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
