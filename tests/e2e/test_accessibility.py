"""DESIGN §5.1 and §5.3 across services: the queue and the concierge, both running, over real Kafka.

A ticket issued with needs becomes assigned assistance requests at the concierge desk; a
redelivered `ticket.issued` adds none; completing the ticket asks for the lent wheelchair back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from goldenkey.concierge.app import Settings as ConciergeSettings
from goldenkey.concierge.app import build_app as build_concierge
from goldenkey.kit import ManualClock
from goldenkey.queue.app import Settings as QueueSettings
from goldenkey.queue.app import build_app as build_queue
from tests.support import RunningApp, TopicReader, on_the_test_stack, produce, wait_for

pytestmark = pytest.mark.e2e
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}
DESK = {"Authorization": "Bearer dev-concierge"}


@dataclass
class Hall:
    queue: httpx.AsyncClient
    concierge: httpx.AsyncClient
    concierge_app: Any

    async def assistance_of(self, ticket_id: str) -> list[dict[str, Any]]:
        answer = await self.concierge.get("/assistance", params={"ticket_id": ticket_id}, headers=DESK)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
async def hall(infra: Any) -> AsyncIterator[Hall]:
    clock = ManualClock(OPENING)
    queue = build_queue(QueueSettings(**on_the_test_stack(infra, "queue")), clock=clock)
    concierge = build_concierge(ConciergeSettings(**on_the_test_stack(infra, "concierge")), clock=clock)
    async with (
        RunningApp(queue) as q,
        RunningApp(concierge) as c,
        httpx.AsyncClient(base_url=q.url, timeout=30) as queue_client,
        httpx.AsyncClient(base_url=c.url, timeout=30) as concierge_client,
    ):
        await wait_for(lambda: concierge.state.kit.kafka_ready.is_set() and concierge.state.kit.consumer.subscriber, 60)
        yield Hall(queue_client, concierge_client, concierge)


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
