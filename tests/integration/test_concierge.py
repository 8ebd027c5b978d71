"""The concierge service over real Kafka and the MongoDB-protocol server: the lending box, consumables, assistance."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from goldenkey.concierge.app import Settings, build_app
from goldenkey.concierge.domain import ACCEPT_WITHIN, Consumable, Lendable
from goldenkey.contracts import TicketCompleted, TicketIssued, TyreAlert, dlq_topic, envelope_for
from goldenkey.kit import ManualClock
from tests.support import RunningApp, TopicReader, produce, unique, wait_for

pytestmark = pytest.mark.integration
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
DESK = {"Authorization": "Bearer dev-concierge"}
OPS = {"Authorization": "Bearer dev-ops"}
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}
"""A window terminal asks for a concierge and hears whom it went to (a kiosk does not: docs/access.md)."""
TOPICS = ("concierge.loans", "concierge.stock", "concierge.assistance")


@dataclass
class Desk:
    client: httpx.AsyncClient
    app: Any
    clock: ManualClock

    @property
    def concierge(self) -> Any:
        return self.app.state.concierge

    @property
    def kit(self) -> Any:
        return self.app.state.kit

    async def post(self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] = DESK) -> Any:
        return await self.client.post(path, json=body, headers=headers)


@pytest.fixture
async def desk(infra: Any) -> AsyncIterator[Desk]:
    clock = ManualClock(OPENING)
    settings = Settings(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=unique("concierge_"),
        dev_mode=True,
        dev_tokens=True,
        consumer_backoff_s=0.05,
        mongodb_timeout_ms=2000,
        watch_s=3600,  # the tests run the watchdog's sweep themselves, at the times they choose
    )
    app = build_app(settings, clock=clock)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=60) as client:
        yield Desk(client, app, clock)


def of(reader: TopicReader, event_type: str, **data: Any) -> list[dict[str, Any]]:
    return [
        e for e in reader.events() if e["type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
    ]


async def test_fifty_concurrent_dispensations_against_twenty_leave_zero_and_thirty_refusals(
    desk: Desk, infra: Any
) -> None:
    sku = unique("test-candy-")
    await desk.concierge.store.consumables.add(Consumable(id=sku, name_zh="糖", name_en="Candy", stock=20, minimum=5))
    async with TopicReader(infra.kafka_bootstrap, "concierge.stock") as reader:
        answers = await asyncio.gather(*(desk.post("/dispensations", {"sku": sku, "qty": 1}) for _ in range(50)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 20 + [409] * 30, codes
        assert all("only 0" in a.json()["detail"] for a in answers if a.status_code == 409)
        await wait_for(lambda: len(of(reader, "consumable.dispensed", sku=sku)) >= 20, 60)
        await wait_for(lambda: of(reader, "stock.low", sku=sku))
        await asyncio.sleep(0.5)
        dispensed, low = of(reader, "consumable.dispensed", sku=sku), of(reader, "stock.low", sku=sku)
    assert (await desk.concierge.store.consumables.require(sku)).stock == 0
    assert len(dispensed) == 20
    assert sorted(e["data"]["remaining"] for e in dispensed) == list(range(20))
    assert [e["data"]["remaining"] for e in low] == [4], "once, when the stock fell below its minimum of 5"


@contextlib.asynccontextmanager
async def second_desk(desk: Desk) -> AsyncIterator[httpx.AsyncClient]:
    """Another instance of the concierge on the same database (its own in-process turns and views)."""
    other = build_app(desk.kit.settings.model_copy(), clock=desk.clock)
    async with RunningApp(other) as running, httpx.AsyncClient(base_url=running.url, timeout=60) as client:
        yield client


async def test_two_instances_dispensing_and_lending_at_once_never_hand_out_more_than_there_is(desk: Desk) -> None:
    """Within one instance writes of one document take turns; across two, the version check alone
    decides, and must."""
    sku = unique("test-candy-")
    await desk.concierge.store.consumables.add(Consumable(id=sku, name_zh="糖", name_en="Candy", stock=20, minimum=5))
    async with second_desk(desk) as other:
        clients = [desk.client, other]
        answers = await asyncio.gather(
            *(clients[n % 2].post("/dispensations", json={"sku": sku, "qty": 1}, headers=DESK) for n in range(50))
        )
        loans = await asyncio.gather(
            *(
                clients[n % 2].post("/loans", json={"sku": "wheelchair", "ticket_id": f"t-{n}"}, headers=DESK)
                for n in range(8)
            )
        )
    assert sorted(a.status_code for a in answers) == [201] * 20 + [409] * 30
    assert (await desk.concierge.store.consumables.require(sku)).stock == 0
    lent = [a.json() for a in loans if a.status_code == 201]
    assert sorted(a.status_code for a in loans) == [201] * 4 + [409] * 4
    assert len({loan["unit_id"] for loan in lent}) == 4, "the box holds four wheelchairs, each lent once"
    wheelchairs = await desk.concierge.store.lendables.require("wheelchair")
    assert sorted(u.loan_id for u in wheelchairs.units if u.state == "lent") == sorted(loan["loan_id"] for loan in lent)


async def loads(desk: Desk) -> dict[str, int]:
    """Open requests per concierge, as the requests say, once each concierge's document counts the
    same (a request consumed from the topic may be between its two writes)."""

    async def agreed() -> dict[str, int] | None:
        requests = await desk.concierge.store.assistance.find({"status": {"$in": ["assigned", "accepted"]}})
        counted = Counter(a.concierge_id for a in requests)
        found = {f"GK{n}": counted.get(f"GK{n}", 0) for n in range(1, 6)}
        roster = {c.id: c.load for c in await desk.concierge.store.concierges.find({})}
        return found if roster == found else None

    return await wait_for(agreed)  # type: ignore[no-any-return]


async def test_requests_at_once_are_shared_out_evenly_as_the_least_loaded_rule_says(desk: Desk) -> None:
    """Five concierges on duty: requests made at once, through one instance or two, never give one
    concierge two more than another. (Requests from needs on other tests' tickets, consumed from the
    shared topic, may join in: the rule counts them too.)"""
    body = {"kind": "escort", "location": "东门"}
    first = await asyncio.gather(*(desk.post("/assistance", body, headers=WINDOW) for _ in range(10)))
    assert all(a.status_code == 201 for a in first), [a.text for a in first]
    now = await loads(desk)
    assert sum(now.values()) >= 10
    assert max(now.values()) - min(now.values()) <= 1, now
    async with second_desk(desk) as other:
        clients = [desk.client, other]
        more = await asyncio.gather(*(clients[n % 2].post("/assistance", json=body, headers=WINDOW) for n in range(10)))
    assert all(a.status_code == 201 for a in more), [a.text for a in more]
    now = await loads(desk)
    assert sum(now.values()) >= 20
    assert max(now.values()) - min(now.values()) <= 1, now
    busiest = max(sorted(now), key=lambda c: now[c])
    theirs = [a.json()["assistance_id"] for a in (*first, *more) if a.json()["concierge_id"] == busiest]
    for assistance_id in theirs[:2]:  # two of theirs done: now they have the fewest
        assert (await desk.post(f"/assistance/{assistance_id}/complete", {})).status_code == 200
    assert (await desk.post("/assistance", body, headers=WINDOW)).json()["concierge_id"] == busiest


async def test_a_unit_is_never_lent_twice(desk: Desk) -> None:
    answers = await asyncio.gather(
        *(desk.post("/loans", {"sku": "wheelchair", "ticket_id": f"t-{n}"}) for n in range(8))
    )
    lent = [a.json() for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert len(lent) == 4, "the box holds four wheelchairs"
    assert len({loan["unit_id"] for loan in lent}) == 4
    assert all(a.status_code == 409 and "no wheelchair is free" in a.json()["detail"] for a in refused)
    back = await desk.post(f"/loans/{lent[0]['loan_id']}/return", {"condition": "damaged"})
    assert back.json()["status"] == "returned"
    again = await desk.post("/loans", {"sku": "wheelchair", "ticket_id": "t-9"})
    assert again.status_code == 409, "a damaged wheelchair goes to maintenance, not back on the shelf"
    inventory = (await desk.client.get("/inventory", headers=OPS)).json()
    wheelchairs = next(i for i in inventory["lendables"] if i["sku"] == "wheelchair")
    assert sorted(u["state"] for u in wheelchairs["units"]) == ["lent", "lent", "lent", "maintenance"]


async def test_a_loan_is_due_at_closing_reminded_before_and_overdue_exactly_once(desk: Desk, infra: Any) -> None:
    async with TopicReader(infra.kafka_bootstrap, "concierge.loans") as reader:
        answer = await desk.post("/loans", {"sku": "umbrella", "borrower": {"name": "王先生", "phone": "13800138000"}})
        assert answer.status_code == 201, answer.text
        loan = answer.json()
        assert loan["due_at"] == "2026-11-25T09:00:00Z", "the end of the business day, 17:00 in Xi'an"
        assert (loan["borrower_name"], loan["borrower_phone_masked"]) == ("王先生", "138****8000")
        desk.clock.set(datetime(2026, 11, 25, 8, 50, tzinfo=UTC))
        await desk.concierge.sweep()
        desk.clock.set(datetime(2026, 11, 25, 9, 1, tzinfo=UTC))
        await asyncio.gather(desk.concierge.sweep(), desk.concierge.sweep())
        await desk.concierge.sweep()
        await wait_for(lambda: of(reader, "item.overdue", loan_id=loan["loan_id"]))
        await asyncio.sleep(0.5)
        events = [e for e in reader.events() if e["subject"] == loan["loan_id"]]
    assert [e["type"] for e in events] == ["item.lent", "item.return_requested", "item.overdue"]
    assert events[1]["data"]["reason"] == "due_soon"
    assert "13800138000" not in str(events), "the walk-in's phone stays here"
    assert "王" not in str(events), "and so does their name"
    assert [e["sequence"] for e in events] == [1, 2, 3]


async def test_an_unaccepted_request_is_escalated_after_three_minutes_and_reassigned(desk: Desk, infra: Any) -> None:
    async with TopicReader(infra.kafka_bootstrap, "concierge.assistance") as reader:
        first = (await desk.post("/assistance", {"kind": "escort", "location": "东门"}, headers=WINDOW)).json()
        second = (await desk.post("/assistance", {"kind": "other"})).json()
        assert first["status"] == "assigned"
        assert second["concierge_id"] != first["concierge_id"], "the least-loaded concierge takes the next one"
        accepted = await desk.post(f"/assistance/{second['assistance_id']}/accept")
        assert accepted.json()["status"] == "accepted"
        desk.clock.advance(ACCEPT_WITHIN)
        await desk.concierge.sweep()
        moved = (await desk.client.get(f"/assistance/{first['assistance_id']}", headers=OPS)).json()
        assert moved["status"] == "assigned"
        assert moved["concierge_id"] not in (None, first["concierge_id"])
        assert moved["escalations"] == 1
        await wait_for(lambda: len([e for e in reader.events() if e["subject"] == first["assistance_id"]]) >= 4)
        trail = [e for e in reader.events() if e["subject"] == first["assistance_id"]]
    assert [e["type"] for e in trail] == [
        "assistance.requested",
        "assistance.assigned",
        "assistance.escalated",
        "assistance.assigned",
    ]
    assert trail[2]["data"]["concierge_id"] == first["concierge_id"]
    assert trail[3]["data"]["previous_concierge_id"] == first["concierge_id"]
    assert (await desk.post(f"/assistance/{second['assistance_id']}/accept")).status_code == 409
    listed = (await desk.client.get("/assistance", params={"status": "accepted"}, headers=OPS)).json()
    assert [a["assistance_id"] for a in listed] == [second["assistance_id"]]
    mine = {"concierge_id": second["concierge_id"]}
    listed = (await desk.client.get("/assistance", params=mine, headers=DESK)).json()
    assert [a["assistance_id"] for a in listed] == [second["assistance_id"]], "a concierge's own list"


async def test_requests_wait_for_a_concierge_to_come_on_duty(desk: Desk) -> None:
    for concierge in ("GK1", "GK2", "GK3", "GK4", "GK5"):
        assert (await desk.post(f"/concierges/{concierge}/duty", {"on_duty": False})).status_code == 200
    queued = (await desk.post("/assistance", {"kind": "mother_baby_room"})).json()
    assert queued["status"] == "queued"
    assert queued["concierge_id"] is None
    await desk.post("/concierges/GK3/duty", {"on_duty": True})
    now = (await desk.client.get(f"/assistance/{queued['assistance_id']}", headers=OPS)).json()
    assert (now["status"], now["concierge_id"]) == ("assigned", "GK3")


async def test_bad_input_gets_a_clear_4xx_and_publishes_nothing(desk: Desk, infra: Any) -> None:
    marker = unique("t-bad-")
    bad = [
        ("/loans", {"sku": "no-such-thing", "ticket_id": marker}, DESK, 404),
        ("/loans", {"sku": "umbrella"}, DESK, 422),  # neither a ticket nor a borrower
        ("/loans", {"sku": "umbrella", "ticket_id": marker, "due_at": "2020-01-01T00:00:00Z"}, DESK, 422),
        ("/loans", {"sku": "umbrella", "ticket_id": marker, "due_at": "2026-11-25T18:00:00"}, DESK, 422),  # naive
        ("/loans", {"sku": "umbrella", "ticket_id": marker}, KIOSK, 403),
        ("/loans", {"sku": "umbrella", "ticket_id": marker, "colour": "red"}, DESK, 422),
        ("/loans", {"sku": "umbrella", "borrower": {"name": "王", "phone": "not a phone"}}, DESK, 422),
        ("/dispensations", {"sku": "candy", "qty": 0, "ticket_id": marker}, DESK, 422),
        ("/dispensations", {"sku": "candy", "qty": 101, "ticket_id": marker}, DESK, 422),
        ("/dispensations", {"sku": "umbrella", "qty": 1, "ticket_id": marker}, DESK, 404),
        ("/assistance", {"kind": "teleport", "ticket_id": marker}, DESK, 422),
        ("/assistance", {"kind": "escort", "ticket_id": marker, "note": "x" * 1001}, DESK, 422),
        ("/assistance", {"kind": "escort", "ticket_id": marker}, OPS, 403),
        ("/inventory/candy/restock", {"qty": -3}, DESK, 422),
        ("/concierges/GK9/duty", {"on_duty": True}, DESK, 404),
    ]
    async with TopicReader(infra.kafka_bootstrap, *TOPICS) as reader:
        for path, body, headers, expected in bad:
            answer = await desk.post(path, body, headers)
            assert answer.status_code == expected, (path, body, answer.text)
            assert answer.json()["detail"], "the error says what is wrong"
        assert (await desk.client.post("/loans", json={"sku": "umbrella", "ticket_id": marker})).status_code == 401
        fence = await desk.post("/dispensations", {"sku": "pen", "qty": 1, "ticket_id": marker})
        assert fence.status_code == 201
        await wait_for(lambda: of(reader, "consumable.dispensed", ticket_id=marker))
        await asyncio.sleep(0.5)
        mine = [e for e in reader.events() if marker in str(e)]
    assert [e["type"] for e in mine] == ["consumable.dispensed"], "only the good request's event"
    assert await desk.concierge.store.loans.find({}) == []
    assert (await desk.concierge.store.consumables.require("candy")).stock == 300


async def test_needs_on_a_ticket_become_assistance_requests_once_however_often_delivered(desk: Desk) -> None:
    ticket_id = unique("t-")
    issued = envelope_for(
        TicketIssued(
            ticket_id=ticket_id,
            number="B001",
            category="B",
            item_code="B001",
            channel="kiosk",
            needs=["wheelchair", "reading_glasses"],
            issued_at=OPENING,
        ),
        time=OPENING,
        correlationid=ticket_id,
    )
    data = TicketIssued.model_validate(issued.data)
    await desk.concierge.ticket_issued(issued, data)
    await desk.concierge.ticket_issued(issued, data)  # past the inbox: the ids derived from the event hold
    requests = await desk.concierge.store.assistance.find({"ticket_id": ticket_id})
    assert sorted(a.kind for a in requests) == ["other", "wheelchair"]
    assert all(a.status == "assigned" for a in requests)
    assert all(a.correlation == ticket_id for a in requests)


async def test_a_poison_message_on_the_tickets_topic_lands_in_the_dead_letter_topic(desk: Desk, infra: Any) -> None:
    poison = f'{{"broken": "{unique("poison-")}"'.encode()
    async with TopicReader(infra.kafka_bootstrap, dlq_topic("concierge")) as dead:
        await wait_for(desk.kit.kafka_ready.is_set, 30)
        await produce(infra.kafka_bootstrap, "queue.tickets", poison, b"t-poison")
        await wait_for(lambda: [r for r in dead.records if r.value == poison], 60)
        record = next(r for r in dead.records if r.value == poison)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["x-original-topic"] == "queue.tickets"
    assert headers["x-error-kind"] == "malformed"
    assert headers["x-service"] == "concierge"


async def test_the_desk_reports_its_state_as_metrics(desk: Desk) -> None:
    await desk.post("/loans", {"sku": "iron", "ticket_id": "t-1", "due_at": "2026-11-25T02:00:00Z"})
    await desk.post("/assistance", {"kind": "wheelchair"})
    desk.clock.advance(timedelta(hours=1))
    metrics = (await desk.client.get("/metrics")).text
    assert 'goldenkey_loans_out{sku="iron"} 1.0' in metrics
    assert "goldenkey_loans_overdue 1.0" in metrics
    assert 'goldenkey_stock_level{sku="candy"} 300.0' in metrics
    assert 'goldenkey_assistance_open{kind="wheelchair"} 1.0' in metrics
    assert "goldenkey_concierges_on_duty 5.0" in metrics
    assert 'goldenkey_loans_total{sku="iron"} 1.0' in metrics


async def test_a_flat_tyre_becomes_a_vehicle_help_request_for_the_incident(desk: Desk, infra: Any) -> None:
    incident_id = unique("inc-")
    alert = envelope_for(
        TyreAlert(incident_id=incident_id, space="P-017", ticket_id="t-driver", reported_at=OPENING),
        time=OPENING,
        correlationid=incident_id,
    )
    async with TopicReader(infra.kafka_bootstrap, "concierge.assistance") as reader:
        await wait_for(desk.kit.kafka_ready.is_set, 30)
        await produce(infra.kafka_bootstrap, "parking.incidents", alert.to_bytes(), incident_id.encode())
        assigned = await wait_for(lambda: of(reader, "assistance.assigned", incident_id=incident_id), 60)
    help_ = await desk.concierge.assistance(assigned[0]["data"]["assistance_id"])
    assert help_.kind == "vehicle_help"
    assert help_.location == "car park P-017"
    assert help_.ticket_id == "t-driver"
    assert assigned[0]["correlationid"] == incident_id
    requested = of(reader, "assistance.requested", incident_id=incident_id)
    assert requested[0]["causationid"] == alert.id


async def test_a_crash_between_a_loans_two_writes_leaves_no_unit_stuck(desk: Desk) -> None:
    """A unit claimed for a loan never written, or lent on a loan already returned, is mended."""

    def claim(item: Lendable) -> None:
        item.claim("never-written", desk.clock.now())

    await desk.concierge.store.lendables.update("iron", claim)
    assert (await desk.post("/loans", {"sku": "iron", "ticket_id": "t-1"})).status_code == 409
    lent = (await desk.post("/loans", {"sku": "medical-kit", "ticket_id": "t-2"})).json()
    # the loan's own write of a return, without the item's (the process died in between)
    await desk.concierge.store.loans.update(lent["loan_id"], lambda loan: loan.give_back("damaged", desk.clock.now()))
    desk.clock.advance(timedelta(minutes=3))
    await desk.concierge.sweep()
    iron = await desk.post("/loans", {"sku": "iron", "ticket_id": "t-1"})
    assert iron.status_code == 201, iron.text
    assert iron.json()["unit_id"] == "IR-01"
    kit = await desk.concierge.store.lendables.require("medical-kit")
    assert kit.unit(lent["unit_id"]).state == "maintenance", "it follows its loan's return as damaged"


async def test_a_dispensation_retried_after_a_crash_hands_out_nothing_more(desk: Desk, infra: Any) -> None:
    """The first attempt took the stock but died before its answer was stored; the retry with the
    same Idempotency-Key runs again and must find the dispensation done, not hand out a second lot."""
    marker = unique("t-retry-")
    body, headers = {"sku": "band-aid", "qty": 3, "ticket_id": marker}, {**DESK, "Idempotency-Key": marker}
    before = (await desk.concierge.store.consumables.require("band-aid")).stock
    async with TopicReader(infra.kafka_bootstrap, "concierge.stock") as reader:
        first = await desk.post("/dispensations", body, headers)
        assert first.status_code == 201, first.text
        records = desk.kit.db["idempotency"]
        await records.delete_many({"state": "done"})  # the process died before storing the answer
        await records.update_many({}, {"$set": {"at": datetime(2020, 1, 1, tzinfo=UTC)}})
        again = await desk.post("/dispensations", body, headers)
        assert again.status_code == 201, again.text
        assert again.json()["dispensation_id"] == first.json()["dispensation_id"]
        await wait_for(lambda: of(reader, "consumable.dispensed", ticket_id=marker))
        await asyncio.sleep(0.5)
        dispensed = of(reader, "consumable.dispensed", ticket_id=marker)
    assert (await desk.concierge.store.consumables.require("band-aid")).stock == before - 3
    assert len(dispensed) == 1


async def test_two_sweeps_at_once_count_an_escalation_once(desk: Desk) -> None:
    await desk.post("/assistance", {"kind": "escort"})
    desk.clock.advance(ACCEPT_WITHIN)
    await asyncio.gather(desk.concierge.sweep(), desk.concierge.sweep())
    metrics = (await desk.client.get("/metrics")).text
    assert 'goldenkey_assistance_escalations_total{kind="escort"} 1.0' in metrics


async def test_a_due_time_beyond_any_calendar_is_refused_and_claims_no_unit(desk: Desk) -> None:
    far = {"sku": "iron", "ticket_id": "t-1", "due_at": "9999-12-31T23:59:59-10:00"}
    answer = await desk.post("/loans", far)
    assert answer.status_code == 422, answer.text
    assert "due_at" in answer.json()["detail"]
    iron = await desk.concierge.store.lendables.require("iron")
    assert all(unit.state == "shelf" for unit in iron.units), "bad input writes nothing"


async def test_a_visit_ended_reminder_names_the_event_that_caused_it(desk: Desk, infra: Any) -> None:
    ticket_id = unique("t-")
    completed = envelope_for(
        TicketCompleted(ticket_id=ticket_id, outcome="done", window_id="W01", wait_s=60, service_s=120),
        time=OPENING,
        correlationid=ticket_id,
    )
    async with TopicReader(infra.kafka_bootstrap, "concierge.loans") as reader:
        loan = (await desk.post("/loans", {"sku": "umbrella", "ticket_id": ticket_id})).json()
        await desk.concierge.visit_ended(completed, ticket_id)
        await desk.concierge.visit_ended(completed, ticket_id)
        reminders = await wait_for(lambda: of(reader, "item.return_requested", loan_id=loan["loan_id"]))
        await asyncio.sleep(0.5)
        reminders = of(reader, "item.return_requested", loan_id=loan["loan_id"])
    assert len(reminders) == 1
    assert reminders[0]["causationid"] == completed.id
    assert reminders[0]["correlationid"] == ticket_id


async def test_a_loan_retried_while_the_watchdog_mends_claims_keeps_its_unit(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt claimed the iron and died; its retry comes after the claim looks orphaned,
    just as the watchdog has found no loan for it: the watchdog must not shelve the renewed claim."""

    def claim(item: Lendable) -> None:
        item.claim("loan-retried", desk.clock.now())

    await desk.concierge.store.lendables.update("iron", claim)
    desk.clock.advance(timedelta(minutes=3))
    loans = desk.concierge.store.loans
    find = loans.find

    async def find_then_the_retry_lands(query: Any, **options: Any) -> Any:
        found = await find(query, **options)
        if "_id" in query:  # the watchdog looked for the claims' loans: none yet
            await desk.concierge.lend(
                "loan-retried", sku="iron", ticket_id="t-1", borrower_name=None, borrower_phone=None, due_at=None
            )
        return found

    monkeypatch.setattr(loans, "find", find_then_the_retry_lands)
    await desk.concierge.sweep()
    monkeypatch.undo()
    iron = await desk.concierge.store.lendables.require("iron")
    assert [(u.state, u.loan_id) for u in iron.units] == [("lent", "loan-retried")]
    assert (await desk.post("/loans", {"sku": "iron", "ticket_id": "t-2"})).status_code == 409


