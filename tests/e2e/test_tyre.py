"""DESIGN §5.2 across the four services over real Kafka: the flat tyre found before its owner returns.

A citizen takes a ticket with his plate and parks; a guard on his round sees a tyre going flat. The
hall finds the owner through his ticket — the guard never learns who he is — the queue pages him at
his window, and a Golden Key concierge goes out to help; the incident is resolved when she is done.
A flat tyre on a car with no ticket cannot be paged: it is escalated to ops after 5 minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.hall import DESK, GUARD, KIOSK, WINDOW, Hall, of, running_hall
from tests.support import TopicReader, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
async def hall(infra: Any) -> AsyncIterator[Hall]:
    async with running_hall(infra) as running:
        yield running


async def test_a_flat_tyre_reaches_its_owner_at_his_window_and_a_concierge_helps(hall: Hall, infra: Any) -> None:
    async with TopicReader(
        infra.kafka_bootstrap, "queue.tickets", "parking.incidents", "concierge.assistance"
    ) as reader:
        issued = await hall.queue.post(
            "/tickets", json={"item_code": "B001", "channel": "kiosk", "plate": "陕A·7F3K2"}, headers=KIOSK
        )
        assert issued.status_code == 201, issued.text
        ticket_id = issued.json()["ticket_id"]
        parked = await hall.parking.post("/vehicles/arrivals", json={"plate": "陕A7F3K2"}, headers=GUARD)
        assert parked.status_code == 201, parked.text
        visit_id = parked.json()["visit_id"]

        async def linked() -> bool:
            visit = await hall.parking.get(f"/visits/{visit_id}", headers=GUARD)
            return bool(visit.json()["ticket_id"] == ticket_id)

        await wait_for(linked, 60)  # whichever came first: the ticket's event or the car
        await hall.queue.post("/windows/W09/open", json={"staff_id": "s-1"}, headers=WINDOW)
        called = await hall.queue.post("/windows/W09/call", json={"ticket_id": ticket_id}, headers=WINDOW)
        assert called.status_code == 200, called.text

        hall.clock.advance(timedelta(minutes=20))  # his tax papers take a while; the guard's round comes by
        reported = await hall.parking.post(
            "/incidents",
            json={"kind": "flat_tyre", "plate": "陕A7F3K2", "space": "A-12", "guard_id": "g-1"},
            headers=GUARD,
        )
        assert reported.status_code == 201, reported.text
        incident_id = reported.json()["incident_id"]
        assert reported.json()["ticket_id"] == ticket_id, "the car's visit names its owner's ticket"

        pages = await wait_for(lambda: of(reader, "ticket.paged", incident_id=incident_id), 60)
        assert pages[0]["data"]["ticket_id"] == ticket_id
        assert pages[0]["data"]["window_id"] == "W09", "paged at the window serving him"

        async def notified() -> dict[str, Any] | None:
            incident = await hall.incident(incident_id)
            return incident if incident["status"] == "owner_notified" else None

        assert (await wait_for(notified, 60))["window_id"] == "W09"

        async def vehicle_help() -> dict[str, Any] | None:
            answer = await hall.concierge.get("/assistance", params={"ticket_id": ticket_id}, headers=DESK)
            found = [a for a in answer.json() if a["kind"] == "vehicle_help" and a["status"] == "assigned"]
            return found[0] if found else None

        help_request = await wait_for(vehicle_help, 60)
        assert help_request["incident_id"] == incident_id
        assert help_request["location"] == "car park A-12"
        hall.clock.advance(timedelta(minutes=1))
        accepted = await hall.concierge.post(f"/assistance/{help_request['assistance_id']}/accept", headers=DESK)
        assert accepted.status_code == 200, accepted.text
        hall.clock.advance(timedelta(minutes=14))
        done = await hall.concierge.post(
            f"/assistance/{help_request['assistance_id']}/complete", json={"note": "spare wheel fitted"}, headers=DESK
        )
        assert done.status_code == 200, done.text

        resolved = await wait_for(lambda: of(reader, "incident.resolved", incident_id=incident_id), 60)
        notified_events = of(reader, "owner.notified", incident_id=incident_id)

    assert resolved[0]["data"]["assistance_id"] == help_request["assistance_id"]
    assert resolved[0]["data"]["ticket_id"] == ticket_id
    assert resolved[0]["data"]["resolve_s"] == 15 * 60
    assert resolved[0]["correlationid"] == ticket_id, "the whole story belongs to his visit"
    assert notified_events[0]["data"]["notify_s"] == 0, "paged as soon as the guard reported"
    alert = of(reader, "tyre.alert", incident_id=incident_id)[0]
    assert "陕A7F3K2" not in str(alert), "the plate travels as a hash and a masked form"
    final = await hall.incident(incident_id)
    assert (final["status"], final["plate"]) == ("resolved", None), "ops see no raw plate"
    metrics = (await hall.parking.get("/metrics")).text
    assert 'goldenkey_incident_notify_seconds_count{kind="flat_tyre"} 1.0' in metrics
    assert 'goldenkey_incident_resolve_seconds_sum{kind="flat_tyre"} 900.0' in metrics
    assert 'goldenkey_incidents_open{kind="flat_tyre"} 0.0' in metrics


async def test_a_flat_tyre_on_a_car_with_no_ticket_is_escalated_after_five_minutes_and_pages_nobody(
    hall: Hall, infra: Any
) -> None:
    queue_kit = hall.apps["queue"].state.kit
    handled_before = queue_kit.consumer.handled_total
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets", "parking.incidents") as reader:
        parked = await hall.parking.post("/vehicles/arrivals", json={"plate": "陕AD12345"}, headers=GUARD)
        assert parked.status_code == 201, parked.text
        reported = await hall.parking.post(
            "/incidents", json={"kind": "flat_tyre", "plate": "陕AD12345", "guard_id": "g-2"}, headers=GUARD
        )
        assert reported.status_code == 201, reported.text
        incident_id = reported.json()["incident_id"]
        assert reported.json()["ticket_id"] is None
        await wait_for(lambda: queue_kit.consumer.handled_total > handled_before, 60)  # the queue read the alert

        hall.clock.advance(timedelta(minutes=4, seconds=59))
        await hall.apps["parking"].state.parking.sweep()
        assert (await hall.incident(incident_id))["status"] == "reported"
        hall.clock.advance(timedelta(seconds=1))
        await hall.apps["parking"].state.parking.sweep()
        escalated = await wait_for(lambda: of(reader, "incident.escalated", incident_id=incident_id), 60)

    assert escalated[0]["data"]["reason"] == "no_ticket"
    assert escalated[0]["data"]["waited_s"] == 300
    assert not of(reader, "ticket.paged", incident_id=incident_id), "no ticket, so nobody was paged"
    assert (await hall.incident(incident_id))["status"] == "escalated"
    metrics = (await hall.parking.get("/metrics")).text
    assert 'goldenkey_incidents_escalated_total{kind="flat_tyre"} 1.0' in metrics
    assert "goldenkey_incident_unnotified_oldest_seconds 300.0" in metrics
