"""The queue service over real Kafka and the MongoDB-protocol server: tickets, calling, lunch in turns, paging."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from goldenkey.contracts import CloudEvent, parse_event
from goldenkey.kit import ManualClock
from goldenkey.kit.pii import plate_hash
from goldenkey.queue.app import Settings, build_app
from goldenkey.queue.domain import LEAVING_GRACE, Ticket, ticket_number
from goldenkey.queue.store import seed
from tests.support import RunningApp, TopicReader, produce, unique, wait_for

pytestmark = pytest.mark.integration
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}
OPS = {"Authorization": "Bearer dev-ops"}


@dataclass
class Hall:
    client: httpx.AsyncClient
    app: Any
    clock: ManualClock

    @property
    def queue(self) -> Any:
        return self.app.state.queue

    async def issue(self, item: str = "B001", **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/tickets", json={"item_code": item, "channel": "kiosk", **extra}, headers=KIOSK
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def open(self, *windows: str) -> None:
        for window in windows:
            response = await self.client.post(
                f"/windows/{window}/open", json={"staff_id": f"s-{window}"}, headers=WINDOW
            )
            assert response.status_code == 200, response.text


@contextlib.asynccontextmanager
async def serving(infra: Any, clock: ManualClock, **settings: Any) -> AsyncIterator[Hall]:
    """The queue service on a fresh database, its time told by `clock`."""
    app = build_app(
        Settings(
            kafka_bootstrap=infra.kafka_bootstrap,
            mongodb_url=infra.mongodb_url,
            mongodb_database=unique("queue_"),
            dev_mode=True,
            dev_tokens=True,
            consumer_backoff_s=0.05,
            mongodb_timeout_ms=2000,
            **settings,
        ),
        clock=clock,
    )
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        yield Hall(client, app, clock)


@pytest.fixture
async def hall(infra: Any) -> AsyncIterator[Hall]:
    async with serving(infra, ManualClock(OPENING)) as opened:
        yield opened


def events_of(reader: TopicReader, subject: str) -> list[dict[str, Any]]:
    return [e for e in reader.events() if e["subject"] == subject]


async def test_a_ticket_is_numbered_per_category_and_announced_on_the_topic(hall: Hall, infra: Any) -> None:
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets") as reader:
        first = await hall.issue("B001")
        second = await hall.issue("B002", priority="elderly", needs=["wheelchair"], plate="陕A12345")
        other = await hall.issue("C001")
        await wait_for(lambda: events_of(reader, second["ticket_id"]))
        issued = events_of(reader, second["ticket_id"])[0]
    assert (first["number"], second["number"], other["number"]) == ("B001", "B002", "C001")
    assert second["position"] == 1, "an elderly citizen goes ahead of the normal ticket"
    assert first["position"] == 1
    envelope, data = parse_event(__import__("json").dumps(issued))
    assert envelope.type == "ticket.issued"
    assert envelope.source == "goldenkey/queue"
    assert data.needs == ["wheelchair"]  # type: ignore[attr-defined]
    assert data.plate_hash == plate_hash("goldenkey-dev-only-pii-key", "陕A12345")  # type: ignore[attr-defined]
    assert "12345" not in str(issued), "no raw plate on the topic"


async def test_two_instances_issuing_at_once_hand_out_every_number_once(hall: Hall) -> None:
    for _ in range(3):
        await hall.issue()
    other = build_app(hall.app.state.kit.settings.model_copy(), clock=hall.clock)
    async with RunningApp(other) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as client:

        async def issue(through: httpx.AsyncClient) -> str:
            response = await through.post("/tickets", json={"item_code": "B001", "channel": "kiosk"}, headers=KIOSK)
            assert response.status_code == 201, response.text
            return str(response.json()["number"])

        numbers = await asyncio.gather(*(issue(c) for _ in range(10) for c in (hall.client, client)))
    assert sorted(numbers) == [ticket_number("B", n) for n in range(4, 24)]


async def test_bad_input_gets_a_4xx_and_publishes_nothing(hall: Hall) -> None:
    cases = [
        ({"item_code": "Z999", "channel": "kiosk"}, KIOSK, 422, "unknown service item"),
        ({"item_code": "B001", "channel": "fax"}, KIOSK, 422, "channel"),
        ({"item_code": "B001", "channel": "kiosk", "priority": "vip"}, KIOSK, 422, "priority"),
        ({"item_code": "B001", "channel": "kiosk", "plate": "not a plate"}, KIOSK, 422, "plate"),
        ({"item_code": "B001", "channel": "kiosk", "phone": "1" * 30}, KIOSK, 422, "phone"),
        ({"item_code": "B001", "channel": "kiosk", "extra": 1}, KIOSK, 422, "extra"),
        ({"item_code": "B001", "channel": "kiosk"}, WINDOW, 403, "kiosk"),
        ({"item_code": "B001", "channel": "kiosk"}, {}, 401, "bearer"),
    ]
    for body, headers, code, words in cases:
        response = await hall.client.post("/tickets", json=body, headers=headers)
        assert response.status_code == code, (body, response.text)
        assert words in response.text.lower()
    assert await hall.queue.store.db["tickets"].count_documents({}) == 0
    assert await hall.queue.store.db["numbers"].count_documents({}) == 0


@contextlib.asynccontextmanager
async def second_instance(hall: Hall) -> AsyncIterator[httpx.AsyncClient]:
    """Another instance of the queue on the same database (its own in-process turns and caches)."""
    other = build_app(hall.app.state.kit.settings.model_copy(), clock=hall.clock)
    async with RunningApp(other) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        yield client


async def test_ten_windows_calling_at_once_serve_two_hundred_tickets_each_exactly_once(hall: Hall) -> None:
    """Ten windows call at once, half through each of two instances, so claims race in the
    database and not only inside one process; each window calls again as soon as it has an answer."""
    windows = [f"W{n:02d}" for n in range(11, 18)] + ["W51", "W52", "W53"]  # tax windows and comprehensive ones
    await hall.open(*windows)
    tickets = hall.queue.store.tickets
    day = date(2026, 11, 25)
    for n in range(1, 201):
        await tickets.add(
            Ticket.issue(
                ticket_id=f"t{n}",
                number=ticket_number("B", n),
                category="B",
                item_code="B001",
                channel="kiosk",
                at=OPENING,
                day=day,
            )
        )
    called: dict[str, list[str]] = {w: [] for w in windows}

    async def keep_calling(window: str, through: httpx.AsyncClient) -> None:
        while True:
            response = await through.post(f"/windows/{window}/call-next", headers=WINDOW)
            if response.status_code == 204:
                return
            assert response.status_code == 200, response.text
            called[window].append(response.json()["ticket_id"])

    async with second_instance(hall) as other:
        clients = [hall.client, other]
        await asyncio.gather(*(keep_calling(w, clients[n % 2]) for n, w in enumerate(windows)))
    everyone = [t for calls in called.values() for t in calls]
    assert len(set(everyone)) == len(everyone), "no ticket was called by two windows"
    assert sorted(everyone) == sorted(f"t{n}" for n in range(1, 201)), "every ticket was called"
    assert sum(1 for calls in called.values() if calls) >= 5, "the work was shared"
    assert all(called[w] for w in windows[:2]), "through both instances"
    statuses = {t.id: (t.status, t.window_id) for t in await tickets.find({})}
    assert all(statuses[t] == ("called", w) for w, calls in called.items() for t in calls)


async def test_a_window_is_never_told_nobody_waits_while_another_instance_issued_a_ticket(hall: Hall) -> None:
    """Calls go by a line kept for a second; one that finds nobody in it reads afresh first."""
    await hall.open("W11")
    assert (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).status_code == 204
    async with second_instance(hall) as other:
        issued = await other.post("/tickets", json={"item_code": "B001", "channel": "kiosk"}, headers=KIOSK)
        assert issued.status_code == 201, issued.text
    called = await hall.client.post("/windows/W11/call-next", headers=WINDOW)
    assert called.status_code == 200, "the line read a moment ago did not hide the new ticket"
    assert called.json()["ticket_id"] == issued.json()["ticket_id"]


async def test_a_ticket_issued_through_an_instance_joins_the_line_its_calls_go_by(hall: Hall) -> None:
    """Called in the order they came, the line kept between calls included every new ticket."""
    await hall.open("W11")
    assert (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).status_code == 204
    issued = []
    for _ in range(3):
        answer = await hall.client.post("/tickets", json={"item_code": "B001", "channel": "kiosk"}, headers=KIOSK)
        assert answer.status_code == 201, answer.text
        issued.append(answer.json()["ticket_id"])
    called = []
    for _ in range(3):
        answer = await hall.client.post("/windows/W11/call-next", headers=WINDOW)
        assert answer.status_code == 200, answer.text
        called.append(answer.json()["ticket_id"])
        done = await hall.client.post(f"/tickets/{called[-1]}/no-show", headers=WINDOW)
        assert done.status_code == 200, done.text
    assert called == issued
    assert (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).status_code == 204


async def windows_open_for(hall: Hall, category: str) -> list[str]:
    listed = (await hall.client.get("/windows", headers=WINDOW)).json()
    return [w["window_id"] for w in listed if w["state"] == "open" and category in w["categories"]]


async def pause_at_once(*requests: tuple[httpx.AsyncClient, str]) -> list[int]:
    answers = await asyncio.gather(
        *(client.post(f"/windows/{w}/pause", json={"reason": "lunch"}, headers=WINDOW) for client, w in requests)
    )
    refused = [a for a in answers if a.status_code == 409]
    assert all("no open window" in a.text or "is paused" in a.text for a in refused), [a.text for a in refused]
    return sorted(a.status_code for a in answers)


async def test_of_simultaneous_lunch_pauses_for_a_categorys_last_two_windows_one_goes_through(hall: Hall) -> None:
    """Z (the comprehensive windows' category) is served only by W51-W56; W51 and W52 are open."""
    await hall.open("W51", "W52")
    for _ in range(5):
        codes = await pause_at_once(*((hall.client, w) for w in ("W51", "W52", "W51", "W52")))
        assert codes == [200, 409, 409, 409]
        still_open = await windows_open_for(hall, "Z")
        assert len(still_open) == 1, "Z keeps an open window"
        coverage = await hall.queue.store.coverage.require("coverage")
        assert coverage.open_for()["Z"] == still_open
        assert coverage.gaps == {}
        paused = "W51" if still_open == ["W52"] else "W52"
        resumed = await hall.client.post(f"/windows/{paused}/resume", headers=WINDOW)
        assert resumed.status_code == 200, resumed.text


async def test_two_instances_pausing_a_categorys_last_two_windows_at_once_let_one_through(
    hall: Hall, infra: Any
) -> None:
    await hall.open("W51", "W52")
    async with second_instance(hall) as other:
        for _ in range(5):
            codes = await pause_at_once((hall.client, "W51"), (other, "W52"), (other, "W51"), (hall.client, "W52"))
            assert codes == [200, 409, 409, 409]
            still_open = await windows_open_for(hall, "Z")
            assert len(still_open) == 1, "Z keeps an open window"
            paused = "W51" if still_open == ["W52"] else "W52"
            assert (await other.post(f"/windows/{paused}/resume", headers=WINDOW)).status_code == 200
        hall.clock.advance(timedelta(minutes=7, seconds=13))  # this test's gap, on a topic all tests share
        async with TopicReader(infra.kafka_bootstrap, "queue.windows") as reader:
            lunch, forced = {"reason": "lunch"}, {"reason": "lunch", "force": True}
            assert (await other.post("/windows/W51/pause", json=forced, headers=OPS)).status_code == 200
            assert (await hall.client.post("/windows/W52/pause", json=lunch, headers=WINDOW)).status_code == 409
            assert (await hall.client.post("/windows/W52/pause", json=forced, headers=OPS)).status_code == 200

            def gap_opened() -> list[dict[str, Any]]:
                return [
                    e
                    for e in reader.events()
                    if e["type"] == "coverage.gap_opened"
                    and e["subject"] == "Z"
                    and datetime.fromisoformat(e["data"]["opened_at"]) == hall.clock.now()
                ]

            await wait_for(gap_opened)
    assert "Z" in (await hall.queue.store.coverage.require("coverage")).gaps
    assert await windows_open_for(hall, "Z") == []


async def test_a_pause_that_died_between_its_two_writes_leaves_the_window_counted_out_until_the_watchdog(
    hall: Hall,
) -> None:
    """The coverage took W51 out, then the process died before W51's own write: W51 is open but not
    counted, so the rule is stricter than it need be (never looser) until the watchdog, after the
    grace, counts it in again."""
    await hall.open("W51", "W52")
    store = hall.queue.store
    w51 = await store.windows.require("W51")
    await store.coverage.update("coverage", lambda c: c.leave(w51, hall.clock.now(), lunch_rule=True))
    refused = await hall.client.post("/windows/W52/pause", json={"reason": "lunch"}, headers=WINDOW)
    assert refused.status_code == 409
    await hall.queue.watch_coverage()
    assert (await store.coverage.require("coverage")).open_for()["Z"] == ["W52"], "its write may be on its way"
    hall.clock.advance(LEAVING_GRACE)
    await hall.queue.watch_coverage()
    assert (await store.coverage.require("coverage")).open_for()["Z"] == ["W51", "W52"]
    assert (await store.windows.require("W51")).version > w51.version, "the lost write can no longer land"
    assert (await hall.client.post("/windows/W52/pause", json={"reason": "lunch"}, headers=WINDOW)).status_code == 200
    assert await windows_open_for(hall, "Z") == ["W51"]


async def test_lunch_in_turns_refuses_to_leave_a_category_empty_unless_ops_force_it(hall: Hall, infra: Any) -> None:
    await hall.open("W42", "W43")  # the two culture-and-tourism windows (G); W44 serves G and H
    first = await hall.client.post("/windows/W42/pause", json={"reason": "lunch"}, headers=WINDOW)
    assert first.status_code == 200
    refused = await hall.client.post("/windows/W43/pause", json={"reason": "lunch"}, headers=WINDOW)
    assert refused.status_code == 409
    assert "G" in refused.json()["detail"]
    not_ops = await hall.client.post("/windows/W43/pause", json={"reason": "lunch", "force": True}, headers=WINDOW)
    assert not_ops.status_code == 403
    hall.clock.advance(timedelta(minutes=5))  # this test's gap, on a topic every test's hall writes G gaps to
    async with TopicReader(infra.kafka_bootstrap, "queue.windows") as reader:
        forced = await hall.client.post("/windows/W43/pause", json={"reason": "lunch", "force": True}, headers=OPS)
        assert forced.status_code == 200

        def announced() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            gap = [
                e
                for e in reader.events()
                if e["type"] == "coverage.gap_opened"
                and e["subject"] == "G"
                and datetime.fromisoformat(e["data"]["opened_at"]) == hall.clock.now()
            ]
            paused = [e for e in reader.events() if e["type"] == "window.paused" and e["subject"] == "W43"]
            return (gap, paused) if gap and paused else None

        gap, paused = await wait_for(announced)
    assert len(gap) == 1
    assert paused[-1]["data"]["forced"] is True


async def test_an_illegal_step_is_a_409_naming_the_state(hall: Hall) -> None:
    ticket = await hall.issue()
    complete = await hall.client.post(
        f"/tickets/{ticket['ticket_id']}/complete", json={"outcome": "done"}, headers=WINDOW
    )
    assert complete.status_code == 409
    assert "waiting" in complete.json()["detail"]
    closed = await hall.client.post("/windows/W11/call-next", headers=WINDOW)
    assert closed.status_code == 409
    assert "closed" in closed.json()["detail"]


async def test_a_ticket_served_start_to_finish_emits_every_step_in_order(hall: Hall, infra: Any) -> None:
    await hall.open("W11")
    await wait_for(hall.app.state.kit.kafka_ready.is_set)
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets") as reader:
        ticket = (await hall.issue())["ticket_id"]
        assert (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).json()["ticket_id"] == ticket
        await hall.client.post(f"/tickets/{ticket}/recall", headers=WINDOW)
        await hall.client.post(f"/tickets/{ticket}/start", headers=WINDOW)
        done = await hall.client.post(
            f"/tickets/{ticket}/complete", json={"outcome": "needs_materials"}, headers=WINDOW
        )
        assert done.status_code == 200
        await wait_for(lambda: any(e["type"] == "ticket.completed" for e in events_of(reader, ticket)), 60)
        mine = events_of(reader, ticket)
    types = [e["type"] for e in mine]
    assert types[0] == "ticket.issued"
    assert [t for t in types if t != "ticket.approaching"][1:] == [
        "ticket.called",
        "ticket.recalled",
        "ticket.service_started",
        "ticket.completed",
    ]
    assert [e["sequence"] for e in mine] == sorted(e["sequence"] for e in mine)
    assert mine[-1]["data"]["outcome"] == "needs_materials"
    stats = (await hall.client.get("/stats/today", headers=OPS)).json()
    assert (stats["issued"], stats["served"], stats["one_trip_breaches"]) == (1, 1, 1)
    assert stats["by_window"]["W11"]["served"] == 1
    assert (await hall.client.get("/stats/today", headers=WINDOW)).status_code == 403
    metrics = (await hall.client.get("/metrics")).text
    assert 'goldenkey_tickets_completed_total{outcome="needs_materials"} 1.0' in metrics
    assert 'goldenkey_tickets_issued_total{category="B",channel="kiosk",priority="none"} 1.0' in metrics
    assert 'goldenkey_windows_open{category="B"} 1.0' in metrics
    assert 'goldenkey_queue_waiting{category="B"} 0.0' in metrics


async def test_a_tyre_alert_naming_a_waiting_ticket_pages_its_owner(hall: Hall, infra: Any) -> None:
    ticket = await hall.issue(plate="陕A54321")
    alert = CloudEvent(
        id=unique("alert-"),
        type="tyre.alert",
        source="goldenkey/parking",
        time=OPENING,
        subject="inc-1",
        data={
            "incident_id": "inc-1",
            "kind": "flat_tyre",
            "plate_hash": plate_hash("goldenkey-dev-only-pii-key", "陕A54321"),
            "plate_masked": "陕A***21",
        },
    )
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets") as reader:
        await wait_for(hall.app.state.kit.kafka_ready.is_set)
        await produce(infra.kafka_bootstrap, "parking.incidents", alert.to_bytes(), b"inc-1")
        await produce(infra.kafka_bootstrap, "parking.incidents", alert.to_bytes(), b"inc-1")  # redelivered
        await wait_for(lambda: [e for e in events_of(reader, ticket["ticket_id"]) if e["type"] == "ticket.paged"], 30)
        await asyncio.sleep(1)
        pages = [e for e in events_of(reader, ticket["ticket_id"]) if e["type"] == "ticket.paged"]
    assert len(pages) == 1
    assert pages[0]["data"]["incident_id"] == "inc-1"
    assert pages[0]["data"].get("window_id") is None, "a waiting citizen is paged on the waiting-area display"
    assert pages[0]["causationid"] == alert.id


async def test_an_admin_edits_the_catalogue_without_a_release_and_a_restart_keeps_the_edit(hall: Hall) -> None:
    admin = {"Authorization": "Bearer dev-admin"}
    edited = await hall.client.put("/catalog/B001", json={"service_min": 7}, headers=admin)
    assert edited.status_code == 200
    assert edited.json()["service_min"] == 7
    assert (await hall.client.put("/catalog/B001", json={"service_min": 7}, headers=OPS)).status_code == 403
    assert (await hall.client.put("/catalog/Q999", json={"service_min": 7}, headers=admin)).status_code == 404
    assert (await hall.client.put("/catalog/B001", json={"service_min": 0}, headers=admin)).status_code == 422
    assert (await hall.client.put("/catalog/B001", json={"materials": ["身份证"]}, headers=admin)).status_code == 422
    target = await hall.client.put("/categories/B", json={"target_wait_min": 25}, headers=admin)
    assert target.json()["target_wait_min"] == 25
    await seed(hall.queue.store.db, hall.queue.store.windows)  # what every start does
    item = [
        row for row in (await hall.client.get("/catalog?category=B", headers=KIOSK)).json() if row["code"] == "B001"
    ]
    assert item[0]["service_min"] == 7
    assert len((await hall.client.get("/catalog", headers=KIOSK)).json()) >= 502
    assert len((await hall.client.get("/categories", headers=KIOSK)).json()) >= 8
    assert len((await hall.client.get("/windows", headers=KIOSK)).json()) == 58


async def test_approaching_goes_out_once_when_a_ticket_reaches_position_three(hall: Hall, infra: Any) -> None:
    await hall.open("W11")
    await wait_for(hall.app.state.kit.kafka_ready.is_set)
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets") as reader:
        tickets = [(await hall.issue("B003"))["ticket_id"] for _ in range(5)]

        def approaching() -> dict[str, int]:
            return {t: sum(1 for e in events_of(reader, t) if e["type"] == "ticket.approaching") for t in tickets}

        await wait_for(lambda: sum(approaching().values()) == 3)
        assert (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).json()["ticket_id"] == tickets[0]
        await wait_for(lambda: approaching()[tickets[3]] == 1)
        await asyncio.sleep(0.5)
        counts = approaching()
    assert counts == {tickets[0]: 1, tickets[1]: 1, tickets[2]: 1, tickets[3]: 1, tickets[4]: 0}


async def test_numbers_start_again_at_001_after_midnight_and_yesterdays_tickets_leave_the_queue(infra: Any) -> None:
    before_midnight = datetime(2026, 11, 25, 15, 58, tzinfo=UTC)  # 23:58 in Xi'an
    async with serving(infra, ManualClock(before_midnight), business_hours="Mon-Sun 00:00-24:00") as hall:
        late = [await hall.issue("B001"), await hall.issue("B002")]
        hall.clock.advance(timedelta(minutes=3))  # 00:01 on the 26th: a new business day
        early = await hall.issue("B003")
        left_over = (await hall.client.get(f"/tickets/{late[0]['ticket_id']}", headers=KIOSK)).json()
        queues = {row["category"]: row for row in (await hall.client.get("/queues", headers=KIOSK)).json()}
        await hall.open("W11")
        called = (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).json()
        stats = (await hall.client.get("/stats/today", headers=OPS)).json()
        assert await hall.queue.close_earlier_days() == 2, "the watchdog ends yesterday's visits"
        assert await hall.queue.close_earlier_days() == 0
        closed = (await hall.client.get(f"/tickets/{late[1]['ticket_id']}", headers=KIOSK)).json()
        today = (await hall.client.get(f"/tickets/{early['ticket_id']}", headers=KIOSK)).json()
        hall.clock.advance(timedelta(days=1))  # the 27th: the 25th's number claims go, the 26th's stay
        await hall.queue.close_earlier_days()
        claimed = sorted({row["day"] async for row in hall.queue.store.db["numbers"].find()})
        assert claimed == ["2026-11-26"]
    assert (closed["status"], today["status"]) == ("cancelled", "called")
    assert [t["number"] for t in late] == ["B001", "B002"]
    assert (early["number"], early["position"], early["estimated_wait_s"]) == ("B001", 1, 0.0)
    assert (left_over["status"], left_over["position"]) == ("waiting", None), "yesterday's ticket has no place today"
    assert queues["B"]["waiting"] == 1
    assert called["ticket_id"] == early["ticket_id"], "yesterday's earlier tickets are not called first"
    assert (stats["day"], stats["issued"]) == ("2026-11-26", 1)


async def test_a_ticket_issued_while_an_earlier_number_is_still_being_written_gets_its_201(
    hall: Hall, infra: Any
) -> None:
    await hall.issue("B001")
    await hall.issue("B001")
    store = hall.queue.store
    next_number, add = store.next_number, store.tickets.add

    async def number_slowly(day: date, letter: str) -> int:
        number = await next_number(day, letter)
        if number == 3:  # B003 joins the line after B004 ...
            await asyncio.sleep(0.2)
        return number

    async def add_slowly(ticket: Ticket) -> Ticket:
        await asyncio.sleep(0.6 if ticket.number == "B003" else 0.3)  # ... and is written after B004 is
        return await add(ticket)

    store.next_number, store.tickets.add = number_slowly, add_slowly
    await wait_for(hall.app.state.kit.kafka_ready.is_set)
    async with TopicReader(infra.kafka_bootstrap, "queue.tickets") as reader:
        third, fourth = sorted(await asyncio.gather(hall.issue("B001"), hall.issue("B001")), key=lambda t: t["number"])
        assert (third["number"], fourth["number"]) == ("B003", "B004")

        def approaching(ticket: dict[str, Any]) -> int:
            return sum(1 for e in events_of(reader, ticket["ticket_id"]) if e["type"] == "ticket.approaching")

        await wait_for(lambda: approaching(third) == 1, 30)


async def test_a_number_still_being_claimed_at_midnight_survives_the_new_days_first_ticket(hall: Hall) -> None:
    store = hall.queue.store
    yesterday, today = date(2026, 11, 25), date(2026, 11, 26)
    assert await store.next_number(yesterday, "B") == 1
    for taken in (2, 3, 4):  # another instance was quicker with these
        await store.db["numbers"].insert_one(
            {"_id": f"2026-11-25:B:{taken}", "day": "2026-11-25", "letter": "B", "n": taken}
        )
    highest_number, looking, midnight_passed = store._highest_number, asyncio.Event(), asyncio.Event()

    async def highest_after_midnight(day: date, letter: str) -> int:
        if day == yesterday:  # the late request looks again for the highest while the new day begins
            looking.set()
            await midnight_passed.wait()
        return await highest_number(day, letter)

    store._highest_number = highest_after_midnight
    late = asyncio.create_task(store.next_number(yesterday, "B"))
    await looking.wait()
    assert await store.next_number(today, "B") == 1
    midnight_passed.set()
    assert await late == 5


async def test_closed_tickets_of_earlier_days_move_to_the_archive_and_can_still_be_looked_up(infra: Any) -> None:
    async with serving(infra, ManualClock(OPENING), business_hours="Mon-Sun 00:00-24:00") as hall:
        await wait_for(hall.app.state.kit.kafka_ready.is_set)
        served, left = await hall.issue("B001"), await hall.issue("B002")
        await hall.open("W11")
        called = (await hall.client.post("/windows/W11/call-next", headers=WINDOW)).json()
        assert called["ticket_id"] == served["ticket_id"]
        for step, body in (("start", None), ("complete", {"outcome": "done"})):
            answer = await hall.client.post(f"/tickets/{served['ticket_id']}/{step}", json=body, headers=WINDOW)
            assert answer.status_code == 200, answer.text
        hall.clock.advance(timedelta(days=1))
        today = await hall.issue("B003")
        db = hall.queue.store.db

        async def archived() -> set[str]:
            await hall.queue.close_earlier_days()  # the cancelled one moves once its event is out
            return {d["_id"] async for d in db["tickets_archive"].find({}, {"_id": 1})}

        assert await wait_for(lambda: len_is(archived, 2)) == {served["ticket_id"], left["ticket_id"]}
        working = {d["_id"] async for d in db["tickets"].find({}, {"_id": 1})}
        looked_up = (await hall.client.get(f"/tickets/{left['ticket_id']}", headers=KIOSK)).json()
        stats = (await hall.client.get("/stats/today", headers=OPS)).json()
    assert working == {today["ticket_id"]}, "the working collection holds today"
    assert (looked_up["number"], looked_up["status"]) == ("B002", "cancelled")
    assert stats["issued"] == 1


async def len_is(read: Any, n: int) -> Any:
    found = await read()
    return found if len(found) == n else None
