"""The Kafka topics of DESIGN §3 and what each is keyed by (dead-letter topics: `registry.dlq_topic`)."""

from __future__ import annotations

from goldenkey.contracts.registry import topic

QUEUE_TICKETS = topic("queue.tickets", "ticket_id")
QUEUE_WINDOWS = topic("queue.windows", "window_id (window.*) or category (coverage.*)")
CONCIERGE_LOANS = topic("concierge.loans", "loan_id")
CONCIERGE_STOCK = topic("concierge.stock", "sku")
CONCIERGE_ASSISTANCE = topic("concierge.assistance", "assistance_id")
PARKING_VEHICLES = topic("parking.vehicles", "visit_id (vehicle.*), lot_id (lot.*) or patrol_id (patrol.*)")
PARKING_INCIDENTS = topic("parking.incidents", "incident_id")
FEEDBACK_RATINGS = topic("feedback.ratings", "subject_id (the rated ticket, assistance or incident)")
FEEDBACK_MESSAGES = topic("feedback.messages", "message_id")
FEEDBACK_COMPLAINTS = topic("feedback.complaints", "complaint_id")

__all__ = [
    "CONCIERGE_ASSISTANCE",
    "CONCIERGE_LOANS",
    "CONCIERGE_STOCK",
    "FEEDBACK_COMPLAINTS",
    "FEEDBACK_MESSAGES",
    "FEEDBACK_RATINGS",
    "PARKING_INCIDENTS",
    "PARKING_VEHICLES",
    "QUEUE_TICKETS",
    "QUEUE_WINDOWS",
]
