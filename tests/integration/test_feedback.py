"""The feedback service over real Kafka and the MongoDB-protocol server: invitations, one rating per
service, appeals, the message book, complaint cases and their deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from goldenkey.contracts import TicketCompleted, envelope_for
from goldenkey.feedback.app import Settings, build_app
from goldenkey.kit import ManualClock
from tests.support import RunningApp, TopicReader, on_the_test_stack, produce, unique, wait_for

pytestmark = pytest.mark.integration
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}
OPS = {"Authorization": "Bearer dev-ops"}
ADMIN = {"Authorization": "Bearer dev-admin"}
TOPICS = ("feedback.ratings", "feedback.messages", "feedback.complaints")


@dataclass
class Desk:
    client: httpx.AsyncClient
    app: Any
    clock: ManualClock

    @property
    def feedback(self) -> Any:
        return self.app.state.feedback

    async def post(self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] = OPS) -> Any:
        return await self.client.post(path, json=body, headers=headers)

    async def get(self, path: str, headers: dict[str, str] = OPS, **params: Any) -> Any:
        answer = await self.client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def completed_ticket(self, infra: Any, *, window_id: str = "W09", category: str = "B") -> str:
        """A ticket the queue completed (its event, produced as the queue would) and its invitation."""
        ticket_id = unique("t-")
        event = envelope_for(
            TicketCompleted(
                ticket_id=ticket_id,
                outcome="done",
                window_id=window_id,
                wait_s=300,
                service_s=420,
                category=category,
                staff_id=f"s-{window_id}",
            ),
            time=self.clock.now(),
        )
        await produce(infra.kafka_bootstrap, "queue.tickets", event.to_bytes(), ticket_id.encode())
        await wait_for(lambda: self.feedback.store.invitations.get(ticket_id), 60)
        return ticket_id

    async def rate(self, ticket_id: str, score: int, **more: Any) -> Any:
        body = {"subject_type": "ticket", "subject_id": ticket_id, "score": score, **more}
        return await self.post("/ratings", body, WINDOW)


@pytest.fixture
async def desk(infra: Any) -> AsyncIterator[Desk]:
    clock = ManualClock(OPENING)
    settings = Settings(**on_the_test_stack(infra, "feedback", mongodb_timeout_ms=2000, watch_s=3600))
    app = build_app(settings, clock=clock)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=60) as client:
        await wait_for(lambda: app.state.kit.kafka_ready.is_set() and app.state.kit.consumer.subscriber, 60)
        yield Desk(client, app, clock)


def of(reader: TopicReader, event_type: str, **data: Any) -> list[dict[str, Any]]:
    return [
        e for e in reader.events() if e["type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
    ]


async def test_a_redelivered_ticket_completed_makes_one_invitation(desk: Desk, infra: Any) -> None:
    ticket_id = await desk.completed_ticket(infra)
    stored = await desk.feedback.store.invitations.require(ticket_id)
    document = await desk.feedback.store.invitations.collection.find_one({"_id": ticket_id})
    event = envelope_for(
        TicketCompleted(ticket_id=ticket_id, outcome="done", window_id="W09", wait_s=300, service_s=420),
        time=desk.clock.now(),
    )
    await produce(infra.kafka_bootstrap, "queue.tickets", event.to_bytes(), ticket_id.encode())
    fence = await desk.completed_ticket(infra)
    assert await desk.feedback.store.invitations.get(fence) is not None
    assert await desk.feedback.store.invitations.collection.count_documents({"_id": ticket_id}) == 1
    again = await desk.feedback.store.invitations.collection.find_one({"_id": ticket_id})
    assert again == document, "the redelivery changed nothing"
    invitation = await desk.get(f"/invitations/{ticket_id}", WINDOW)
    assert (invitation["unit"], invitation["window_id"], invitation["category"]) == ("W09", "W09", "B")
    assert [level["zh"] for level in invitation["levels"]] == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
    assert stored.staff_id == "s-W09"


async def test_a_second_rating_is_refused_and_the_first_stands(desk: Desk, infra: Any) -> None:
    ticket_id = await desk.completed_ticket(infra)
    async with TopicReader(infra.kafka_bootstrap, "feedback.ratings") as reader:
        first = await desk.rate(ticket_id, 5, reasons=["attitude"], comment="王科长很耐心")
        assert first.status_code == 201, first.text
        second = await desk.rate(ticket_id, 1)
        assert second.status_code == 409
        assert "rated already" in second.json()["detail"]
        submitted = await wait_for(lambda: of(reader, "rating.submitted", subject_id=ticket_id), 30)
    stored = await desk.get(f"/ratings/{first.json()['rating_id']}")
    assert (stored["score"], stored["comment"]) == (5, "王科长很耐心")
    assert len(submitted) == 1
    assert "comment" not in submitted[0]["data"], "no free text that could name the rater"
    assert "王科长" not in str(submitted[0])
    assert (await desk.get(f"/invitations/{ticket_id}", KIOSK))["rated"] is True


async def test_fifty_concurrent_ratings_of_one_service_leave_exactly_one(desk: Desk, infra: Any) -> None:
    ticket_id = await desk.completed_ticket(infra)
    answers = await asyncio.gather(*(desk.rate(ticket_id, 1 + i % 5) for i in range(50)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 49, codes
    assert await desk.feedback.store.ratings.collection.count_documents({"subject_id": ticket_id}) == 1
    winner = next(a.json() for a in answers if a.status_code == 201)
    cases = await desk.feedback.store.complaints.collection.count_documents({"subject_id": ticket_id})
    assert cases == (1 if winner["score"] <= 2 else 0), "a bad review opens one case, a good one none"


async def test_bad_input_gets_a_clear_4xx_and_publishes_nothing(desk: Desk, infra: Any) -> None:
    ticket_id = await desk.completed_ticket(infra)
    kit = desk.app.state.kit
    await wait_for(lambda: _drained(kit), 60)
    cases = [
        (
            "/ratings",
            {"subject_type": "ticket", "subject_id": ticket_id, "score": 6},
            WINDOW,
            422,
            "less than or equal",
        ),
        ("/ratings", {"subject_type": "ticket", "subject_id": ticket_id, "score": 0}, WINDOW, 422, "greater than"),
        ("/ratings", {"subject_type": "ticket", "subject_id": ticket_id, "score": "5"}, WINDOW, 422, "integer"),
        ("/ratings", {"subject_type": "incident", "subject_id": ticket_id, "score": 4}, WINDOW, 422, "not a incident"),
        ("/ratings", {"subject_type": "ticket", "subject_id": "nobody", "score": 4}, WINDOW, 404, "no invitation"),
        ("/ratings", {"subject_type": "ticket", "subject_id": ticket_id, "score": 4}, OPS, 403, "role"),
        (
            "/ratings",
            {"subject_type": "ticket", "subject_id": ticket_id, "score": 4, "rater": "x"},
            WINDOW,
            422,
            "rater",
        ),
        ("/messages", {"text": "x" * 1001}, KIOSK, 422, "1000"),
        ("/messages", {"text": "好\x00"}, KIOSK, 422, "pattern"),
        ("/messages", {"text": "hello", "kind": "rant"}, KIOSK, 422, "praise"),
        ("/complaints/nope/verify", {"note": "n", "by": "ops-1", "complexity": "simple"}, OPS, 404, "no complaint"),
    ]
    for path, body, headers, code, words in cases:
        answer = await desk.post(path, body, headers)
        assert answer.status_code == code, (path, body, answer.text)
        assert words in answer.text, (path, body, answer.text)
    assert await desk.feedback.store.ratings.collection.count_documents({}) == 0
    assert await desk.feedback.store.messages.collection.count_documents({}) == 0
    assert await kit.relay.pending() == 0, "nothing went to the outbox"


async def _drained(kit: Any) -> bool:
    return bool(await kit.relay.pending() == 0)


async def test_a_bad_review_opens_a_case_for_the_window_that_closes_only_after_its_follow_up(
    desk: Desk, infra: Any
) -> None:
    ticket_id = await desk.completed_ticket(infra, window_id="W21")
    async with TopicReader(infra.kafka_bootstrap, "feedback.complaints") as reader:
        rated = await desk.rate(ticket_id, 2, reasons=["efficiency"], contact="13912345678")
        assert rated.status_code == 201, rated.text
        [case] = await desk.get("/complaints", status="opened", unit="W21")
        assert (case["score"], case["real_name"], case["contact_masked"]) == (2, True, "139****5678")
        assert case["due"]["verify"] == "2026-11-26T09:00:00Z", "1 working day: the end of Thursday in Xi'an"
        case_id = case["complaint_id"]
        early = await desk.post(f"/complaints/{case_id}/close", {"note": "n", "by": "ops-1"})
        assert early.status_code == 409
        assert "is opened: it cannot be closed" in early.json()["detail"]
        steps = [
            ("verify", {"note": "called the citizen", "by": "ops-1", "complexity": "complex"}),
            ("rectify", {"note": "second staff member at W21 at peak", "by": "W21-lead"}),
        ]
        for step, body in steps:
            answer = await desk.post(f"/complaints/{case_id}/{step}", body)
            assert answer.status_code == 200, answer.text
        refused = await desk.post(f"/complaints/{case_id}/close", {"note": "done", "by": "ops-1"})
        assert refused.status_code == 409
        assert "only after its follow-up call" in refused.json()["detail"]
        called = await desk.post(
            f"/complaints/{case_id}/follow-up", {"note": "satisfied", "by": "ops-2", "satisfied": True}
        )
        assert called.status_code == 200, called.text
        closed = await desk.post(f"/complaints/{case_id}/close", {"note": "done", "by": "ops-1"})
        assert closed.status_code == 200, closed.text
        await wait_for(lambda: of(reader, "complaint.closed", complaint_id=case_id), 30)
    kinds = [e["type"] for e in reader.events() if e["data"]["complaint_id"] == case_id]
    assert kinds == [
        "complaint.opened",
        "complaint.verified",
        "complaint.rectified",
        "complaint.followed_up",
        "complaint.closed",
    ]
    verified = of(reader, "complaint.verified", complaint_id=case_id)[0]
    assert verified["data"]["due_at"] == "2026-12-16T09:00:00Z", "15 working days for a complex case"
    assert "13912345678" not in str(reader.events())
    assert [s["by"] for s in closed.json()["steps"]] == ["ops-1", "W21-lead", "ops-2", "ops-1"]


async def test_a_case_left_alone_goes_overdue_once_per_stage(desk: Desk, infra: Any) -> None:
    ticket_id = await desk.completed_ticket(infra)
    async with TopicReader(infra.kafka_bootstrap, "feedback.complaints") as reader:
        assert (await desk.rate(ticket_id, 1)).status_code == 201
        [case] = await desk.get("/complaints", status="opened")
        desk.clock.advance(timedelta(hours=23))  # Thursday 08:30: not due until Thursday's closing
        await desk.feedback.sweep()
        desk.clock.advance(timedelta(hours=10))  # Thursday 18:30
        await desk.feedback.sweep()
        await desk.feedback.sweep()
        overdue = await wait_for(lambda: of(reader, "complaint.overdue", complaint_id=case["complaint_id"]), 30)
    assert len(overdue) == 1
    assert overdue[0]["data"]["stage"] == "verify"
    stored = await desk.get(f"/complaints/{case['complaint_id']}")
    assert stored["overdue"] == ["verify"]
    metrics = (await desk.client.get("/metrics")).text
    assert "goldenkey_complaints_overdue 1.0" in metrics
    assert 'goldenkey_complaint_stages_overdue_total{stage="verify"} 1.0' in metrics


async def test_an_upheld_appeal_takes_a_rating_out_of_every_figure_and_keeps_it_on_record(
    desk: Desk, infra: Any
) -> None:
    good, bad = await desk.completed_ticket(infra, window_id="W30"), await desk.completed_ticket(infra, window_id="W30")
    assert (await desk.rate(good, 5)).status_code == 201
    rated = await desk.rate(bad, 1)
    before = await desk.get("/satisfaction", group_by="window", **{"from": "2026-11-25", "to": "2026-11-25"})
    [w30] = [g for g in before["groups"] if g["group"] == "W30"]
    assert (w30["rated"], w30["satisfaction_rate"], w30["bad"]) == (2, 0.5, 1)

    rating_id = rated.json()["rating_id"]
    refused = await desk.post(f"/ratings/{rating_id}/appeal", {"ground": "malicious", "reason": "r"}, KIOSK)
    assert refused.status_code == 403
    appealed = await desk.post(
        f"/ratings/{rating_id}/appeal", {"ground": "malicious", "reason": "rated before service"}
    )
    assert appealed.status_code == 200, appealed.text
    not_ops = await desk.post(f"/ratings/{rating_id}/appeal/decision", {"verdict": "upheld"}, OPS)
    assert not_ops.status_code == 403, "an admin decides"
    decided = await desk.post(f"/ratings/{rating_id}/appeal/decision", {"verdict": "upheld", "note": "CCTV"}, ADMIN)
    assert decided.status_code == 200, decided.text
    assert decided.json()["counted"] is False

    after = await desk.get("/satisfaction", group_by="window", **{"from": "2026-11-25", "to": "2026-11-25"})
    [w30] = [g for g in after["groups"] if g["group"] == "W30"]
    assert (w30["rated"], w30["excluded"], w30["satisfaction_rate"], w30["bad"]) == (1, 1, 1.0, 0)
    assert (await desk.get(f"/ratings/{rating_id}"))["score"] == 1, "kept on record"


async def test_the_message_book_passes_praise_on_and_opens_a_case_for_a_complaint(desk: Desk, infra: Any) -> None:
    async with TopicReader(infra.kafka_bootstrap, "feedback.messages") as reader:
        praise = await desk.post(
            "/messages", {"text": "感谢3号窗口耐心解答", "kind": "praise", "window_id": "W03"}, KIOSK
        )
        assert praise.status_code == 201, praise.text
        assert "竭尽所能" in praise.json()["thanks"]
        complaint = await desk.post(
            "/messages",
            {"text": "等了一个小时", "kind": "complaint", "window_id": "W05", "contact": "13800138000"},
            KIOSK,
        )
        assert complaint.status_code == 201
        await wait_for(lambda: of(reader, "praise.received", message_id=praise.json()["message_id"]), 30)
        posted = await wait_for(lambda: of(reader, "message.posted", message_id=complaint.json()["message_id"]), 30)
    assert posted[0]["data"]["contact_masked"] == "138****8000"
    assert "13800138000" not in str(reader.events())
    assert not of(reader, "praise.received", message_id=complaint.json()["message_id"])
    [case] = await desk.get("/complaints", unit="W05")
    assert (case["origin"], case["real_name"]) == ("message", True)
    listed = await desk.get("/messages", kind="praise")
    assert [m["message_id"] for m in listed] == [praise.json()["message_id"]]
    assert (await desk.client.get("/messages", headers=KIOSK)).status_code == 403, "ops read the book"


async def test_windows_ranked_last_two_months_running_are_flagged(desk: Desk, infra: Any) -> None:
    for month_day, scores in (
        (datetime(2026, 10, 14, 2, tzinfo=UTC), {"W40": 5, "W41": 3}),
        (OPENING, {"W40": 4, "W41": 2}),
    ):
        desk.clock.set(month_day)
        for window, score in scores.items():
            ticket_id = await desk.completed_ticket(infra, window_id=window)
            assert (await desk.rate(ticket_id, score)).status_code == 201
    ranking = await desk.get("/rankings", month="2026-11")
    ranked = {w["window_id"]: w for w in ranking["windows"] if w["window_id"] in ("W40", "W41")}
    assert (ranked["W40"]["rank"], ranked["W41"]["rank"]) == (1, 2)
    assert ranked["W41"]["last_two_months_running"] is True
    assert ranked["W40"]["last_two_months_running"] is False
