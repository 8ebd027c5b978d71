"""DESIGN §5.1 and §5.3 across services: the queue and the concierge, both running, over real Kafka.

A ticket issued with needs becomes assigned assistance requests at the concierge desk; a
redelivered `ticket.issued` adds none; completing the ticket asks for the lent wheelchair back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.hall import DESK, KIOSK, WINDOW, Hall, running_hall
from tests.support import TopicReader, produce, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
async def hall(infra: Any) -> AsyncIterator[Hall]:
    async with running_hall(infra) as running:
        yield running


async def test_needs_on_a_ticket_reach_the_concierge_once_and_the_visits_end_asks_for_the_loan_back(
    hall: Hall, infra: Any
) -> None:
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets", "concierge.loans") as reader:
        answer = await hall.queue.post(
            "/tickets",
            json={
                "item_code": "B001",
                "channel": "kiosk",
                "priority": "disabled",
                "needs": ["wheelchair", "proxy_service"],
            },
            headers=KIOSK,
        )
        assert answer.status_code == 201, answer.text
        ticket_id = answer.json()["ticket_id"]

        requests = await wait_for(lambda: _assigned(hall, ticket_id, 2), 60)
        assert sorted(r["kind"] for r in requests) == ["proxy_service", "wheelchair"]
        assert all(r["concierge_id"] for r in requests)

        issued = next(r for r in reader.records if r.key == ticket_id.encode() and b'"ticket.issued"' in r.value)
        await produce(infra.kafka_bootstrap, "queue.tickets", issued.value, issued.key)  # redelivered
        fence = await hall.queue.post(
            "/tickets", json={"item_code": "B001", "channel": "kiosk", "needs": ["escort"]}, headers=KIOSK
        )
        await wait_for(lambda: _assigned(hall, fence.json()["ticket_id"], 1), 60)
        assert len(await hall.assistance_of(ticket_id)) == 2, "the redelivered ticket.issued added nothing"

        loan = await hall.concierge.post("/loans", json={"sku": "wheelchair", "ticket_id": ticket_id}, headers=DESK)
        assert loan.status_code == 201, loan.text
        loan_id = loan.json()["loan_id"]
        await hall.queue.post("/windows/W09/open", json={"staff_id": "s-1"}, headers=WINDOW)
        called = await hall.queue.post("/windows/W09/call", json={"ticket_id": ticket_id}, headers=WINDOW)
        assert called.status_code == 200, called.text
        await hall.queue.post(f"/tickets/{ticket_id}/start", headers=WINDOW)
        done = await hall.queue.post(f"/tickets/{ticket_id}/complete", json={"outcome": "done"}, headers=WINDOW)
        assert done.status_code == 200, done.text

        reminders = await wait_for(
            lambda: [e for e in reader.events() if e["type"] == "item.return_requested" and e["subject"] == loan_id],
            60,
        )
    assert reminders[0]["data"]["reason"] == "visit_ended"
    assert reminders[0]["data"]["ticket_id"] == ticket_id
    assert reminders[0]["correlationid"] == ticket_id, "the reminder belongs to the visit"


async def _assigned(hall: Hall, ticket_id: str, count: int) -> list[dict[str, Any]] | None:
    found = await hall.assistance_of(ticket_id)
    return found if len(found) >= count and all(r["status"] == "assigned" for r in found) else None
