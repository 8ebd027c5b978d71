"""The events the feedback service consumes: the ends of services, each an invitation to rate."""

from __future__ import annotations

from goldenkey.contracts import AssistanceCompleted, CloudEvent, IncidentResolved, TicketCompleted
from goldenkey.feedback.service import FeedbackService
from goldenkey.kit import ServiceKit


def register(kit: ServiceKit, feedback: FeedbackService) -> None:
    # Each handler is idempotent by itself, so none needs the kit's inbox: an invitation's id is
    # its subject's, and a redelivery finds it there already.

    @kit.consumer.on("ticket.completed", inbox=False)
    async def visit_ended(envelope: CloudEvent, done: TicketCompleted) -> None:
        await feedback.ticket_completed(envelope, done)

    @kit.consumer.on("assistance.completed", inbox=False)
    async def concierge_helped(envelope: CloudEvent, done: AssistanceCompleted) -> None:
        await feedback.assistance_completed(envelope, done)

    @kit.consumer.on("incident.resolved", inbox=False)
    async def incident_dealt_with(envelope: CloudEvent, done: IncidentResolved) -> None:
        await feedback.incident_resolved(envelope, done)
