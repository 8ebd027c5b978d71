"""DESIGN §5.1–5.3's last steps across the four services over real Kafka: every service that ends
invites one rating, and a bad review becomes a complaint case for the window that handled the visit,
worked through to its close (or overdue when left alone)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.hall import DESK, GUARD, KIOSK, OPS, WINDOW, Hall, of, running_hall
from tests.support import TopicReader, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
async def hall(infra: Any) -> AsyncIterator[Hall]:
    async with running_hall(infra) as running:
        yield running


async def test_a_concierges_finished_help_invites_a_rating_of_that_concierge(hall: Hall) -> None:
    issued = await hall.queue.post(
        "/tickets", json={"item_code": "B001", "channel": "kiosk", "needs": ["wheelchair"]}, headers=KIOSK
    )
    assert issued.status_code == 201, issued.text
    ticket_id = issued.json()["ticket_id"]

    async def assigned() -> dict[str, Any] | None:
        answer = await hall.concierge.get("/assistance", params={"ticket_id": ticket_id}, headers=DESK)
        found = [a for a in answer.json() if a["status"] == "assigned"]
        return found[0] if found else None

    request = await wait_for(assigned, 60)
    assert (
        await hall.concierge.post(f"/assistance/{request['assistance_id']}/accept", headers=DESK)
    ).status_code == 200
    assert (
        await hall.concierge.post(f"/assistance/{request['assistance_id']}/complete", headers=DESK)
    ).status_code == 200

    invitation = await wait_for(lambda: hall.invitation(request["assistance_id"]), 60)
    assert (invitation["subject_type"], invitation["unit"]) == ("assistance", "CONCIERGE")
    assert invitation["staff_id"] == request["concierge_id"], "the rating is of the concierge who helped"
    assert invitation["kind"] == "wheelchair"
    rated = await hall.feedback.post(
        "/ratings",
        json={"subject_type": "assistance", "subject_id": request["assistance_id"], "score": 5},
        headers=KIOSK,
    )
    assert rated.status_code == 201, rated.text
    figures = (await hall.feedback.get("/satisfaction", params={"group_by": "concierge"}, headers=OPS)).json()
    assert [(g["group"], g["rated"], g["satisfaction_rate"]) for g in figures["groups"]] == [
        (request["concierge_id"], 1, 1.0)
    ]


async def test_a_resolved_incident_invites_a_rating_of_the_guard(hall: Hall) -> None:
    reported = await hall.parking.post(
        "/incidents", json={"kind": "lights_on", "space": "A-5", "guard_id": "g-7"}, headers=GUARD
    )
    assert reported.status_code == 201, reported.text
    incident_id = reported.json()["incident_id"]
    resolved = await hall.parking.post(
        f"/incidents/{incident_id}/resolve", json={"resolution": "owner came, lights off"}, headers=GUARD
    )
    assert resolved.status_code == 200, resolved.text
    invitation = await wait_for(lambda: hall.invitation(incident_id), 60)
    assert (invitation["subject_type"], invitation["unit"], invitation["staff_id"]) == ("incident", "PARKING", "g-7")
    assert invitation["kind"] == "lights_on"


async def test_a_bad_review_of_a_visit_is_a_case_for_its_window_worked_to_its_close(hall: Hall, infra: Any) -> None:
    issued = await hall.queue.post("/tickets", json={"item_code": "B001", "channel": "kiosk"}, headers=KIOSK)
    ticket_id = issued.json()["ticket_id"]
    await hall.queue.post("/windows/W09/open", json={"staff_id": "s-9"}, headers=WINDOW)
    assert (
        await hall.queue.post("/windows/W09/call", json={"ticket_id": ticket_id}, headers=WINDOW)
    ).status_code == 200
    await hall.queue.post(f"/tickets/{ticket_id}/start", headers=WINDOW)
    done = await hall.queue.post(f"/tickets/{ticket_id}/complete", json={"outcome": "done"}, headers=WINDOW)
    assert done.status_code == 200, done.text

    invitation = await wait_for(lambda: hall.invitation(ticket_id), 60)
    assert (invitation["window_id"], invitation["staff_id"], invitation["category"]) == ("W09", "s-9", "B")
    async with TopicReader(infra.kafka_bootstrap, "feedback.ratings", "feedback.complaints") as reader:
        rated = await hall.feedback.post(
            "/ratings",
            json={"subject_type": "ticket", "subject_id": ticket_id, "score": 2, "contact": "13912345678"},
            headers=WINDOW,
        )
        assert rated.status_code == 201, rated.text
        opened = await wait_for(lambda: of(reader, "complaint.opened", subject_id=ticket_id), 60)
        case_id = opened[0]["data"]["complaint_id"]
        assert (opened[0]["data"]["unit"], opened[0]["data"]["real_name"]) == ("W09", True)
        for step, body in (
            ("verify", {"note": "called back: the form was explained badly", "by": "ops-1", "complexity": "simple"}),
            ("rectify", {"note": "W09 briefed on the form", "by": "W09-lead"}),
            ("follow-up", {"note": "the citizen is content", "by": "ops-2", "satisfied": True}),
            ("close", {"note": "closed", "by": "ops-1"}),
        ):
            answer = await hall.feedback.post(f"/complaints/{case_id}/{step}", json=body, headers=OPS)
            assert answer.status_code == 200, (step, answer.text)
        await wait_for(lambda: of(reader, "complaint.closed", complaint_id=case_id), 60)
    submitted = of(reader, "rating.submitted", subject_id=ticket_id)[0]
    assert (submitted["data"]["bad_review"], submitted["data"]["window_id"]) == (True, "W09")
    assert submitted["correlationid"] == ticket_id, "the rating belongs to the visit"
    steps = [e["type"] for e in reader.events() if e["data"].get("complaint_id") == case_id]
    assert steps == [
        "complaint.opened",
        "complaint.verified",
        "complaint.rectified",
        "complaint.followed_up",
        "complaint.closed",
    ]


async def test_a_bad_review_left_alone_goes_overdue_once(hall: Hall, infra: Any) -> None:
    issued = await hall.queue.post("/tickets", json={"item_code": "B001", "channel": "kiosk"}, headers=KIOSK)
    ticket_id = issued.json()["ticket_id"]
    await hall.queue.post("/windows/W10/open", json={"staff_id": "s-10"}, headers=WINDOW)
    await hall.queue.post("/windows/W10/call", json={"ticket_id": ticket_id}, headers=WINDOW)
    await hall.queue.post(f"/tickets/{ticket_id}/start", headers=WINDOW)
    await hall.queue.post(f"/tickets/{ticket_id}/complete", json={"outcome": "needs_materials"}, headers=WINDOW)
    await wait_for(lambda: hall.invitation(ticket_id), 60)
    async with TopicReader(infra.kafka_bootstrap, "feedback.complaints") as reader:
        rated = await hall.feedback.post(
            "/ratings", json={"subject_type": "ticket", "subject_id": ticket_id, "score": 1}, headers=KIOSK
        )
        assert rated.status_code == 201, rated.text
        opened = await wait_for(lambda: of(reader, "complaint.opened", subject_id=ticket_id), 60)
        case_id = opened[0]["data"]["complaint_id"]
        hall.clock.advance(timedelta(days=2))  # Friday morning: Thursday's closing has passed
        sweep = hall.apps["feedback"].state.feedback.sweep
        await sweep()
        await sweep()
        overdue = await wait_for(lambda: of(reader, "complaint.overdue", complaint_id=case_id), 60)
    assert len(overdue) == 1
    assert overdue[0]["data"]["stage"] == "verify"
