"""Plays a day at the hall through the services' real HTTP APIs, as its devices would: the ticket
kiosk, the 58 window terminals, the concierge desk, the guards' handsets and the gate camera, the
rating devices and the message-book kiosk, and the ops desk working complaint cases.

Every actor waits on the shared simulated clock (`Hall.until`), so the services' own rules — lunch
in turns, the 3-minute accept rule, 5-minute escalations, patrol slots, deadlines — fire as in a
real day. What each command did is kept in the `DayRecord`, for the report and the books.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time as real_time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from goldenkey.demo.model import DayPlan, PlannedVisitor
from goldenkey.demo.record import AssistanceRecord, DayRecord, IncidentRecord, Snapshot, Visit
from goldenkey.kit.clock import SimulatedClock

TOKENS = {role: {"Authorization": f"Bearer dev-{role}"} for role in ("kiosk", "window", "concierge", "guard", "ops")}
SNAPSHOT_EVERY = timedelta(minutes=5)
RESTOCK_EVERY = timedelta(minutes=5)
IN_PROGRESS = "a request with this Idempotency-Key is in progress"
"""The kit's 409 to a retry that arrives while the first attempt runs (goldenkey.kit.http)."""
CONNECTIONS = 128
"""Requests in flight at once, over as many connections (the hall's devices, pooled)."""
IDLE_POLL = timedelta(minutes=5)
"""How long an idle window terminal waits at most before calling again (simulated), unless told
that someone joined a line it serves."""


@dataclass
class Services:
    queue: str
    concierge: str
    parking: str
    feedback: str


@dataclass
class Tally:
    """What the simulator did: the other side of the books."""

    commands: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    """Requests sent again after no answer or a 503, by route and why."""
    latencies: list[float] = field(default_factory=list)
    """Each request's real seconds, from sending to its answer: whether the stack kept up."""
    queued: list[float] = field(default_factory=list)
    """Each request's real seconds waiting for one of the devices' `CONNECTIONS` first."""
    lags: list[float] = field(default_factory=list)
    """How late the simulator's own event loop woke up, in real seconds, sampled every 0.1 s."""
    """Answers the rules gave that the simulator expected: a lunch refused, a rating twice…"""
    failures: list[str] = field(default_factory=list)
    """Answers nobody expected (a 5xx, a 422 on good input): each one unbalances the books."""


