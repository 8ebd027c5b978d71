"""Events the queue service emits: tickets (`queue.tickets`) and windows (`queue.windows`)."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from goldenkey.contracts.envelope import EventData
from goldenkey.contracts.registry import event
from goldenkey.contracts.topics import QUEUE_TICKETS, QUEUE_WINDOWS
from goldenkey.contracts.vocabulary import (
    Channel,
    Id,
    Need,
    Outcome,
    PauseReason,
    PlateHash,
    PlateMasked,
    Priority,
    Seconds,
    ShortText,
    Text,
    TicketNumber,
)

# --- queue.tickets ---------------------------------------------------------------------------------


@event("ticket.issued", topic=QUEUE_TICKETS, producer="queue")
class TicketIssued(EventData):
    """A citizen took a ticket (kiosk, app or staff)."""

    ticket_id: Id
    number: TicketNumber
    category: Id
    item_code: Id
    channel: Channel
    priority: Priority | None = None
    needs: list[Need] = Field(default_factory=list)
    """One assistance request is opened per need."""
    plate_hash: PlateHash | None = None
    """Links the ticket to a parked car, so a guard's report can reach its owner."""
    plate_masked: PlateMasked | None = None
    issued_at: AwareDatetime
    position: int | None = Field(default=None, ge=1)
    estimated_wait_s: Seconds | None = None


@event("ticket.approaching", topic=QUEUE_TICKETS, producer="queue")
class TicketApproaching(EventData):
    """A waiting ticket reached position 3 in its queue (once per ticket): time to come back."""

    ticket_id: Id
    number: TicketNumber
    category: Id
    position: int = Field(ge=1)
    estimated_wait_s: Seconds | None = None


@event("ticket.called", topic=QUEUE_TICKETS, producer="queue")
class TicketCalled(EventData):
    """A window called a ticket for the first time (next in line, or picked out of order)."""

    ticket_id: Id
    number: TicketNumber
    category: Id
    window_id: Id
    call_count: int = Field(default=1, ge=1)
    out_of_order: bool = False
    """Called by id (`POST /windows/{id}/call`) rather than as the next in line."""


@event("ticket.recalled", topic=QUEUE_TICKETS, producer="queue")
class TicketRecalled(EventData):
    """A called ticket was called again because nobody came (up to 3 calls in all)."""

    ticket_id: Id
    number: TicketNumber
    category: Id
    window_id: Id
    call_count: int = Field(ge=2)


@event("ticket.service_started", topic=QUEUE_TICKETS, producer="queue")
class TicketServiceStarted(EventData):
    """The citizen arrived at the window and service began."""

    ticket_id: Id
    number: TicketNumber
    category: Id
    window_id: Id
    staff_id: Id | None = None
    wait_s: Seconds
    """From issue (the original issue, across transfers) to the start of service."""


@event("ticket.completed", topic=QUEUE_TICKETS, producer="queue")
class TicketCompleted(EventData):
    """Service at the window ended with an outcome; `needs_materials` breaks the one-trip promise."""

    ticket_id: Id
    outcome: Outcome
    window_id: Id
    wait_s: Seconds
    service_s: Seconds
    number: TicketNumber | None = None
    category: Id | None = None
    item_code: Id | None = None
    staff_id: Id | None = None


@event("ticket.no_show", topic=QUEUE_TICKETS, producer="queue")
class TicketNoShow(EventData):
    """A ticket called three times without an answer was set aside; it may rejoin for a while."""

    ticket_id: Id
    number: TicketNumber
    category: Id
    window_id: Id | None = None
    call_count: int = Field(ge=1)
    rejoin_until: AwareDatetime | None = None
    """Until then the ticket may rejoin without losing its place."""


@event("ticket.transferred", topic=QUEUE_TICKETS, producer="queue")
class TicketTransferred(EventData):
    """A ticket was moved to another category's queue, keeping its original issue time."""

    ticket_id: Id
    number: TicketNumber
    """The number the ticket carries now, in the new category."""
    from_category: Id
    to_category: Id
    window_id: Id | None = None
    """The window that transferred it, if any."""
    issued_at: AwareDatetime


@event("ticket.cancelled", topic=QUEUE_TICKETS, producer="queue")
class TicketCancelled(EventData):
    """A ticket was withdrawn before service (by the citizen or staff)."""

    ticket_id: Id
    number: TicketNumber | None = None
    category: Id | None = None
    reason: ShortText | None = None


@event("ticket.paged", topic=QUEUE_TICKETS, producer="queue")
class TicketPaged(EventData):
    """A message was shown to a ticket's holder where they are: their window, else the waiting-area display."""

    ticket_id: Id
    message: Text
    window_id: Id | None = None
    """Absent when the page went to the waiting-area display."""
    incident_id: Id | None = None
    """The parking incident the page is about, if any."""
    number: TicketNumber | None = None


# --- queue.windows ---------------------------------------------------------------------------------


@event("window.opened", topic=QUEUE_WINDOWS, producer="queue", key="window_id")
class WindowOpened(EventData):
    """A member of staff opened a window; it serves its categories from now on."""

    window_id: Id
    staff_id: Id
    categories: list[Id] = Field(default_factory=list)


@event("window.paused", topic=QUEUE_WINDOWS, producer="queue", key="window_id")
class WindowPaused(EventData):
    """A window paused for lunch or a break; `forced` when an ops token overrode the coverage rule."""

    window_id: Id
    reason: PauseReason
    forced: bool = False
    staff_id: Id | None = None


@event("window.resumed", topic=QUEUE_WINDOWS, producer="queue", key="window_id")
class WindowResumed(EventData):
    """A paused window took tickets again."""

    window_id: Id
    staff_id: Id | None = None


@event("window.closed", topic=QUEUE_WINDOWS, producer="queue", key="window_id")
class WindowClosed(EventData):
    """A window closed for the day (or until reopened)."""

    window_id: Id
    staff_id: Id | None = None


@event("coverage.gap_opened", topic=QUEUE_WINDOWS, producer="queue", key="category")
class CoverageGapOpened(EventData):
    """A category was left with no open window during business hours."""

    category: Id
    opened_at: AwareDatetime
    window_id: Id | None = None
    """The window whose pause or close left the category uncovered, if one did."""


@event("coverage.gap_closed", topic=QUEUE_WINDOWS, producer="queue", key="category")
class CoverageGapClosed(EventData):
    """An uncovered category has an open window again (or business hours ended)."""

    category: Id
    opened_at: AwareDatetime
    closed_at: AwareDatetime
    window_id: Id | None = None
    """The window that covers it again, if one does."""