async def test_a_concierge_going_off_duty_hands_unaccepted_requests_to_someone_on_duty(desk: Desk, infra: Any) -> None:
    async with TopicReader(infra.kafka_bootstrap, "concierge.assistance") as reader:
        given = (await desk.post("/assistance", {"kind": "escort"})).json()
        taken = (await desk.post("/assistance", {"kind": "other"})).json()
        assert given["concierge_id"] == "GK1"
        await desk.post(f"/assistance/{taken['assistance_id']}/accept")
        await desk.post(f"/concierges/{given['concierge_id']}/duty", {"on_duty": False})
        now = (await desk.client.get(f"/assistance/{given['assistance_id']}", headers=OPS)).json()
        assert now["status"] == "assigned"
        assert now["concierge_id"] not in ("GK1", None)
        assert now["escalations"] == 0, "a hand-over is not an escalation"
        await wait_for(lambda: len(of(reader, "assistance.assigned", assistance_id=given["assistance_id"])) >= 2)
        again = of(reader, "assistance.assigned", assistance_id=given["assistance_id"])[-1]
    assert again["data"]["previous_concierge_id"] == "GK1"
    kept = (await desk.client.get(f"/assistance/{taken['assistance_id']}", headers=OPS)).json()
    assert (kept["status"], kept["concierge_id"]) == ("accepted", taken["concierge_id"]), "accepted work stays"