class Hall:
    def __init__(self, services: Services, plan: DayPlan, clock: SimulatedClock, record: DayRecord) -> None:
        self.services = services
        self.plan = plan
        self.clock = clock
        self.record = record
        self.tally = Tally()
        self.rng = random.Random(plan.seed * 7919 + 1)
        # Idle connections are dropped before uvicorn's keep-alive (5 s) closes them under a request.
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60, pool=None),  # a busy hall queues its devices' requests; none is dropped
            limits=httpx.Limits(max_connections=CONNECTIONS, keepalive_expiry=2),
        )
        # Requests wait here, not in httpx's pool, whose queue costs time quadratic in its length.
        self._in_flight = asyncio.Semaphore(CONNECTIONS)
        self.visits: dict[str, Visit] = {}
        self.by_index: dict[int, Visit] = {}
        self.planned: dict[str, PlannedVisitor] = {}
        self.slips: dict[str, str] = {}
        """ticket id → the code on its slip: a kiosk asks for it to cancel or rejoin the ticket"""
        self.assistance: dict[str, AssistanceRecord] = {}
        self.incidents: dict[str, IncidentRecord] = {}
        self.windows: dict[str, list[str]] = {}
        self.closing = asyncio.Event()
        self.kiosk_done = asyncio.Event()
        self.loans: dict[str, list[tuple[str, str]]] = {}
        """ticket id → (loan id, how it ends) of what the visitor borrowed"""
        self.dispensed: Counter[str] = Counter()
        self.restocked: Counter[str] = Counter()
        self._errands: set[asyncio.Task[None]] = set()
        self.woken: dict[str, asyncio.Event] = {}
        self.plan_scale = service_scale(plan, windows=58)
        self._last_snapshot = (real_time.monotonic(), 0)

    # --- time and HTTP -----------------------------------------------------------------------------

    async def until(self, at: datetime) -> None:
        """Wait for the simulated instant `at`."""
        while (left := (at - self.clock.now()).total_seconds()) > 0:  # noqa: ASYNC110 (a clock, not an event)
            await asyncio.sleep(min(left / self.clock.speed, 1.0))

    async def pause(self, delta: timedelta) -> None:
        await self.until(self.clock.now() + delta)

    async def send(self, method: str, url: str, **options: Any) -> httpx.Response:
        asked = real_time.monotonic()
        async with self._in_flight:
            began = real_time.monotonic()
            self.tally.queued.append(began - asked)
            try:
                return await self.http.request(method, url, **options)
            finally:
                self.tally.latencies.append(real_time.monotonic() - began)

    async def call(
        self, method: str, service: str, path: str, role: str, body: Any = None, expect: tuple[int, ...] = (200, 201)
    ) -> httpx.Response:
        """One command or query; an answer outside `expect` (and not a 409 the caller handles) is
        a failure of the books."""
        url = getattr(self.services, service) + path
        headers = dict(TOKENS[role])
        if method == "POST":  # a retry after a lost answer gets the first answer, not a second command
            headers["Idempotency-Key"] = uuid.uuid4().hex
        name = f"{method} {service}{_template(path)}"
        attempt = 0
        while True:
            try:
                answer = await self.send(method, url, json=body, headers=headers)
            except httpx.TransportError as error:
                if attempt == 4:
                    self.tally.failures.append(f"{method} {service}{path}: {error!r}")
                    raise
                self.tally.retried[f"{name} ({type(error).__name__})"] += 1
                await asyncio.sleep(0.2 * 2**attempt)
                attempt += 1
                continue
            if answer.status_code == 503 and attempt < 4:
                self.tally.retried[f"{name} (503 {answer.text[:80]})"] += 1
                await asyncio.sleep(0.2 * 2**attempt)
                attempt += 1
                continue
            if answer.status_code == 409 and IN_PROGRESS in answer.text:
                # A retry met its own first attempt still running (its answer was lost to us, not
                # to the service): wait for that answer rather than take it for a refusal, or a
                # window's lost call-next leaves its citizen called and never served.
                self.tally.retried[f"{name} (first attempt still running)"] += 1
                await asyncio.sleep(0.2)
                continue
            if answer.status_code in expect:
                self.tally.commands[name] += method != "GET"
            elif answer.status_code == 409:
                self.tally.refused[name] += 1
            else:
                self.tally.failures.append(f"{name} → {answer.status_code}: {answer.text[:200]}")
            return answer

    # --- the day -----------------------------------------------------------------------------------

    async def play(self, progress: Callable[[Hall], Awaitable[None]] | None = None) -> None:
        """From opening to the last visitor served, then the evening's reckoning."""
        await self.open_hall()
        actors = [
            self.kiosk(),
            *(self.window(window_id) for window_id in self.windows),
            self.concierge_desk(),
            self.patrols(),
            self.guards(),
            self.message_book(),
            self.ops_desk(),
            self.snapshots(),
        ]
        tasks = [asyncio.create_task(self._guarded(actor)) for actor in actors]
        tasks.append(asyncio.create_task(self._watch_lag()))
        if progress is not None:
            tasks.append(asyncio.create_task(_repeat(lambda: progress(self), 0.5)))
        await self.kiosk_done.wait()
        await self.until(self.plan.closes_at)
        await self._everyone_served()
        self.closing.set()
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.errands_done()
        await self.close_hall()
        self.record.finished_at = self.clock.now()
        self.record.visits = list(self.visits.values())
        self.record.assistance = list(self.assistance.values())
        self.record.incidents = list(self.incidents.values())

    async def _watch_lag(self, every_s: float = 0.1) -> None:
        """The simulator's own delay: at ×100 a tenth of a second late is ten simulated seconds."""
        while True:
            asked = real_time.monotonic()
            await asyncio.sleep(every_s)
            self.tally.lags.append(real_time.monotonic() - asked - every_s)

    async def _guarded(self, actor: Awaitable[None]) -> None:
        """An actor that fails is a failure of the books, never a silent stop."""
        try:
            await actor
        except asyncio.CancelledError:
            raise
        except Exception as error:  # counted, and shown in the books; the day goes on
            self.tally.failures.append(f"an actor stopped: {error!r}")

    async def open_hall(self) -> None:
        for window in (await self.call("GET", "queue", "/windows", "ops")).json():
            self.windows[window["window_id"]] = window["categories"]
        await self.until(self.plan.opens_at - timedelta(minutes=5))
        await asyncio.gather(
            *(self.call("POST", "queue", f"/windows/{w}/open", "window", {"staff_id": f"S-{w}"}) for w in self.windows)
        )

    async def close_hall(self) -> None:
        await asyncio.gather(*(self.call("POST", "queue", f"/windows/{w}/close", "window") for w in self.windows))

    async def _everyone_served(self) -> None:
        """Windows keep serving after closing until every ticket taken before it is dealt with
        (three hours at most: then what is left is cancelled, and shows in the books)."""
        give_up = self.plan.closes_at + timedelta(hours=3)
        while any(v.outcome is None for v in self.visits.values()) and self.clock.now() < give_up:
            await self.pause(timedelta(minutes=1))
        left = [visit for visit in self.visits.values() if visit.outcome is None]
        await asyncio.gather(
            *(
                self.call("POST", "queue", f"/tickets/{v.ticket_id}/cancel", "kiosk", self.slip(v.ticket_id))
                for v in left
            )
        )
        for visit in left:
            visit.outcome, visit.finished_at = "cancelled", self.clock.now()

    # --- the ticket kiosk and the gate -------------------------------------------------------------

    async def kiosk(self) -> None:
        arrivals = []
        for visitor in self.plan.visitors:
            await self.until(visitor.arrives_at)
            arrivals.append(asyncio.ensure_future(self.arrive(visitor)))
        await asyncio.gather(*arrivals)
        self.kiosk_done.set()

    async def arrive(self, visitor: PlannedVisitor) -> None:
        if visitor.plate:
            await self.call("POST", "parking", "/vehicles/arrivals", "guard", {"plate": visitor.plate})
        body: dict[str, Any] = {"item_code": visitor.item_code, "channel": "kiosk", "needs": list(visitor.needs)}
        if visitor.priority:
            body["priority"] = visitor.priority
        if visitor.plate:
            body["plate"] = visitor.plate
        answer = await self.call("POST", "queue", "/tickets", "kiosk", body, expect=(201,))
        if answer.status_code != 201:
            return
        ticket = answer.json()
        self.slips[ticket["ticket_id"]] = ticket["slip_code"]
        visit = Visit(
            ticket_id=ticket["ticket_id"],
            number=ticket["number"],
            category=ticket["category"],
            item_code=visitor.item_code,
            priority=visitor.priority,
            needs=list(visitor.needs),
            by_car=visitor.plate is not None,
            issued_at=self.clock.now(),
        )
        self.visits[visit.ticket_id] = visit
        self.by_index[visitor.index] = visit
        self.someone_joined(visit.category)
        self.planned[visit.ticket_id] = visitor
        if visitor.borrows:
            body = {"sku": visitor.borrows, "ticket_id": visit.ticket_id}
            lent = await self.call("POST", "concierge", "/loans", "concierge", body, expect=(201,))
            if lent.status_code == 201:
                self.loans.setdefault(visit.ticket_id, []).append((lent.json()["loan_id"], visitor.loan_end))
        for sku, qty in visitor.takes:
            body = {"sku": sku, "qty": qty, "ticket_id": visit.ticket_id}
            if (
                await self.call("POST", "concierge", "/dispensations", "concierge", body, expect=(201,))
            ).status_code == 201:
                self.dispensed[sku] += qty

    def slip(self, ticket_id: str) -> dict[str, str]:
        """What a citizen shows the kiosk of their ticket: the code on its slip (docs/access.md)."""
        return {"slip_code": self.slips[ticket_id]}

    def errand(self, job: Awaitable[None]) -> None:
        """Something a visitor or a member of staff does on the side (kept, so it is not lost)."""
        task = asyncio.ensure_future(self._guarded(job))
        self._errands.add(task)
        task.add_done_callback(self._errands.discard)

    async def errands_done(self, within: timedelta = timedelta(hours=2)) -> None:
        """Wait for what is still going on (ratings, cars leaving, incidents), two simulated hours
        at most; what is left then is cut off, and the books show it."""
        give_up = self.clock.now() + within
        while self._errands and self.clock.now() < give_up:
            await asyncio.wait(list(self._errands), timeout=1.0)
        for task in list(self._errands):
            self.tally.failures.append("an errand was still going at the end of the evening")
            task.cancel()

    # --- the windows -------------------------------------------------------------------------------

    async def window(self, window_id: str) -> None:
        lunch = next((planned for planned in self.plan.lunches if planned.window_id == window_id), None)
        had_lunch = False
        while not self.closing.is_set():
            if lunch and not had_lunch and self.clock.now() >= lunch.asks_at:
                paused = await self.call("POST", "queue", f"/windows/{window_id}/pause", "window", {"reason": "lunch"})
                if paused.status_code == 200:
                    await self.pause(timedelta(minutes=lunch.minutes))
                    await self.call("POST", "queue", f"/windows/{window_id}/resume", "window")
                    had_lunch = True
                else:  # "lunch in turns": someone else is away; ask again in ten minutes
                    lunch = type(lunch)(lunch.window_id, self.clock.now() + timedelta(minutes=10), lunch.minutes)
            called = await self.call("POST", "queue", f"/windows/{window_id}/call-next", "window", expect=(200, 204))
            if called.status_code != 200:
                await self.wait_for_someone(window_id)
                continue
            await self.serve(window_id, called.json())

    async def wait_for_someone(self, window_id: str) -> None:
        """An idle window waits until a ticket joins a line it serves (the kiosk, a transfer or a
        rejoin says so), or `IDLE_POLL` at most: polling 58 windows would swamp the hall."""
        woken = self.woken.setdefault(window_id, asyncio.Event())
        woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), IDLE_POLL.total_seconds() / self.clock.speed)

    def someone_joined(self, category: str) -> None:
        for window_id, serves in self.windows.items():
            if category in serves and window_id in self.woken:
                self.woken[window_id].set()

    async def serve(self, window_id: str, ticket: dict[str, Any]) -> None:
        ticket_id = ticket["ticket_id"]
        visit, visitor = self.visits.get(ticket_id), self.planned.get(ticket_id)
        if visit is None or visitor is None:  # not ours (an earlier run's): send it on its way
            await self.call("POST", "queue", f"/tickets/{ticket_id}/cancel", "window")
            return
        visit.called_at, visit.window_id = visit.called_at or self.clock.now(), window_id
        if visitor.no_show and not visit.rejoined:
            for _ in range(2):
                await self.pause(timedelta(minutes=1))
                await self.call("POST", "queue", f"/tickets/{ticket_id}/recall", "window")
            await self.pause(timedelta(minutes=1))
            await self.call("POST", "queue", f"/tickets/{ticket_id}/no-show", "window")
            if visitor.rejoins:
                visit.rejoined = True
                self.errand(self._rejoin(ticket_id))
            else:
                visit.outcome, visit.finished_at = "no_show", self.clock.now()
                await self._leave(visit, visitor)
            return
        await self.pause(timedelta(seconds=self.rng.uniform(20, 60)))  # walking up to the window
        await self.call("POST", "queue", f"/tickets/{ticket_id}/start", "window", {"staff_id": f"S-{window_id}"})
        visit.started_at = self.clock.now()
        await self.pause(timedelta(minutes=visitor.service_minutes * self.plan_scale))
        if visitor.transfer_to and not visit.transferred:
            visit.transferred = True
            await self.call(
                "POST", "queue", f"/tickets/{ticket_id}/transfer", "window", {"category": visitor.transfer_to}
            )
            self.someone_joined(visitor.transfer_to)
            return
        done = await self.call(
            "POST", "queue", f"/tickets/{ticket_id}/complete", "window", {"outcome": visitor.outcome}
        )
        visit.finished_at, visit.outcome = self.clock.now(), visitor.outcome
        if done.status_code == 200:
            visit.wait_s = done.json().get("wait_s")
            visit.service_s = done.json().get("service_s")
        self.errand(self._after_visit(visit, visitor))

    async def _rejoin(self, ticket_id: str) -> None:
        await self.pause(timedelta(minutes=self.rng.uniform(2, 8)))
        await self.call("POST", "queue", f"/tickets/{ticket_id}/rejoin", "kiosk", self.slip(ticket_id))
        visit = self.visits.get(ticket_id)
        if visit is not None:
            self.someone_joined(visit.category)

    async def _after_visit(self, visit: Visit, visitor: PlannedVisitor) -> None:
        if visitor.rating is not None:
            await self._rate(visit, visitor)
        await self._leave(visit, visitor)

    async def _rate(self, visit: Visit, visitor: PlannedVisitor) -> None:
        await self.pause(timedelta(seconds=self.rng.uniform(10, 40)))  # stepping over to the rating device
        nap = 0.05
        for _ in range(60):  # the invitation follows ticket.completed over Kafka
            answer = await self.call("GET", "feedback", f"/invitations/{visit.ticket_id}", "window", expect=(200, 404))
            if answer.status_code == 200:
                break
            await asyncio.sleep(nap)
            nap = min(nap * 2, 1.0)
        body: dict[str, Any] = {"subject_type": "ticket", "subject_id": visit.ticket_id, "score": visitor.rating}
        if visitor.rating_contact:
            body["contact"] = visitor.rating_contact
        rated = await self.call("POST", "feedback", "/ratings", "window", body, expect=(201,))
        if rated.status_code == 201:
            visit.score = visitor.rating

    async def _leave(self, visit: Visit, visitor: PlannedVisitor) -> None:
        for loan_id, end in self.loans.get(visit.ticket_id, []):
            if end != "overdue":  # kept past closing: the watchdog finds it overdue
                body = {"condition": "damaged" if end == "damaged" else "ok"}
                await self.call("POST", "concierge", f"/loans/{loan_id}/return", "concierge", body)
        if visitor.plate:
            await self.pause(timedelta(minutes=self.rng.uniform(2, 10)))
            await self.call("POST", "parking", "/vehicles/departures", "guard", {"plate": visitor.plate})

    # --- the concierge desk ------------------------------------------------------------------------

    async def concierge_desk(self) -> None:
        """The desk's screen shows new requests (looked at every 30 s); the shelves are checked
        every 5 minutes."""
        working: set[str] = set()
        shelves_checked = self.clock.now() - RESTOCK_EVERY
        while True:
            assigned = await self.call("GET", "concierge", "/assistance?status=assigned&limit=500", "concierge")
            for request in assigned.json() if assigned.status_code == 200 else []:
                if request["assistance_id"] not in working:
                    working.add(request["assistance_id"])
                    self.errand(self._help(request))
            if self.clock.now() - shelves_checked >= RESTOCK_EVERY:
                shelves_checked = self.clock.now()
                await self._restock()
            await self.pause(timedelta(seconds=30))

    async def _help(self, request: dict[str, Any]) -> None:
        record = AssistanceRecord(
            assistance_id=request["assistance_id"],
            kind=request["kind"],
            ticket_id=request.get("ticket_id"),
            incident_id=request.get("incident_id"),
            requested_at=datetime.fromisoformat(request["requested_at"]),
            concierge_id=request.get("concierge_id"),
        )
        self.assistance[record.assistance_id] = record
        await self.pause(timedelta(minutes=self.rng.uniform(0.3, 2.5)))  # "come at once when called"
        accepted = await self.call("POST", "concierge", f"/assistance/{record.assistance_id}/accept", "concierge")
        if accepted.status_code != 200:
            return
        record.accepted_at = self.clock.now()
        await self.pause(timedelta(minutes=self.rng.uniform(5, 20)))
        done = await self.call(
            "POST", "concierge", f"/assistance/{record.assistance_id}/complete", "concierge", {"note": "done"}
        )
        if done.status_code == 200:
            record.completed_at = self.clock.now()

    async def _restock(self) -> None:
        inventory = await self.call("GET", "concierge", "/inventory", "concierge")
        for item in inventory.json()["consumables"] if inventory.status_code == 200 else []:
            if item["low"]:
                qty = max(item["minimum"] * 3, 20)
                answer = await self.call(
                    "POST", "concierge", f"/inventory/{item['sku']}/restock", "concierge", {"qty": qty}
                )
                if answer.status_code == 200:
                    self.restocked[item["sku"]] += qty

    # --- the car park ------------------------------------------------------------------------------

    async def patrols(self) -> None:
        schedule = (await self.call("GET", "parking", "/patrols/schedule", "guard")).json()
        at_of = {r["round_id"]: r["at"] for r in schedule["rounds"]}
        for planned in self.plan.rounds:
            if planned.start_delay_minutes is None or planned.round_id not in at_of:
                continue
            hh, mm = (int(x) for x in at_of[planned.round_id].split(":"))
            local = self.plan.opens_at.astimezone(_zone()).replace(hour=hh, minute=mm)
            await self.until(local + timedelta(minutes=planned.start_delay_minutes))
            started = await self.call(
                "POST", "parking", "/patrols", "guard", {"guard_id": "G-1", "round_id": planned.round_id}, expect=(201,)
            )
            if started.status_code != 201:
                continue
            patrol = started.json()
            for checkpoint in patrol["route"]:
                if checkpoint not in planned.skips:
                    await self.pause(timedelta(minutes=2))
                    await self.call(
                        "POST",
                        "parking",
                        f"/patrols/{patrol['patrol_id']}/checkpoints",
                        "guard",
                        {"checkpoint_id": checkpoint},
                    )
            await self.call("POST", "parking", f"/patrols/{patrol['patrol_id']}/finish", "guard")

    async def guards(self) -> None:
        for planned in self.plan.incidents:
            stranger = planned.visitor_index is None
            if stranger:  # a car whose owner has no ticket: parked a while before; nobody can be paged
                await self.until(planned.at - timedelta(minutes=20))
                await self.call("POST", "parking", "/vehicles/arrivals", "guard", {"plate": planned.plate})
            await self.until(planned.at)
            body: dict[str, Any] = {"kind": planned.kind, "guard_id": "G-2", "space": f"A-{self.rng.randint(1, 80)}"}
            body["plate"] = planned.plate
            reported = await self.call("POST", "parking", "/incidents", "guard", body, expect=(200, 201))
            if reported.status_code in (200, 201):
                incident = reported.json()
                record = IncidentRecord(
                    incident_id=incident["incident_id"],
                    kind=incident["kind"],
                    ticket_id=incident.get("ticket_id"),
                    reported_at=self.clock.now(),
                )
                self.incidents.setdefault(record.incident_id, record)
                self.errand(self._follow_incident(record, planned.plate if stranger else None))

    async def _resolve(self, record: IncidentRecord, resolution: str, guard_id: str) -> None:
        body = {"resolution": resolution, "guard_id": guard_id}
        await self.call("POST", "parking", f"/incidents/{record.incident_id}/resolve", "guard", body)

    async def _follow_incident(self, record: IncidentRecord, stranger_plate: str | None) -> None:
        """The guard waits for the owner (paged) or for ops (escalated); a flat tyre is the
        concierge's; anything else the guard resolves once someone came."""
        while True:
            await self.pause(timedelta(minutes=1))
            if self.closing.is_set():  # the evening guard deals with what is left
                await self._resolve(record, "dealt with at closing", "G-3")
            incident = (await self.call("GET", "parking", f"/incidents/{record.incident_id}", "guard")).json()
            record.notified_at = _at(incident.get("notified_at"))
            record.escalated_at = _at(incident.get("escalated_at"))
            record.acknowledged_at = _at(incident.get("acknowledged_at"))
            record.resolved_at = _at(incident.get("resolved_at"))
            record.resolution = incident.get("resolution")
            if incident["status"] == "resolved":
                if stranger_plate:  # its owner drives off
                    await self.call("POST", "parking", "/vehicles/departures", "guard", {"plate": stranger_plate})
                return
            if incident["status"] == "escalated":
                await self.call(
                    "POST",
                    "parking",
                    f"/incidents/{record.incident_id}/acknowledge",
                    "ops",
                    {"note": "ops calling the owner"},
                )
            elif incident["status"] == "owner_notified" and record.kind != "flat_tyre":
                await self.pause(timedelta(minutes=self.rng.uniform(3, 10)))
                await self.call(
                    "POST", "parking", f"/incidents/{record.incident_id}/acknowledge", "guard", {"guard_id": "G-2"}
                )
            elif incident["status"] == "acknowledged" and record.kind != "flat_tyre":
                await self.pause(timedelta(minutes=self.rng.uniform(2, 8)))
                await self._resolve(record, "dealt with", "G-2")
            elif incident["status"] == "acknowledged" and record.kind == "flat_tyre" and record.notified_at is None:
                await self.pause(timedelta(minutes=20))  # ops reached the owner; the tyre gets changed
                await self._resolve(record, "owner changed the wheel", "G-2")

    # --- feedback ----------------------------------------------------------------------------------

    async def message_book(self) -> None:
        for message in self.plan.messages:
            await self.until(message.at)
            body: dict[str, Any] = {"text": message.text}
            for name in ("kind", "window_id", "contact"):
                if getattr(message, name):
                    body[name] = getattr(message, name)
            await self.call("POST", "feedback", "/messages", "kiosk", body, expect=(201,))

    async def ops_desk(self) -> None:
        """Ops work the complaint cases: verify, rectify, follow up a real-name case, close."""
        steps = {
            "opened": (
                "verify",
                lambda c: {
                    "note": "called the citizen",
                    "by": "OPS-1",
                    "complexity": "complex" if self.rng.random() < 0.2 else "simple",
                },
            ),
            "verified": (
                "rectify",
                lambda c: {"note": "put right with the window", "by": f"{c.get('unit') or 'HALL'}-LEAD"},
            ),
            "rectified": ("follow-up", lambda c: {"note": "called back", "by": "OPS-2", "satisfied": True}),
            "followed_up": ("close", lambda c: {"note": "closed", "by": "OPS-1"}),
        }
        while True:
            await self.pause(timedelta(minutes=30))
            cases = await self.call("GET", "feedback", "/complaints?limit=500", "ops")
            for case in cases.json() if cases.status_code == 200 else []:
                if case["status"] == "rectified" and not case["real_name"]:
                    step, body = "close", {"note": "closed", "by": "OPS-1"}
                elif case["status"] in steps:
                    step, make = steps[case["status"]]
                    body = make(case)
                else:
                    continue
                await self.call("POST", "feedback", f"/complaints/{case['complaint_id']}/{step}", "ops", body)

    # --- what the hall looks like ------------------------------------------------------------------

    async def snapshots(self) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                self.record.snapshots.append(await self.snapshot())
            await self.pause(SNAPSHOT_EVERY)

    async def snapshot(self) -> Snapshot:
        queues, windows, inventory, loans, assistance, incidents, occupancy = await asyncio.gather(
            self.send("GET", f"{self.services.queue}/queues", headers=TOKENS["ops"]),
            self.send("GET", f"{self.services.queue}/windows", headers=TOKENS["ops"]),
            self.send("GET", f"{self.services.concierge}/inventory", headers=TOKENS["ops"]),
            self.send("GET", f"{self.services.concierge}/loans?status=out&limit=500", headers=TOKENS["ops"]),
            self.send("GET", f"{self.services.concierge}/assistance?limit=500", headers=TOKENS["ops"]),
            self.send("GET", f"{self.services.parking}/incidents?limit=500", headers=TOKENS["ops"]),
            self.send("GET", f"{self.services.parking}/occupancy", headers=TOKENS["ops"]),
        )
        open_windows = [w for w in windows.json() if w["state"] == "open"]
        now_real, seen = real_time.monotonic(), sum(self.tally.commands.values())
        last_real, last_seen = self._last_snapshot
        self._last_snapshot = (now_real, seen)
        return Snapshot(
            at=self.clock.now(),
            in_hall=sum(1 for v in self.visits.values() if v.outcome is None),
            waiting={q["category"]: q["waiting"] for q in queues.json()},
            windows_open=len(open_windows),
            open_by_category={q["category"]: q["open_windows"] for q in queues.json()},
            loans_out=len(loans.json()),
            stock={c["sku"]: c["stock"] for c in inventory.json()["consumables"]},
            assistance_open=sum(1 for a in assistance.json() if a["status"] in ("queued", "assigned", "accepted")),
            incidents_open=sum(1 for i in incidents.json() if i["status"] != "resolved"),
            occupied=occupancy.json()["occupied"],
            events_per_s=(seen - last_seen) / max(now_real - last_real, 1e-6),
        )


def service_scale(plan: DayPlan, *, windows: int, busy: float = 0.45) -> float:
    """The catalogue's minutes are an item's full handling; at the counter most visits take less.
    Service times are scaled so the day's work fits `busy` of the windows' day (1.0 when it fits).
    The rest of a window's day goes to lunch (about a tenth), the citizen walking up after the call
    (40 s on average), the terminal's calls, and the lulls between the peaks."""
    work = sum(v.service_minutes for v in plan.visitors)
    open_minutes = (plan.closes_at - plan.opens_at).total_seconds() / 60 * windows * busy
    return min(1.0, open_minutes / work) if work else 1.0


def _template(path: str) -> str:
    """`/tickets/0b6f…/start` → `/tickets/{id}/start`, for counting commands by kind."""
    parts = path.split("?")[0].split("/")
    return "/".join(
        "{id}" if len(part) > 20 or (any(c.isdigit() for c in part[1:]) and "-" in part) else part for part in parts
    )


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


async def _repeat(job: Callable[[], Awaitable[None]], every_s: float) -> None:
    while True:
        with contextlib.suppress(Exception):
            await job()
        await asyncio.sleep(every_s)
