"""The events the parking service consumes: a ticket with a plate, the owner's page, the concierge's help."""

from __future__ import annotations

from goldenkey.contracts import AssistanceCompleted, CloudEvent, TicketIssued, TicketPaged
from goldenkey.kit import ServiceKit
from goldenkey.parking.service import ParkingService


def register(kit: ServiceKit, parking: ParkingService) -> None:
    # Each handler is idempotent by itself, so none needs the kit's inbox: a ticket's plate is
    # stored under the ticket's id, and visits and incidents are updated with the event as cause.

    @kit.consumer.on("ticket.issued", inbox=False)
    async def ticket_with_a_plate(envelope: CloudEvent, ticket: TicketIssued) -> None:
        await parking.ticket_issued(envelope, ticket)

    @kit.consumer.on("ticket.paged", inbox=False)
    async def owner_paged(envelope: CloudEvent, page: TicketPaged) -> None:
        await parking.ticket_paged(envelope, page)

    @kit.consumer.on("assistance.completed", inbox=False)
    async def concierge_helped(envelope: CloudEvent, done: AssistanceCompleted) -> None:
        await parking.assistance_completed(envelope, done)
