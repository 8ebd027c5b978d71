"""Events the concierge service emits: loans, consumable stock and assistance requests.

Walk-in borrowers have no account and their name and phone stay in the concierge service: loans
are tied to a visit only through `ticket_id`.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from goldenkey.contracts.envelope import EventData
from goldenkey.contracts.registry import event
from goldenkey.contracts.topics import CONCIERGE_ASSISTANCE, CONCIERGE_LOANS, CONCIERGE_STOCK
from goldenkey.contracts.vocabulary import (
    AssistanceKind,
    Count,
    Id,
    ReturnedCondition,
    ReturnReminderReason,
    Seconds,
    ShortText,
    Text,
)

# --- concierge.loans -------------------------------------------------------------------------------


@event("item.lent", topic=CONCIERGE_LOANS, producer="concierge")
class ItemLent(EventData):
    """A unit of a lendable item (reading glasses, a wheelchair…) left the lending box."""

    loan_id: Id
    sku: Id
    unit_id: Id
    due_at: AwareDatetime
    ticket_id: Id | None = None


@event("item.returned", topic=CONCIERGE_LOANS, producer="concierge")
class ItemReturned(EventData):
    """A lent unit came back; a damaged one goes to maintenance, not back on the shelf."""

    loan_id: Id
    sku: Id
    unit_id: Id
    condition: ReturnedCondition
    ticket_id: Id | None = None
    overdue: bool = False
    """It came back after its due time."""


@event("item.overdue", topic=CONCIERGE_LOANS, producer="concierge")
class ItemOverdue(EventData):
    """A loan passed its due time without the unit coming back (once per loan)."""

    loan_id: Id
    sku: Id
    unit_id: Id
    due_at: AwareDatetime
    ticket_id: Id | None = None


@event("item.lost", topic=CONCIERGE_LOANS, producer="concierge")
class ItemLost(EventData):
    """A lent unit was written off as lost (returned with condition `lost`)."""

    loan_id: Id
    sku: Id
    unit_id: Id
    ticket_id: Id | None = None


@event("item.return_requested", topic=CONCIERGE_LOANS, producer="concierge")
class ItemReturnRequested(EventData):
    """A borrower is reminded to bring a unit back: its due time is near, or their visit ended."""

    loan_id: Id
    sku: Id
    unit_id: Id
    due_at: AwareDatetime
    reason: ReturnReminderReason
    ticket_id: Id | None = None


# --- concierge.stock -------------------------------------------------------------------------------


@event("consumable.dispensed", topic=CONCIERGE_STOCK, producer="concierge")
class ConsumableDispensed(EventData):
    """Consumables (band-aids, candy, a sewing kit…) were handed out."""

    sku: Id
    qty: int = Field(ge=1)
    remaining: Count
    ticket_id: Id | None = None
    dispensation_id: Id | None = None


@event("stock.low", topic=CONCIERGE_STOCK, producer="concierge")
class StockLow(EventData):
    """A consumable's stock fell below its minimum (once each time it crosses)."""

    sku: Id
    remaining: Count
    minimum: Count


@event("stock.restocked", topic=CONCIERGE_STOCK, producer="concierge")
class StockRestocked(EventData):
    """A consumable was restocked."""

    sku: Id
    qty: int = Field(ge=1)
    remaining: Count
    """The stock level after restocking."""
    minimum: Count | None = None


# --- concierge.assistance --------------------------------------------------------------------------


@event("assistance.requested", topic=CONCIERGE_ASSISTANCE, producer="concierge")
class AssistanceRequested(EventData):
    """Someone needs a concierge: a need on a ticket, a desk request, or a car problem (`vehicle_help`)."""

    assistance_id: Id
    kind: AssistanceKind
    ticket_id: Id | None = None
    incident_id: Id | None = None
    location: ShortText | None = None
    note: Text | None = None


@event("assistance.assigned", topic=CONCIERGE_ASSISTANCE, producer="concierge")
class AssistanceAssigned(EventData):
    """A request was given to the least-loaded on-duty concierge (again, after an escalation)."""

    assistance_id: Id
    kind: AssistanceKind
    concierge_id: Id
    ticket_id: Id | None = None
    incident_id: Id | None = None
    previous_concierge_id: Id | None = None
    """Set on a reassignment: the concierge who did not accept in time."""


@event("assistance.accepted", topic=CONCIERGE_ASSISTANCE, producer="concierge")
class AssistanceAccepted(EventData):
    """The assigned concierge accepted the request and is on the way."""

    assistance_id: Id
    kind: AssistanceKind
    concierge_id: Id
    ticket_id: Id | None = None
    incident_id: Id | None = None
    waited_s: Seconds | None = None
    """From the request to its acceptance."""


@event("assistance.completed", topic=CONCIERGE_ASSISTANCE, producer="concierge")
class AssistanceCompleted(EventData):
    """A concierge finished helping; for `vehicle_help` the car problem is dealt with."""

    assistance_id: Id
    kind: AssistanceKind
    ticket_id: Id | None = None
    incident_id: Id | None = None
    concierge_id: Id | None = None
    note: Text | None = None


@event("assistance.escalated", topic=CONCIERGE_ASSISTANCE, producer="concierge")
class AssistanceEscalated(EventData):
    """A request was not accepted within 3 minutes; it is being reassigned."""

    assistance_id: Id
    kind: AssistanceKind
    concierge_id: Id | None = None
    """The concierge who did not accept in time (none when nobody was on duty)."""
    waited_s: Seconds
    ticket_id: Id | None = None
    incident_id: Id | None = None


@event("assistance.cancelled", topic=CONCIERGE_ASSISTANCE, producer="concierge")
class AssistanceCancelled(EventData):
    """A request was withdrawn before it was completed."""

    assistance_id: Id
    kind: AssistanceKind
    ticket_id: Id | None = None
    incident_id: Id | None = None
    reason: ShortText | None = None
