"""The parking service over real Kafka and the MongoDB-protocol server: the gate, visits and tickets,
the guards' rounds, incidents on parked cars."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from goldenkey.contracts import AssistanceCompleted, TicketIssued, TicketPaged, envelope_for
from goldenkey.kit import ManualClock
from goldenkey.kit.pii import plate_hash
from goldenkey.parking.app import Settings, build_app
from goldenkey.parking.domain import NOTIFY_WITHIN, Entry
from tests.support import RunningApp, TopicReader, on_the_test_stack, produce, unique, wait_for

pytestmark = pytest.mark.integration
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
GUARD = {"Authorization": "Bearer dev-guard"}
OPS = {"Authorization": "Bearer dev-ops"}
ADMIN = {"Authorization": "Bearer dev-admin"}
KIOSK = {"Authorization": "Bearer dev-kiosk"}
TOPICS = ("parking.vehicles", "parking.incidents")
PII_KEY = "goldenkey-dev-only-pii-key"  # the default the queue hashes plates with too


def lot_plan(lot_id: str, *, spaces: int = 50, reopen_free: int = 5) -> dict[str, Any]:
    return {
        "lot_id": lot_id,
        "name_zh": "测试停车场",
        "name_en": "Test car park",
        "default_zone": "A",
        "reopen_free": reopen_free,
        "zones": [
            {"zone_id": "A", "name_zh": "A区", "name_en": "Zone A", "spaces": spaces - 2},
            {"zone_id": "ACC", "name_zh": "无障碍", "name_en": "Accessible", "kind": "accessible", "spaces": 2},
        ],
    }


@dataclass
class Lot:
    client: httpx.AsyncClient
    app: Any
    clock: ManualClock
    lot_id: str

    @property
    def parking(self) -> Any:
        return self.app.state.parking

    async def post(self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] = GUARD) -> Any:
        return await self.client.post(path, json=body, headers=headers)

    async def get(self, path: str, headers: dict[str, str] = OPS, **params: Any) -> Any:
        answer = await self.client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def arrive(self, plate: str, **more: Any) -> dict[str, Any]:
        answer = await self.post("/vehicles/arrivals", {"plate": plate, **more})
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def depart(self, plate: str, **more: Any) -> dict[str, Any]:
        answer = await self.post("/vehicles/departures", {"plate": plate, **more})
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def report(self, **body: Any) -> dict[str, Any]:
        answer = await self.post("/incidents", {"guard_id": "g-1", **body})
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
async def lot(infra: Any, tmp_path: Path) -> AsyncIterator[Lot]:
    clock = ManualClock(OPENING)
    lot_id = unique("T").upper()
    plan = tmp_path / "lot.json"
    plan.write_text(json.dumps(lot_plan(lot_id)), encoding="utf-8")
    settings = Settings(
        **on_the_test_stack(
            infra,
            "parking",
            mongodb_timeout_ms=2000,
            watch_s=3600,  # the tests run the watchdog's sweep themselves, at the times they choose
            lot_file=plan,
        )
    )
    app = build_app(settings, clock=clock)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=60) as client:
        yield Lot(client, app, clock, lot_id)


def of(reader: TopicReader, event_type: str, **data: Any) -> list[dict[str, Any]]:
    return [
        e for e in reader.events() if e["type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
    ]


def plates(prefix: str, n: int) -> list[str]:
    """`n` distinct valid plates: 陕A + a letter of `prefix` + four digits."""
    return [f"陕A{prefix}{i:04d}" for i in range(n)]


def a_ticket(ticket_id: str, plate: str, at: datetime) -> bytes:
    return envelope_for(
        TicketIssued(
            ticket_id=ticket_id,
            number="B001",
            category="B",
            item_code="B001",
            channel="kiosk",
            plate_hash=plate_hash(PII_KEY, plate),
            issued_at=at,
        ),
        time=at,
    ).to_bytes()


async def _drained(kit: Any) -> bool:
    return bool(await kit.relay.pending() == 0)


# --- the gate ----------------------------------------------------------------------------------------


async def test_two_hundred_concurrent_arrivals_and_departures_leave_the_exact_count_and_one_event_per_crossing(
    lot: Lot, infra: Any
) -> None:
    cars = plates("K", 100)
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        arrivals = await asyncio.gather(*(lot.post("/vehicles/arrivals", {"plate": p}) for p in cars))
        assert sorted(a.status_code for a in arrivals) == [201] * 100
        occupancy = await lot.get("/occupancy")
        assert (occupancy["occupied"], occupancy["free"], occupancy["full"]) == (100, 0, True)

        departures = await asyncio.gather(*(lot.post("/vehicles/departures", {"plate": p}) for p in cars))
        assert sorted(d.status_code for d in departures) == [200] * 100
        assert all(d.json()["arrival_recorded"] for d in departures), "every departure matched its arrival"
        occupancy = await lot.get("/occupancy")
        assert (occupancy["occupied"], occupancy["full"]) == (0, False)

        await wait_for(
            lambda: len(of(reader, "vehicle.departed")) >= 100 and of(reader, "lot.available", lot_id=lot.lot_id), 60
        )
    full, available = of(reader, "lot.full", lot_id=lot.lot_id), of(reader, "lot.available", lot_id=lot.lot_id)
    assert len(full) == 1, "one lot.full for the one crossing up"
    assert full[0]["data"]["occupied"] == 50
    assert len(available) == 1, "one lot.available for the one crossing down"
    assert available[0]["data"]["occupied"] == 45, "available again once the margin of 5 is free"
    arrived = of(reader, "vehicle.arrived")
    assert len({e["data"]["visit_id"] for e in arrived if e["data"]["plate_masked"].startswith("陕A")}) >= 100
    assert sorted(e["data"]["occupied"] for e in arrived[-100:]) == list(range(1, 101)), "each arrival counted once"
    assert not any(p.encode() in r.value for r in reader.records for p in cars[:5]), "no raw plate on Kafka"


async def test_a_car_at_the_edge_does_not_flap_the_lot_between_full_and_available(lot: Lot, infra: Any) -> None:
    cars = plates("E", 51)
    for car in cars[:50]:
        await lot.arrive(car)
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        for _ in range(3):  # one leaves, another comes in: still full, nothing announced
            await lot.depart(cars[0])
            await lot.arrive(cars[0])
        await lot.depart(cars[1])
        fence = await lot.arrive(cars[50])
        await wait_for(lambda: of(reader, "vehicle.arrived", visit_id=fence["visit_id"]), 30)
    assert len(of(reader, "lot.full", lot_id=lot.lot_id)) == 1, "full once, when the 50th car came in"
    assert not of(reader, "lot.available", lot_id=lot.lot_id)
    assert (await lot.get("/occupancy"))["full"] is True


async def test_a_plate_arriving_again_closes_its_stale_visit_and_keeps_the_count(lot: Lot, infra: Any) -> None:
    first = await lot.arrive("陕A·S0001")
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        second = await lot.arrive("陕as0001", zone="ACC")
        closed = await wait_for(lambda: of(reader, "vehicle.departed", visit_id=first["visit_id"]), 30)
    assert closed[0]["data"]["unseen"] is True
    assert (await lot.get(f"/visits/{first['visit_id']}"))["status"] == "departed"
    occupancy = await lot.get("/occupancy")
    assert occupancy["occupied"] == 1
    assert {z["zone_id"]: z["occupied"] for z in occupancy["zones"]} == {"A": 0, "ACC": 1}
    assert second["plate"] == "陕AS0001", "a guard sees the plate as normalised"


async def test_a_departure_with_no_arrival_is_recorded_and_a_head_count_reconciles(lot: Lot, infra: Any) -> None:
    await lot.arrive("陕AH0001")
    await lot.arrive("陕AH0002")
    lot.clock.advance(timedelta(hours=11))  # a car the camera never saw leave: it has been in for hours
    unseen = await lot.depart("陕AH0009")
    assert unseen["arrival_recorded"] is False
    assert unseen["status"] == "departed"
    assert (await lot.get("/occupancy"))["occupied"] == 2, "a departure with no arrival takes nobody out"

    answer = await lot.post("/headcounts", {"guard_id": "g-2", "counted": 1})
    assert answer.status_code == 200, answer.text
    count = answer.json()
    assert (count["counted"], count["recorded"], count["difference"]) == (1, 2, -1)
    assert count["occupancy"]["occupied"] == 1
    assert {v["plate"] for v in count["long_stays"]} == {"陕AH0001", "陕AH0002"}
    assert [v["visit_id"] for v in count["departures_without_arrival"]] == [unseen["visit_id"]]

    ops_view = await lot.get(f"/visits/{unseen['visit_id']}")
    assert ops_view["plate"] is None, "ops see plates masked"
    assert ops_view["plate_masked"] == "陕A***09"


async def test_a_guard_corrects_a_misread_plate_and_the_car_leaves_under_it(lot: Lot, infra: Any) -> None:
    misread = await lot.arrive("陕AC0008")
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        answer = await lot.post(f"/visits/{misread['visit_id']}/plate", {"plate": "陕AC0003", "guard_id": "g-1"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["plate"] == "陕AC0003"
        left = await lot.depart("陕AC0003")
        corrected = await wait_for(lambda: of(reader, "vehicle.plate_corrected", visit_id=misread["visit_id"]), 30)
    assert left["visit_id"] == misread["visit_id"], "the corrected plate's departure closes the visit"
    assert corrected[0]["data"]["previous_plate_masked"] == "陕A***08"
    assert corrected[0]["data"]["plate_hash"] == plate_hash(PII_KEY, "陕AC0003")
    assert (await lot.get("/occupancy"))["occupied"] == 0


async def test_bad_input_gets_a_clear_4xx_and_publishes_nothing(lot: Lot, infra: Any) -> None:
    kit = lot.app.state.kit
    await wait_for(lambda: kit.kafka_ready.is_set(), 60)
    await wait_for(lambda: _drained(kit), 60)  # what the watchdog's first round at start published
    cases = [
        ("/vehicles/arrivals", {"plate": "陕AI2345"}, GUARD, 422, "I and O"),
        ("/vehicles/arrivals", {"plate": "A12345"}, GUARD, 422, "province"),
        ("/vehicles/arrivals", {"plate": "陕A12345", "zone": "Z"}, GUARD, 422, "no zone"),
        ("/vehicles/arrivals", {"plate": "陕A12345", "source": "drone"}, GUARD, 422, "camera"),
        ("/vehicles/arrivals", {"plate": "陕A12345"}, KIOSK, 403, "role"),
        ("/vehicles/departures", {"plate": "陕A1234"}, GUARD, 422, "7"),
        ("/incidents", {"kind": "flat_tyre", "guard_id": "g-1"}, GUARD, 422, "plate"),
        ("/incidents", {"kind": "flat_tyre", "guard_id": "g-1", "space": "A-999"}, GUARD, 422, "no space"),
        ("/incidents", {"kind": "fire", "guard_id": "g-1", "space": "A-1"}, GUARD, 422, "flat_tyre"),
        ("/headcounts", {"guard_id": "g-1", "counted": -1}, GUARD, 422, "greater than or equal"),
        ("/patrols", {"guard_id": "g-1", "round_id": "R9999"}, GUARD, 422, "no round"),
    ]
    for path, body, headers, code, words in cases:
        answer = await lot.post(path, body, headers)
        assert answer.status_code == code, (path, body, answer.text)
        assert words in answer.text, (path, body, answer.text)
    assert (await lot.get("/occupancy"))["occupied"] == 0
    assert await lot.get("/incidents") == []
    assert await kit.relay.pending() == 0, "nothing went to the outbox"

    incident = await lot.report(kind="lights_on", space="A-7")
    resolved = await lot.post(
        f"/incidents/{incident['incident_id']}/resolve", {"resolution": "owner came", "guard_id": "g-1"}
    )
    assert resolved.status_code == 200, resolved.text
    again = await lot.post(f"/incidents/{incident['incident_id']}/acknowledge", {"guard_id": "g-1"})
    assert again.status_code == 409
    assert "is resolved" in again.json()["detail"], "an illegal step names the state"
    assert (await lot.post("/incidents/nope/resolve", {"resolution": "x"})).status_code == 404


# --- tickets, incidents and their lifecycle -----------------------------------------------------------


async def test_a_ticket_with_the_plate_links_the_visit_before_or_after_the_arrival(lot: Lot, infra: Any) -> None:
    early, late = unique("t-early-"), unique("t-late-")
    await produce(infra.kafka_bootstrap, "queue.tickets", a_ticket(early, "陕AT0001", OPENING), early.encode())
    await wait_for(lambda: lot.parking.store.plate_tickets.get(early), 60)
    first = await lot.arrive("陕AT0001")
    assert first["ticket_id"] == early, "a car arriving after its owner's ticket is linked at once"

    second = await lot.arrive("陕AT0002")
    assert second["ticket_id"] is None
    await produce(infra.kafka_bootstrap, "queue.tickets", a_ticket(late, "陕AT0002", OPENING), late.encode())

    async def linked() -> bool:
        return (await lot.get(f"/visits/{second['visit_id']}"))["ticket_id"] == late

    await wait_for(linked, 60)
    async with TopicReader(infra.kafka_bootstrap, "parking.incidents") as reader:
        incident = await lot.report(kind="flat_tyre", plate="陕AT0002", space="A-3")
        alert = await wait_for(lambda: of(reader, "tyre.alert", incident_id=incident["incident_id"]), 30)
    assert incident["ticket_id"] == late, "an incident on the car names its owner's ticket"
    assert alert[0]["data"]["ticket_id"] == late
    assert alert[0]["data"]["plate_hash"] == plate_hash(PII_KEY, "陕AT0002")
    assert alert[0]["correlationid"] == late, "the incident belongs to the owner's visit"
    assert "陕AT0002" not in json.dumps(alert[0], ensure_ascii=False)

    again = await lot.post("/incidents", {"kind": "flat_tyre", "plate": "陕at 0002", "guard_id": "g-7"})
    assert again.status_code == 200, "the same open problem is not reported twice"
    assert again.json()["incident_id"] == incident["incident_id"]


async def test_a_redelivered_page_or_completed_help_changes_nothing(lot: Lot, infra: Any) -> None:
    incident = await lot.report(kind="flat_tyre", plate="陕AR0001")
    incident_id = incident["incident_id"]
    lot.clock.advance(timedelta(seconds=90))
    page = envelope_for(
        TicketPaged(ticket_id="t-owner", message="您的车胎亏气", window_id="W09", incident_id=incident_id),
        time=lot.clock.now(),
    )
    help_done = envelope_for(
        AssistanceCompleted(assistance_id="a-1", kind="vehicle_help", incident_id=incident_id, note="spare fitted"),
        time=lot.clock.now(),
    )
    async with TopicReader(infra.kafka_bootstrap, "parking.incidents") as reader:
        for _ in range(2):
            await produce(infra.kafka_bootstrap, "queue.tickets", page.to_bytes(), b"t-owner")
        notified = await wait_for(lambda: of(reader, "owner.notified", incident_id=incident_id), 60)
        after_page = await lot.parking.store.incidents.require(incident_id)
        for _ in range(2):
            await produce(infra.kafka_bootstrap, "concierge.assistance", help_done.to_bytes(), b"a-1")
        resolved = await wait_for(lambda: of(reader, "incident.resolved", incident_id=incident_id), 60)
        fence = await lot.report(kind="other", space="A-2")
        await produce(infra.kafka_bootstrap, "concierge.assistance", help_done.to_bytes(), b"a-1")
        await produce(infra.kafka_bootstrap, "queue.tickets", page.to_bytes(), b"t-owner")
        fence_page = envelope_for(
            TicketPaged(ticket_id="t-x", message="x", incident_id=fence["incident_id"]), time=lot.clock.now()
        )
        await produce(infra.kafka_bootstrap, "queue.tickets", fence_page.to_bytes(), b"t-x")
        await wait_for(lambda: of(reader, "owner.notified", incident_id=fence["incident_id"]), 60)
    assert len(of(reader, "owner.notified", incident_id=incident_id)) == 1
    assert len(of(reader, "incident.resolved", incident_id=incident_id)) == 1
    assert notified[0]["data"]["notify_s"] == 90
    assert notified[0]["data"]["window_id"] == "W09"
    assert after_page.status == "owner_notified"
    final = await lot.get(f"/incidents/{incident_id}")
    assert final["status"] == "resolved"
    assert final["assistance_id"] == "a-1"
    assert "spare fitted" in final["resolution"]
    assert resolved[0]["data"]["resolve_s"] == 90
    assert resolved[0]["causationid"] == help_done.id
    stored = await lot.parking.store.incidents.require(incident_id)
    assert stored.version == after_page.version + 1, "each redelivery changed nothing"
    metrics = (await lot.client.get("/metrics")).text
    assert 'goldenkey_incident_notify_seconds_count{kind="flat_tyre"} 1.0' in metrics
    assert 'goldenkey_incident_resolve_seconds_count{kind="flat_tyre"} 1.0' in metrics


async def test_an_owner_not_notified_within_five_minutes_is_escalated_to_ops_once(lot: Lot, infra: Any) -> None:
    async with TopicReader(infra.kafka_bootstrap, "parking.incidents") as reader:
        incident = await lot.report(kind="window_open", plate="陕AW0001", note="rear left window down")
        lot.clock.advance(NOTIFY_WITHIN - timedelta(seconds=1))
        await lot.parking.sweep()
        assert (await lot.get(f"/incidents/{incident['incident_id']}"))["status"] == "reported"
        metrics = (await lot.client.get("/metrics")).text
        assert "goldenkey_incident_unnotified_oldest_seconds 299.0" in metrics
        lot.clock.advance(timedelta(seconds=1))
        await lot.parking.sweep()
        await lot.parking.sweep()
        escalated = await wait_for(lambda: of(reader, "incident.escalated", incident_id=incident["incident_id"]), 30)
        listed = await lot.get("/incidents", status="escalated")
        assert [i["incident_id"] for i in listed] == [incident["incident_id"]]
        taken = await lot.post(f"/incidents/{incident['incident_id']}/acknowledge", {"note": "calling"}, OPS)
        assert taken.status_code == 200, taken.text
        acknowledged = await wait_for(
            lambda: of(reader, "incident.acknowledged", incident_id=incident["incident_id"]), 30
        )
    assert len(escalated) == 1
    assert escalated[0]["data"]["reason"] == "no_ticket"
    assert escalated[0]["data"]["waited_s"] == 300
    assert acknowledged[0]["data"]["by_ops"] is True
    assert "goldenkey_incident_unnotified_oldest_seconds 0.0" in (await lot.client.get("/metrics")).text


# --- patrol rounds -----------------------------------------------------------------------------------


async def test_a_round_not_started_in_time_is_missed_and_a_finished_round_names_what_was_not_scanned(
    lot: Lot, infra: Any
) -> None:
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        await lot.parking.sweep()  # 09:30: the 09:00 round was never started
        lot.clock.set(datetime(2026, 11, 25, 1, 57, tzinfo=UTC))  # 09:57: the 10:00 round is due
        answer = await lot.post("/patrols", {"guard_id": "g-3"})
        assert answer.status_code == 201, answer.text
        patrol = answer.json()
        assert (patrol["round_id"], patrol["state"], patrol["late"]) == ("R1000", "in_progress", False)
        for checkpoint in ["GATE", "A-NORTH", "EV", "GATE"]:
            scanned = await lot.post(f"/patrols/{patrol['patrol_id']}/checkpoints", {"checkpoint_id": checkpoint})
            assert scanned.status_code == 200, scanned.text
        wrong = await lot.post(f"/patrols/{patrol['patrol_id']}/checkpoints", {"checkpoint_id": "ROOF"})
        assert wrong.status_code == 422
        finished = await lot.post(f"/patrols/{patrol['patrol_id']}/finish")
        assert finished.status_code == 200, finished.text
        completed = await wait_for(lambda: of(reader, "patrol.completed", patrol_id=patrol["patrol_id"]), 30)
        await wait_for(lambda: of(reader, "patrol.missed", patrol_id="2026-11-25-R0900"), 30)
        await lot.parking.sweep()
    assert finished.json()["missing"] == ["A-SOUTH", "ACC", "B-RAMP", "B-WEST", "B-EAST", "EXIT"]
    assert completed[0]["data"]["complete"] is False
    assert completed[0]["data"]["missing_checkpoints"] == finished.json()["missing"]
    assert completed[0]["data"]["checkpoints_scanned"] == ["GATE", "A-NORTH", "EV"]
    missed = await lot.parking.store.patrols.require("2026-11-25-R0900")
    assert (missed.status, missed.seq) == ("missed", 1), "missed once, however many sweeps"
    day = await lot.get("/patrols", headers=GUARD, day="2026-11-25")
    states = {r["round_id"]: r["state"] for r in day}
    assert states["R0900"] == "missed"
    assert states["R1000"] == "incomplete"
    assert states["R1100"] == "planned"
    assert (await lot.post(f"/patrols/{patrol['patrol_id']}/finish")).status_code == 409
    assert 'goldenkey_patrol_rounds{state="missed"} 1.0' in (await lot.client.get("/metrics")).text


# --- crashes -----------------------------------------------------------------------------------------


async def test_a_car_counted_but_whose_visit_a_crash_left_unwritten_gets_its_visit(lot: Lot, infra: Any) -> None:
    store = lot.parking.store
    visit_id = unique("v-crashed-")
    hash_ = plate_hash(PII_KEY, "陕AM0001")

    def counted_only(counting: Any) -> None:  # the arrival's first write, and then the process died
        counting.enter(
            hash_, Entry(visit_id=visit_id, zone="A", since=lot.clock.now(), plate="陕AM0001"), lot.clock.now()
        )

    await store.lots.update(lot.lot_id, counted_only)
    await lot.parking.sweep()
    assert await store.visits.get(visit_id) is None, "not mended while the arrival may still be writing it"
    lot.clock.advance(timedelta(minutes=2))
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        await lot.parking.sweep()
        visit = await store.visits.require(visit_id)
        assert (visit.status, visit.plate) == ("inside", "陕AM0001")
        left = await lot.depart("陕AM0001")
        await wait_for(lambda: of(reader, "vehicle.departed", visit_id=visit_id), 30)
    assert left["visit_id"] == visit_id
    assert len(of(reader, "vehicle.arrived", visit_id=visit_id)) == 1, "the mended visit announced its arrival"


# --- who may do what ---------------------------------------------------------------------------------


async def test_kiosks_and_windows_have_no_business_in_the_car_park(lot: Lot) -> None:
    window = {"Authorization": "Bearer dev-window"}
    routes = [
        (method, path)
        for path, operations in lot.app.openapi()["paths"].items()
        for method in operations
        if not path.startswith(("/health", "/asyncapi", "/docs", "/openapi"))
    ]
    assert len(routes) >= 18
    for method, template in routes:
        path = template.replace("{", "x").replace("}", "")
        for headers in (KIOSK, window):
            answer = await lot.client.request(method.upper(), path, headers=headers, json={})
            assert answer.status_code == 403, (method, template, answer.status_code)
    ops_arrival = await lot.post("/vehicles/arrivals", {"plate": "陕A12345"}, OPS)
    assert ops_arrival.status_code == 403, "ops read the car park, guards work it"
    guard_edit = await lot.client.put("/lot", json=lot_plan(lot.lot_id), headers=GUARD)
    assert guard_edit.status_code == 403, "only admin edits the lot"


async def test_an_admin_edits_the_lot_and_the_schedule(lot: Lot, infra: Any) -> None:
    for car in plates("P", 10):
        await lot.arrive(car)
    async with TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader:
        smaller = lot_plan(lot.lot_id, spaces=10, reopen_free=2)
        answer = await lot.client.put("/lot", json=smaller, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["capacity"], answer.json()["full"]) == (10, True)
        full = await wait_for(lambda: of(reader, "lot.full", lot_id=lot.lot_id), 30)
    assert full[0]["data"] == {"lot_id": lot.lot_id, "capacity": 10, "occupied": 10}
    renamed = await lot.client.put("/lot", json=lot_plan("ELSEWHERE"), headers=ADMIN)
    assert renamed.status_code == 422
    assert "cannot be renamed" in renamed.text

    schedule = await lot.get("/patrols/schedule")
    schedule["rounds"] = [{"round_id": "R0945", "at": "09:45", "checkpoints": ["GATE", "EXIT"]}]
    edited = await lot.client.put("/patrols/schedule", json=schedule, headers=ADMIN)
    assert edited.status_code == 200, edited.text
    bad = {**schedule, "rounds": [{"round_id": "R1", "at": "25:00"}]}
    assert (await lot.client.put("/patrols/schedule", json=bad, headers=ADMIN)).status_code == 422
    unknown = {**schedule, "rounds": [{"round_id": "R1", "at": "10:00", "checkpoints": ["ROOF"]}]}
    refused = await lot.client.put("/patrols/schedule", json=unknown, headers=ADMIN)
    assert refused.status_code == 422
    assert "ROOF" in refused.text
    day = await lot.get("/patrols", day="2026-11-25")
    assert [(r["round_id"], r["route"]) for r in day if r["round_id"] == "R0945"] == [("R0945", ["GATE", "EXIT"])]
    started = await lot.post("/patrols", {"guard_id": "g-1"})
    assert started.json()["round_id"] == "R0945", "09:30 is within 15 minutes of the 09:45 round"


async def test_two_instances_sharing_the_lot_count_every_car_once(lot: Lot, infra: Any) -> None:
    twin_settings = lot.app.state.kit.settings.model_copy(update={"http_port": 0})
    twin = build_app(twin_settings, clock=lot.clock)
    cars = plates("W", 60)
    async with (
        TopicReader(infra.kafka_bootstrap, "parking.vehicles") as reader,
        RunningApp(twin) as running,
        httpx.AsyncClient(base_url=running.url, timeout=60) as other,
    ):
        clients = [lot.client, other]
        answers = await asyncio.gather(
            *(
                clients[i % 2].post("/vehicles/arrivals", json={"plate": car}, headers=GUARD)
                for i, car in enumerate(cars)
            )
        )
        assert sorted(a.status_code for a in answers) == [201] * 60
        departures = await asyncio.gather(
            *(
                clients[i % 2].post("/vehicles/departures", json={"plate": car}, headers=GUARD)
                for i, car in enumerate(cars[:20])
            )
        )
        assert all(d.json()["arrival_recorded"] for d in departures)
        for client in clients:
            answer = await client.get("/occupancy", headers=OPS)
            assert answer.json()["occupied"] == 40, "both instances see the one count"
        await wait_for(lambda: of(reader, "lot.full", lot_id=lot.lot_id), 30)
        left = {d.json()["visit_id"] for d in departures}
        await wait_for(lambda: left <= {e["subject"] for e in of(reader, "vehicle.departed")}, 30)
        await wait_for(lambda: of(reader, "lot.available", lot_id=lot.lot_id), 30)
    assert len(of(reader, "lot.full", lot_id=lot.lot_id)) == 1
    assert len(of(reader, "lot.available", lot_id=lot.lot_id)) == 1, "40 cars in 50 spaces: the margin is free"