async def test_an_admin_edits_the_inventory_and_unit_ids_stay_unique(desk: Desk) -> None:
    admin = {"Authorization": "Bearer dev-admin"}
    edited = await desk.client.put("/inventory/pen", json={"minimum": 250, "name_en": "Ballpoint pen"}, headers=admin)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["minimum"], edited.json()["low"], edited.json()["name_en"]) == (250, True, "Ballpoint pen")
    refused = await desk.client.put("/inventory/umbrella", json={"minimum": 3}, headers=admin)
    assert refused.status_code == 422
    assert "lendable" in refused.json()["detail"]
    taken = await desk.client.post("/inventory/umbrella/units", json={"unit_id": "WC-01"}, headers=admin)
    assert taken.status_code == 409
    assert "belongs to wheelchair" in taken.json()["detail"]
    added = await desk.client.post("/inventory/umbrella/units", json={"unit_id": "UM-21"}, headers=admin)
    assert added.status_code == 201
    assert (await desk.post("/inventory/umbrella/units/UM-99/repaired")).status_code == 404


async def test_what_earlier_days_closed_moves_to_the_archive_and_can_still_be_read(desk: Desk) -> None:
    returned = (await desk.post("/loans", {"sku": "umbrella", "ticket_id": "t-1"})).json()
    still_out = (await desk.post("/loans", {"sku": "umbrella", "ticket_id": "t-2"})).json()
    assert (await desk.post(f"/loans/{returned['loan_id']}/return", {"condition": "ok"})).status_code == 200
    done = (await desk.post("/assistance", {"kind": "escort", "ticket_id": "t-1"})).json()
    for step in ("accept", "complete"):
        assert (await desk.post(f"/assistance/{done['assistance_id']}/{step}", {})).status_code == 200
    await wait_for(lambda: _nothing_pending(desk))  # archived only once its events are out
    assert await desk.concierge.archive_earlier_days(desk.clock.now()) == 0, "today's stay where they are"

    desk.clock.advance(timedelta(days=1))
    assert await desk.concierge.archive_earlier_days(desk.clock.now()) == 2
    listed = (await desk.client.get("/loans", headers=DESK)).json()
    looked_up = await desk.client.get(f"/loans/{returned['loan_id']}", headers=DESK)
    request = await desk.client.get(f"/assistance/{done['assistance_id']}", headers=DESK)
    assert [loan["loan_id"] for loan in listed] == [still_out["loan_id"]], "the loan still out stays in the desk's list"
    assert (looked_up.status_code, looked_up.json()["status"]) == (200, "returned")
    assert (request.status_code, request.json()["status"]) == (200, "completed")


async def _nothing_pending(desk: Desk) -> bool:
    return await desk.kit.relay.pending() == 0


async def test_lists_come_a_page_at_a_time(desk: Desk) -> None:
    made = []
    for n in range(3):
        made.append((await desk.post("/loans", {"sku": "umbrella", "ticket_id": f"t-{n}"})).json()["loan_id"])
        desk.clock.advance(timedelta(seconds=10))
    first = (await desk.client.get("/loans", params={"limit": 2}, headers=DESK)).json()
    rest = (await desk.client.get("/loans", params={"limit": 2, "offset": 2}, headers=DESK)).json()
    too_many = await desk.client.get("/loans", params={"limit": 501}, headers=DESK)
    assert [loan["loan_id"] for loan in first + rest] == made
    assert too_many.status_code == 422
