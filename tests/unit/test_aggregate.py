"""How an aggregate's recorded events become CloudEvents in its outbox (no database needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from goldenkey.contracts import CloudEvent, TicketCalled, TicketIssued, derived_event_id, parse_event
from goldenkey.kit import Aggregate, Repository

NOW = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


class Ticket(Aggregate):
    number: str


class NoCollection:
    name = "tickets"


def repository() -> Repository[Ticket]:
    return Repository(NoCollection(), Ticket)  # type: ignore[arg-type]


def issued(ticket_id: str) -> TicketIssued:
    return TicketIssued(
        ticket_id=ticket_id, number="B023", category="B", item_code="B-001", channel="kiosk", issued_at=NOW
    )


def outbox(entries: list[dict[str, Any]]) -> list[CloudEvent]:
    return [parse_event(entry["value"])[0] for entry in entries]


def test_recorded_events_become_valid_cloudevents_numbered_per_aggregate() -> None:
    ticket = Ticket(id="t-1", number="B023")
    ticket.record(issued("t-1"), at=NOW, correlation_id="visit-1")
    ticket.record(TicketCalled(ticket_id="t-1", number="B023", category="B", window_id="W07"), at=NOW)
    entries = repository()._drain(ticket)
    events = outbox(entries)
    assert [e.type for e in events] == ["ticket.issued", "ticket.called"]
    assert [e.sequence for e in events] == [1, 2]
    assert {e.source for e in events} == {"goldenkey/queue"}
    assert {e.subject for e in events} == {"t-1"}
    assert events[0].correlationid == "visit-1"
    assert [entry["topic"] for entry in entries] == ["queue.tickets", "queue.tickets"]
    assert [entry["key"] for entry in entries] == ["t-1", "t-1"]
    assert json.loads(entries[0]["value"])["datacontenttype"] == "application/json"
    assert ticket.seq == 2


def test_an_event_caused_by_another_gets_the_same_id_every_time() -> None:
    cause = CloudEvent(
        id="alert-9",
        type="tyre.alert",
        source="goldenkey/parking",
        time=NOW,
        subject="i-1",
        data={},
        correlationid="case-3",
    )
    ids = []
    for _ in range(2):  # e.g. a redelivery handled by a fresh load
        ticket = Ticket(id="t-1", number="B023")
        ticket.record(issued("t-1"), at=NOW, causation=cause)
        (event,) = outbox(repository()._drain(ticket))
        ids.append(event.id)
        assert event.causationid == "alert-9"
        assert event.correlationid == "case-3"
    assert ids[0] == ids[1] == derived_event_id("alert-9", "ticket.issued", "t-1")


def test_independent_events_get_fresh_ids() -> None:
    first, second = Ticket(id="t-1", number="B1"), Ticket(id="t-1", number="B1")
    first.record(issued("t-1"), at=NOW)
    second.record(issued("t-1"), at=NOW)
    assert outbox(repository()._drain(first))[0].id != outbox(repository()._drain(second))[0].id


def test_an_aggregate_remembers_the_events_it_applied_but_not_forever() -> None:
    ticket = Ticket(id="t-1", number="B1")
    for n in range(250):
        ticket.mark_applied(f"e{n}")
    assert ticket.has_applied("e249")
    assert not ticket.has_applied("e0")
    assert len(ticket.applied) == 200
