"""The four services running together over the test stack's real Kafka, sharing one moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from goldenkey.concierge.app import Settings as ConciergeSettings
from goldenkey.concierge.app import build_app as build_concierge
from goldenkey.feedback.app import Settings as FeedbackSettings
from goldenkey.feedback.app import build_app as build_feedback
from goldenkey.kit import ManualClock
from goldenkey.parking.app import Settings as ParkingSettings
from goldenkey.parking.app import build_app as build_parking
from goldenkey.queue.app import Settings as QueueSettings
from goldenkey.queue.app import build_app as build_queue
from tests.support import RunningApp, TopicReader, on_the_test_stack, wait_for

OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}
DESK = {"Authorization": "Bearer dev-concierge"}
GUARD = {"Authorization": "Bearer dev-guard"}
OPS = {"Authorization": "Bearer dev-ops"}


@dataclass
class Hall:
    queue: httpx.AsyncClient
    concierge: httpx.AsyncClient
    parking: httpx.AsyncClient
    feedback: httpx.AsyncClient
    apps: dict[str, Any]
    clock: ManualClock

    async def incident(self, incident_id: str) -> dict[str, Any]:
        answer = await self.parking.get(f"/incidents/{incident_id}", headers=OPS)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def assistance_of(self, ticket_id: str) -> list[dict[str, Any]]:
        answer = await self.concierge.get("/assistance", params={"ticket_id": ticket_id}, headers=DESK)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def invitation(self, subject_id: str) -> dict[str, Any] | None:
        answer = await self.feedback.get(f"/invitations/{subject_id}", headers=OPS)  # the kiosk sees no staff
        return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]


@asynccontextmanager
async def running_hall(infra: Any) -> AsyncIterator[Hall]:
    """The queue, the concierge, parking and feedback, each on a database of its own; their
    watchdogs wait, so a test moves the clock and sweeps when it chooses."""
    clock = ManualClock(OPENING)
    quiet = {"watch_s": 3600}
    apps = {
        "queue": build_queue(QueueSettings(**on_the_test_stack(infra, "queue")), clock=clock),
        "concierge": build_concierge(ConciergeSettings(**on_the_test_stack(infra, "concierge", **quiet)), clock=clock),
        "parking": build_parking(ParkingSettings(**on_the_test_stack(infra, "parking", **quiet)), clock=clock),
        "feedback": build_feedback(FeedbackSettings(**on_the_test_stack(infra, "feedback", **quiet)), clock=clock),
    }
    async with (
        RunningApp(apps["queue"]) as q,
        RunningApp(apps["concierge"]) as c,
        RunningApp(apps["parking"]) as p,
        RunningApp(apps["feedback"]) as f,
        httpx.AsyncClient(base_url=q.url, timeout=30) as queue,
        httpx.AsyncClient(base_url=c.url, timeout=30) as concierge,
        httpx.AsyncClient(base_url=p.url, timeout=30) as parking,
        httpx.AsyncClient(base_url=f.url, timeout=30) as feedback,
    ):
        for app in apps.values():
            kit = app.state.kit
            await wait_for(lambda kit=kit: kit.kafka_ready.is_set() and kit.consumer.subscriber, 60)
        yield Hall(queue, concierge, parking, feedback, apps, clock)


def of(reader: TopicReader, event_type: str, **data: Any) -> list[dict[str, Any]]:
    return [
        e for e in reader.events() if e["type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
    ]
