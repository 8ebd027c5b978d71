"""The events the concierge consumes: needs on a ticket, the end of a visit, a flat tyre."""

from __future__ import annotations

from goldenkey.concierge.service import ConciergeService
from goldenkey.contracts import CloudEvent, TicketCancelled, TicketCompleted, TicketIssued, TicketNoShow, TyreAlert
from goldenkey.kit import ServiceKit


def register(kit: ServiceKit, concierge: ConciergeService) -> None:
    # Each handler is idempotent by itself, so none needs the kit's inbox: request ids derive from
    # the event, and reminders are applied to a loan with the event as their cause.

    @kit.consumer.on("ticket.issued", inbox=False)
    async def needs_on_a_ticket(envelope: CloudEvent, ticket: TicketIssued) -> None:
        await concierge.ticket_issued(envelope, ticket)

    @kit.consumer.on("ticket.completed", "ticket.cancelled", "ticket.no_show", inbox=False)
    async def visit_ended(envelope: CloudEvent, ticket: TicketCompleted | TicketCancelled | TicketNoShow) -> None:
        await concierge.visit_ended(envelope, ticket.ticket_id)

    @kit.consumer.on("tyre.alert", inbox=False)
    async def flat_tyre(envelope: CloudEvent, alert: TyreAlert) -> None:
        await concierge.tyre_alert(envelope, alert)
