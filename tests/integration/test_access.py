"""Who may do what, to whom: every cell of docs/access.md's matrix, checked against the four
services running on the test stack.

The matrix is read from the page itself, so the page and the code cannot drift apart. For every
operation and role the test sets up what the operation acts on and calls it as that role:
- `yes`: allowed, even with a token bound to somebody else's window, desk or handset;
- `no`: 403, and nothing changed;
- `own <rule>`: allowed with a token bound to the owner (or the slip's code), 403 and nothing
  changed with a token bound to another (a wrong slip code, none), allowed with an unbound token;
- `hides <fields>`: those fields are not in the answer (or null), while roles that do not hide them
  get them filled in.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from goldenkey.concierge.app import Settings as ConciergeSettings
from goldenkey.concierge.app import build_app as build_concierge
from goldenkey.contracts import TicketCompleted, derived_id, envelope_for
from goldenkey.feedback.app import Settings as FeedbackSettings
from goldenkey.feedback.app import build_app as build_feedback
from goldenkey.kit import ManualClock
from goldenkey.kit.auth import ROLES, token_hash
from goldenkey.parking.app import Settings as ParkingSettings
from goldenkey.parking.app import build_app as build_parking
from goldenkey.queue.app import Settings as QueueSettings
from goldenkey.queue.app import build_app as build_queue
from goldenkey.queue.domain import slip_code_hash
from tests.integration.openapi_fuzz import roles_by_operation
from tests.support import RunningApp, on_the_test_stack, unique

pytestmark = pytest.mark.integration
ACCESS_MD = Path(__file__).resolve().parents[2] / "docs" / "access.md"
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an: the lunch rule holds
SERVICES = ("queue", "concierge", "parking", "feedback")
HOME = {"window": "W01", "concierge": "GK1", "guard": "G1"}
"""What the things set up belong to: window W01, concierge GK1, guard G1."""
STRANGER = {"window": "W02", "concierge": "GK2", "guard": "G2"}
"""Another window, concierge, guard: a token bound to one of them acts for nothing of HOME's."""
WRONG_CODE = "ZZZZ2345"


# --- the matrix, as docs/access.md has it -------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    access: Literal["yes", "no", "own"]
    rule: str | None = None
    """For `own`: slip, window, concierge, requester or guard."""
    hides: tuple[str, ...] = ()


def read_cell(text: str) -> Cell:
    base, _, hidden = text.strip().partition(", hides ")
    hides = tuple(f.strip() for f in hidden.split(",")) if hidden else ()
    if base in ("yes", "no"):
        return Cell(base, None, hides)  # type: ignore[arg-type]
    own = re.fullmatch(r"own (slip|window|concierge|requester|guard)", base)
    assert own, f"docs/access.md: cannot read the cell {text!r}"
    return Cell("own", own.group(1), hides)


def read_matrix(text: str) -> dict[str, dict[str, dict[str, Cell]]]:
    """service → `METHOD /path` → role → cell, from the tables under `### <service>`."""
    matrix: dict[str, dict[str, dict[str, Cell]]] = {}
    service = None
    header: list[str] = []
    for line in text.splitlines():
        if heading := re.fullmatch(r"### (\w+)", line.strip()):
            service = heading.group(1) if heading.group(1) in SERVICES else None
        elif service and line.startswith("| operation |"):
            header = [c.strip() for c in line.strip("|").split("|")][1:]
            assert header == list(ROLES), f"docs/access.md, {service}: columns {header}, not {ROLES}"
        elif service and (row := re.fullmatch(r"\| `([A-Z]+ /[^`]*)` \|(.*)\|", line.strip())):
            cells = [c.strip() for c in row.group(2).split("|")]
            assert len(cells) == len(ROLES), f"docs/access.md: {line}"
            operation = row.group(1)
            assert operation not in matrix.setdefault(service, {}), f"docs/access.md: {operation} twice"
            matrix[service][operation] = {role: read_cell(c) for role, c in zip(ROLES, cells, strict=True)}
    return matrix


MATRIX = read_matrix(ACCESS_MD.read_text())
OPERATIONS = [(service, operation) for service, rows in MATRIX.items() for operation in rows]


# --- the hall under test ------------------------------------------------------------------------------


def token(role: str, bound_to: str | None) -> str:
    return f"dev-{role}" if bound_to is None else f"test-{role}-{bound_to}"


def write_tokens(path: Path) -> Path:
    """Every role's dev token (bound to nothing), and HOME's and STRANGER's devices."""
    entries = [{"sha256": token_hash(token(role, None)), "role": role, "name": f"dev-{role}"} for role in ROLES]
    for bound in (HOME, STRANGER):
        for role, bound_to in bound.items():
            entries.append(
                {"sha256": token_hash(token(role, bound_to)), "role": role, "name": bound_to, "bound_to": bound_to}
            )
    path.write_text(json.dumps(entries))
    return path


@dataclass(frozen=True)
class Ask:
    """Who asks: a role, what its token is bound to, and (for a kiosk) which slip code it shows."""

    role: str
    bound_to: str | None = None
    slip: Literal["right", "wrong", "none"] = "right"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(self.role, self.bound_to)}"}

    def __str__(self) -> str:
        bound = f" bound to {self.bound_to}" if self.bound_to else ""
        code = f" with {self.slip} slip code" if self.role == "kiosk" and self.slip != "right" else ""
        return f"{self.role}{bound}{code}"


async def unchanged() -> None:
    return None


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    ok: int = 200
    """The status when the call is allowed."""
    state: Callable[[], Awaitable[Any]] = unchanged
    """What a refused call must leave as it was."""
    after: Callable[[], Awaitable[None]] | None = None
    """Undo what an allowed call changed, when other scenarios rely on it."""


@dataclass
class Hall:
    apps: dict[str, Any]
    clients: dict[str, httpx.AsyncClient]
    clock: ManualClock
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def db(self, service: str) -> Any:
        return self.apps[service].state.kit.db

    def next(self) -> int:
        return next(self.numbers)

    async def do(
        self, service: str, method: str, path: str, body: Any = None, *, role: str = "admin", expect: int = 200
    ) -> Any:
        """A step of a scenario's set-up, with an unbound token: it must succeed."""
        answer = await self.clients[service].request(method, path, json=body, headers=Ask(role).headers)
        assert answer.status_code == expect, f"set-up {method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    async def version(self, service: str, collection: str, doc_id: str) -> Any:
        document = await self.db(service)[collection].find_one({"_id": doc_id})
        return None if document is None else document.get("version", document)

    async def versions(self, service: str, collection: str, keep: Callable[[dict[str, Any]], bool] = bool) -> Any:
        """Every document of a collection (that `keep` keeps), by id and version: a write changes it."""
        found = [d async for d in self.db(service)[collection].find({}, {"outbox": 0})]
        return sorted((d["_id"], d.get("version")) for d in found if keep(d))


@contextlib.asynccontextmanager
async def running(infra: Any, tokens_file: Path) -> AsyncIterator[Hall]:
    clock = ManualClock(OPENING)
    quiet: dict[str, Any] = {"tokens_file": tokens_file, "dev_tokens": False, "mongodb_timeout_ms": 3000}
    apps = {
        "queue": build_queue(
            QueueSettings(**on_the_test_stack(infra, "queue", coverage_check_s=3600, end_of_day_check_s=3600, **quiet)),
            clock=clock,
        ),
        "concierge": build_concierge(
            ConciergeSettings(**on_the_test_stack(infra, "concierge", watch_s=3600, **quiet)), clock=clock
        ),
        "parking": build_parking(
            ParkingSettings(**on_the_test_stack(infra, "parking", watch_s=3600, **quiet)), clock=clock
        ),
        "feedback": build_feedback(
            FeedbackSettings(**on_the_test_stack(infra, "feedback", watch_s=3600, **quiet)), clock=clock
        ),
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            served = await stack.enter_async_context(RunningApp(app))
            clients[name] = await stack.enter_async_context(httpx.AsyncClient(base_url=served.url, timeout=60))
        hall = Hall(apps, clients, clock)
        for name in ("GK2", "GK3", "GK4", "GK5"):  # GK1 alone on duty: every request is given to HOME's concierge
            await hall.do("concierge", "POST", f"/concierges/{name}/duty", {"on_duty": False}, role="ops")
        await hall.do("queue", "POST", "/windows/W03/open", {"staff_id": "S-W03"}, role="window")  # W01 may pause
        yield hall


@pytest.fixture(scope="module")
async def hall(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hall]:
    async with running(infra, write_tokens(tmp_path_factory.mktemp("access") / "tokens.json")) as opened:
        yield opened


# --- the queue ----------------------------------------------------------------------------------------


async def window_to(h: Hall, window_id: str, state: str) -> None:
    """Bring a window to `state` (open, paused or closed) through the API."""
    current = (await h.db("queue")["windows"].find_one({"_id": window_id}))["state"]
    path = f"/windows/{window_id}"
    if current == state:
        return
    if state == "closed":
        await h.do("queue", "POST", f"{path}/close", role="window")
        return
    if current == "closed":
        await h.do("queue", "POST", f"{path}/open", {"staff_id": f"S-{window_id}"}, role="window")
    elif current == "paused":
        await h.do("queue", "POST", f"{path}/resume", role="window")
    if state == "paused":
        await h.do("queue", "POST", f"{path}/pause", {"reason": "break"}, role="window")


async def ticket(
    h: Hall, status: str = "waiting", *, needs: tuple[str, ...] = (), priority: str | None = None
) -> dict[str, Any]:
    """A ticket of category A (the POST /tickets answer, with its slip code), brought to `status`
    at HOME's window W01."""
    issued = await h.do(
        "queue",
        "POST",
        "/tickets",
        {"item_code": "A001", "channel": "kiosk", "needs": list(needs), "priority": priority},
        role="kiosk",
        expect=201,
    )
    ticket_id = issued["ticket_id"]
    if status == "waiting":
        return issued  # type: ignore[no-any-return]
    await window_to(h, "W01", "open")
    await h.do("queue", "POST", "/windows/W01/call", {"ticket_id": ticket_id}, role="window")
    if status == "serving":
        await h.do("queue", "POST", f"/tickets/{ticket_id}/start", role="window")
    elif status == "no_show":
        await h.do("queue", "POST", f"/tickets/{ticket_id}/no-show", role="window")
    return issued  # type: ignore[no-any-return]


def slip(ask: Ask, issued: dict[str, Any]) -> dict[str, Any] | None:
    """The body a kiosk sends to show a ticket's slip (staff send none)."""
    if ask.role != "kiosk" or ask.slip == "none":
        return None
    return {"slip_code": issued["slip_code"] if ask.slip == "right" else WRONG_CODE}


def a_ticket_step(
    status: str, step: str, body: Any = None, *, needs: tuple[str, ...] = (), priority: str | None = None
) -> Callable[[Hall, Ask], Awaitable[Call]]:
    async def scenario(h: Hall, ask: Ask) -> Call:
        issued = await ticket(h, status, needs=needs, priority=priority)
        ticket_id = issued["ticket_id"]
        return Call(
            "POST",
            f"/tickets/{ticket_id}/{step}",
            slip(ask, issued) if body is None else body,
            state=lambda: h.version("queue", "tickets", ticket_id),
        )

    return scenario


def a_window_step(before: str, step: str, body: Any = None) -> Callable[[Hall, Ask], Awaitable[Call]]:
    async def scenario(h: Hall, ask: Ask) -> Call:
        await window_to(h, "W01", before)
        return Call("POST", f"/windows/W01/{step}", body, state=lambda: h.version("queue", "windows", "W01"))

    return scenario


def a_read(path: str, **params: Any) -> Callable[[Hall, Ask], Awaitable[Call]]:
    async def scenario(h: Hall, ask: Ask) -> Call:
        return Call("GET", path, params=params or None)

    return scenario


async def issue_ticket(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/tickets",
        {"item_code": "A001", "channel": "kiosk"},
        ok=201,
        state=lambda: h.versions("queue", "tickets"),
    )


async def read_ticket(h: Hall, ask: Ask) -> Call:
    issued = await ticket(h, needs=("wheelchair",), priority="disabled")
    return Call("GET", f"/tickets/{issued['ticket_id']}")


async def call_next(h: Hall, ask: Ask) -> Call:
    await window_to(h, "W01", "open")
    await ticket(h)
    return Call("POST", "/windows/W01/call-next", state=lambda: h.versions("queue", "tickets"))


async def call_one(h: Hall, ask: Ask) -> Call:
    await window_to(h, "W01", "open")
    ticket_id = (await ticket(h))["ticket_id"]
    return Call(
        "POST",
        "/windows/W01/call",
        {"ticket_id": ticket_id},
        state=lambda: h.version("queue", "tickets", ticket_id),
    )


async def edit_item(h: Hall, ask: Ask) -> Call:
    return Call(
        "PUT",
        "/catalog/A002",
        {"service_min": 10 + h.next() % 200},
        state=lambda: h.db("queue")["catalog"].find_one({"_id": "A002"}),
    )


async def edit_category(h: Hall, ask: Ask) -> Call:
    return Call(
        "PUT",
        "/categories/C",
        {"target_wait_min": 10 + h.next() % 200},
        state=lambda: h.db("queue")["categories"].find_one({"_id": "C"}),
    )


QUEUE = {
    "POST /tickets": issue_ticket,
    "GET /tickets/{ticket_id}": read_ticket,
    "POST /tickets/{ticket_id}/recall": a_ticket_step("called", "recall"),
    "POST /tickets/{ticket_id}/start": a_ticket_step("called", "start"),
    "POST /tickets/{ticket_id}/complete": a_ticket_step("serving", "complete", {"outcome": "done"}),
    "POST /tickets/{ticket_id}/no-show": a_ticket_step("called", "no-show"),
    "POST /tickets/{ticket_id}/rejoin": a_ticket_step("no_show", "rejoin", needs=("escort",), priority="elderly"),
    "POST /tickets/{ticket_id}/transfer": a_ticket_step("called", "transfer", {"category": "B"}),
    "POST /tickets/{ticket_id}/cancel": a_ticket_step(
        "called", "cancel", needs=("mother_baby_room",), priority="with_infant"
    ),
    "GET /windows": a_read("/windows"),
    "POST /windows/{window_id}/open": a_window_step("closed", "open", {"staff_id": "S-W01"}),
    "POST /windows/{window_id}/pause": a_window_step("open", "pause", {"reason": "lunch"}),
    "POST /windows/{window_id}/resume": a_window_step("paused", "resume"),
    "POST /windows/{window_id}/close": a_window_step("open", "close"),
    "POST /windows/{window_id}/call-next": call_next,
    "POST /windows/{window_id}/call": call_one,
    "GET /categories": a_read("/categories"),
    "GET /catalog": a_read("/catalog", category="A"),
    "GET /stats/today": a_read("/stats/today"),
    "PUT /catalog/{code}": edit_item,
    "PUT /categories/{code}": edit_category,
    "GET /queues": a_read("/queues"),
}


# --- the concierge ------------------------------------------------------------------------------------


async def lend(h: Hall) -> dict[str, Any]:
    """A loan of whichever lendable item has the most units on the shelf (the scenarios keep many out)."""
    return await h.do("concierge", "POST", "/loans", await loan_body(h), role="concierge", expect=201)  # type: ignore[no-any-return]


async def loan_body(h: Hall) -> dict[str, Any]:
    inventory = await h.do("concierge", "GET", "/inventory")
    freest = max(inventory["lendables"], key=lambda item: item["free"])
    return {"sku": freest["sku"], "ticket_id": unique("t-")}


async def help_request(h: Hall, asker: Ask = Ask("window", HOME["window"])) -> str:
    """A request asked for by `asker` (HOME's window device unless told), given to GK1."""
    answer = await h.clients["concierge"].post("/assistance", json={"kind": "escort"}, headers=asker.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["concierge_id"] == HOME["concierge"], "GK1 is the only concierge on duty"
    return str(answer.json()["assistance_id"])


def asker_for(ask: Ask) -> Ask:
    """The device whose request a caller withdraws as its own: a guard's for a guard, else a window's."""
    role = "guard" if ask.role == "guard" else "window"
    return Ask(role, HOME[role])


async def borrow(h: Hall, ask: Ask) -> Call:
    return Call("POST", "/loans", await loan_body(h), ok=201, state=lambda: h.versions("concierge", "loans"))


async def list_loans(h: Hall, ask: Ask) -> Call:
    await lend(h)
    return Call("GET", "/loans", params={"status": "out"})


async def read_loan(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/loans/{(await lend(h))['loan_id']}")


async def give_back(h: Hall, ask: Ask) -> Call:
    loan_id = (await lend(h))["loan_id"]
    return Call(
        "POST",
        f"/loans/{loan_id}/return",
        {"condition": "ok"},
        state=lambda: h.version("concierge", "loans", loan_id),
    )


async def dispense(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/dispensations",
        {"sku": "band-aid", "qty": 1},
        ok=201,
        state=lambda: h.version("concierge", "consumables", "band-aid"),
    )


async def restock(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/inventory/band-aid/restock",
        {"qty": 1},
        state=lambda: h.version("concierge", "consumables", "band-aid"),
    )


async def rename_item(h: Hall, ask: Ask) -> Call:
    return Call(
        "PUT",
        "/inventory/band-aid",
        {"name_en": f"Band-aid ({h.next()})"},
        state=lambda: h.version("concierge", "consumables", "band-aid"),
    )


async def add_unit(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/inventory/umbrella/units",
        {"unit_id": f"UM-T{h.next()}"},
        ok=201,
        state=lambda: h.version("concierge", "lendables", "umbrella"),
    )


async def repaired(h: Hall, ask: Ask) -> Call:
    loan = await lend(h)
    await h.do("concierge", "POST", f"/loans/{loan['loan_id']}/return", {"condition": "damaged"}, role="concierge")
    return Call(
        "POST",
        f"/inventory/{loan['sku']}/units/{loan['unit_id']}/repaired",
        state=lambda: h.version("concierge", "lendables", loan["sku"]),
    )


async def ask_for_help(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/assistance",
        {"kind": "escort", "location": "east door"},
        ok=201,
        state=lambda: h.versions("concierge", "assistance", lambda d: d.get("requested_by") is not None),
    )


async def list_help(h: Hall, ask: Ask) -> Call:
    await help_request(h)
    return Call("GET", "/assistance", params={"status": "assigned"})


async def read_help(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/assistance/{await help_request(h)}")


def a_help_step(step: str, body: Any = None) -> Callable[[Hall, Ask], Awaitable[Call]]:
    async def scenario(h: Hall, ask: Ask) -> Call:
        assistance_id = await help_request(h, asker_for(ask))
        return Call(
            "POST",
            f"/assistance/{assistance_id}/{step}",
            body,
            state=lambda: h.version("concierge", "assistance", assistance_id),
        )

    return scenario


async def duty(h: Hall, ask: Ask) -> Call:
    async def on_duty() -> Any:
        return (await h.db("concierge")["concierges"].find_one({"_id": "GK1"}))["on_duty"]

    async def back_on_duty() -> None:
        await h.do("concierge", "POST", "/concierges/GK1/duty", {"on_duty": True}, role="ops")

    return Call("POST", "/concierges/GK1/duty", {"on_duty": False}, state=on_duty, after=back_on_duty)


CONCIERGE = {
    "POST /loans": borrow,
    "GET /loans": list_loans,
    "GET /loans/{loan_id}": read_loan,
    "POST /loans/{loan_id}/return": give_back,
    "POST /dispensations": dispense,
    "GET /inventory": a_read("/inventory"),
    "POST /inventory/{sku}/restock": restock,
    "PUT /inventory/{sku}": rename_item,
    "POST /inventory/{sku}/units": add_unit,
    "POST /inventory/{sku}/units/{unit_id}/repaired": repaired,
    "POST /assistance": ask_for_help,
    "GET /assistance": list_help,
    "GET /assistance/{assistance_id}": read_help,
    "POST /assistance/{assistance_id}/accept": a_help_step("accept"),
    "POST /assistance/{assistance_id}/complete": a_help_step("complete", {"note": "walked them to the lift"}),
    "POST /assistance/{assistance_id}/cancel": a_help_step("cancel", {"reason": "not needed"}),
    "GET /concierges": a_read("/concierges"),
    "POST /concierges/{concierge_id}/duty": duty,
}


# --- parking ------------------------------------------------------------------------------------------

LOT = "QJ-MAIN"


def plate(h: Hall) -> str:
    return f"陕A{h.next():05d}"


async def arrived(h: Hall) -> tuple[str, dict[str, Any]]:
    number = plate(h)
    return number, await h.do("parking", "POST", "/vehicles/arrivals", {"plate": number}, role="guard", expect=201)


async def reported(h: Hall) -> str:
    number, _ = await arrived(h)
    body = {"kind": "lights_on", "plate": number, "guard_id": HOME["guard"]}
    return str((await h.do("parking", "POST", "/incidents", body, role="guard", expect=201))["incident_id"])


async def walking(h: Hall) -> dict[str, Any]:
    return await h.do("parking", "POST", "/patrols", {"guard_id": HOME["guard"]}, role="guard", expect=201)  # type: ignore[no-any-return]


async def arrive(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST", "/vehicles/arrivals", {"plate": plate(h)}, ok=201, state=lambda: h.versions("parking", "visits")
    )


async def depart(h: Hall, ask: Ask) -> Call:
    number, _ = await arrived(h)
    return Call("POST", "/vehicles/departures", {"plate": number}, state=lambda: h.versions("parking", "visits"))


async def head_count(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/headcounts",
        {"guard_id": HOME["guard"], "counted": 40 + h.next() % 50},
        state=lambda: h.version("parking", "lots", LOT),
    )


async def list_visits(h: Hall, ask: Ask) -> Call:
    await arrived(h)
    return Call("GET", "/visits", params={"limit": 5})


async def read_visit(h: Hall, ask: Ask) -> Call:
    _, visit = await arrived(h)
    return Call("GET", f"/visits/{visit['visit_id']}")


async def correct_plate(h: Hall, ask: Ask) -> Call:
    _, visit = await arrived(h)
    return Call(
        "POST",
        f"/visits/{visit['visit_id']}/plate",
        {"plate": plate(h), "guard_id": HOME["guard"]},
        state=lambda: h.version("parking", "visits", visit["visit_id"]),
    )


async def replan(h: Hall, ask: Ask) -> Call:
    plan = await h.do("parking", "GET", "/lot")
    return Call("PUT", "/lot", plan, state=lambda: h.version("parking", "lots", LOT))


async def reschedule(h: Hall, ask: Ask) -> Call:
    schedule = await h.do("parking", "GET", "/patrols/schedule")
    return Call("PUT", "/patrols/schedule", schedule, state=lambda: h.versions("parking", "schedules"))


async def set_off(h: Hall, ask: Ask) -> Call:
    return Call("POST", "/patrols", {"guard_id": HOME["guard"]}, ok=201, state=lambda: h.versions("parking", "patrols"))


async def read_round(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/patrols/{(await walking(h))['patrol_id']}")


def a_round_step(step: str) -> Callable[[Hall, Ask], Awaitable[Call]]:
    async def scenario(h: Hall, ask: Ask) -> Call:
        patrol = await walking(h)
        body = {"checkpoint_id": patrol["route"][0]} if step == "checkpoints" else None
        return Call(
            "POST",
            f"/patrols/{patrol['patrol_id']}/{step}",
            body,
            state=lambda: h.version("parking", "patrols", patrol["patrol_id"]),
        )

    return scenario


async def report(h: Hall, ask: Ask) -> Call:
    number, _ = await arrived(h)
    return Call(
        "POST",
        "/incidents",
        {"kind": "lights_on", "plate": number, "guard_id": HOME["guard"]},
        ok=201,
        state=lambda: h.versions("parking", "incidents"),
    )


async def list_incidents(h: Hall, ask: Ask) -> Call:
    await reported(h)
    return Call("GET", "/incidents", params={"status": "reported"})


async def read_incident(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/incidents/{await reported(h)}")


def an_incident_step(step: str, body: dict[str, Any]) -> Callable[[Hall, Ask], Awaitable[Call]]:
    async def scenario(h: Hall, ask: Ask) -> Call:
        incident_id = await reported(h)
        return Call(
            "POST",
            f"/incidents/{incident_id}/{step}",
            {**body, "guard_id": HOME["guard"]},
            state=lambda: h.version("parking", "incidents", incident_id),
        )

    return scenario


PARKING = {
    "POST /vehicles/arrivals": arrive,
    "POST /vehicles/departures": depart,
    "GET /occupancy": a_read("/occupancy"),
    "POST /headcounts": head_count,
    "GET /visits": list_visits,
    "GET /visits/{visit_id}": read_visit,
    "POST /visits/{visit_id}/plate": correct_plate,
    "GET /lot": a_read("/lot"),
    "PUT /lot": replan,
    "GET /patrols/schedule": a_read("/patrols/schedule"),
    "PUT /patrols/schedule": reschedule,
    "POST /patrols": set_off,
    "GET /patrols": a_read("/patrols"),
    "GET /patrols/{patrol_id}": read_round,
    "POST /patrols/{patrol_id}/checkpoints": a_round_step("checkpoints"),
    "POST /patrols/{patrol_id}/finish": a_round_step("finish"),
    "POST /incidents": report,
    "GET /incidents": list_incidents,
    "GET /incidents/{incident_id}": read_incident,
    "POST /incidents/{incident_id}/acknowledge": an_incident_step("acknowledge", {"note": "the owner came"}),
    "POST /incidents/{incident_id}/resolve": an_incident_step("resolve", {"resolution": "lights switched off"}),
}


# --- feedback -----------------------------------------------------------------------------------------


async def invited(h: Hall) -> str:
    """A visit HOME's window W01 served, as the queue's `ticket.completed` says: its invitation."""
    ticket_id = unique("t-")
    done = TicketCompleted(
        ticket_id=ticket_id, outcome="done", window_id="W01", wait_s=60, service_s=300, category="A", staff_id="S-W01"
    )
    await h.apps["feedback"].state.feedback.ticket_completed(envelope_for(done, time=h.clock.now()), done)
    return ticket_id


async def rated(h: Hall, score: int = 5, **more: Any) -> str:
    body = {"subject_type": "ticket", "subject_id": await invited(h), "score": score, **more}
    return str((await h.do("feedback", "POST", "/ratings", body, role="kiosk", expect=201))["rating_id"])


CASE_STEPS = {
    "verify": {"note": "called the citizen", "by": "OPS-1", "complexity": "simple"},
    "rectify": {"note": "put right with the window", "by": "W01-LEAD"},
    "follow-up": {"note": "called back: satisfied", "by": "OPS-1", "satisfied": True},
    "close": {"note": "done", "by": "OPS-1"},
}


async def case(h: Hall, done: tuple[str, ...] = ()) -> str:
    """A real-name bad review's complaint case, with the stages `done` done."""
    rating_id = await rated(h, 1, contact="13800138000")
    complaint_id = derived_id(rating_id, "complaint")
    for step in done:
        await h.do("feedback", "POST", f"/complaints/{complaint_id}/{step}", CASE_STEPS[step], role="ops")
    return complaint_id


async def invitation(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/invitations/{await invited(h)}")


async def rate(h: Hall, ask: Ask) -> Call:
    subject_id = await invited(h)

    async def ratings_of_it() -> int:
        return int(await h.db("feedback")["ratings"].count_documents({"subject_id": subject_id}))

    return Call(
        "POST",
        "/ratings",
        {"subject_type": "ticket", "subject_id": subject_id, "score": 4, "reasons": ["efficiency"]},
        ok=201,
        state=ratings_of_it,
    )


async def list_ratings(h: Hall, ask: Ask) -> Call:
    await rated(h)
    return Call("GET", "/ratings")


async def read_rating(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/ratings/{await rated(h)}")


async def appeal(h: Hall, ask: Ask) -> Call:
    rating_id = await rated(h, 2)
    return Call(
        "POST",
        f"/ratings/{rating_id}/appeal",
        {"ground": "mistaken", "reason": "rated the wrong window"},
        state=lambda: h.version("feedback", "ratings", rating_id),
    )


async def decide(h: Hall, ask: Ask) -> Call:
    rating_id = await rated(h, 2)
    await h.do("feedback", "POST", f"/ratings/{rating_id}/appeal", {"ground": "malicious", "reason": "r"}, role="ops")
    return Call(
        "POST",
        f"/ratings/{rating_id}/appeal/decision",
        {"verdict": "rejected"},
        state=lambda: h.version("feedback", "ratings", rating_id),
    )


async def post_message(h: Hall, ask: Ask) -> Call:
    return Call(
        "POST",
        "/messages",
        {"text": "窗口服务很好 thank you", "kind": "praise"},
        ok=201,
        state=lambda: h.versions("feedback", "messages"),
    )


async def read_case(h: Hall, ask: Ask) -> Call:
    return Call("GET", f"/complaints/{await case(h)}")


async def list_cases(h: Hall, ask: Ask) -> Call:
    await case(h)
    return Call("GET", "/complaints")


def a_case_step(step: str) -> Callable[[Hall, Ask], Awaitable[Call]]:
    before = tuple(CASE_STEPS)[: tuple(CASE_STEPS).index(step)]

    async def scenario(h: Hall, ask: Ask) -> Call:
        complaint_id = await case(h, before)
        return Call(
            "POST",
            f"/complaints/{complaint_id}/{step}",
            CASE_STEPS[step],
            state=lambda: h.version("feedback", "complaints", complaint_id),
        )

    return scenario


async def replace_rules(h: Hall, ask: Ask) -> Call:
    rules = await h.do("feedback", "GET", "/rules")
    return Call("PUT", "/rules", rules, state=lambda: h.versions("feedback", "rule_sets"))


FEEDBACK = {
    "GET /invitations/{subject_id}": invitation,
    "POST /ratings": rate,
    "GET /ratings": list_ratings,
    "GET /ratings/{rating_id}": read_rating,
    "POST /ratings/{rating_id}/appeal": appeal,
    "POST /ratings/{rating_id}/appeal/decision": decide,
    "POST /messages": post_message,
    "GET /messages": a_read("/messages"),
    "GET /complaints": list_cases,
    "GET /complaints/{complaint_id}": read_case,
    "POST /complaints/{complaint_id}/verify": a_case_step("verify"),
    "POST /complaints/{complaint_id}/rectify": a_case_step("rectify"),
    "POST /complaints/{complaint_id}/follow-up": a_case_step("follow-up"),
    "POST /complaints/{complaint_id}/close": a_case_step("close"),
    "GET /satisfaction": a_read("/satisfaction"),
    "GET /rankings": a_read("/rankings"),
    "GET /rules": a_read("/rules"),
    "PUT /rules": replace_rules,
}

SCENARIOS: dict[str, dict[str, Callable[[Hall, Ask], Awaitable[Call]]]] = {
    "queue": QUEUE,
    "concierge": CONCIERGE,
    "parking": PARKING,
    "feedback": FEEDBACK,
}


# --- checking a cell ----------------------------------------------------------------------------------


def runs(role: str, cell: Cell) -> list[tuple[Ask, bool]]:
    """The callers a cell is tried with, and whether each is to be let through."""
    if cell.access == "no":
        return [(Ask(role, HOME.get(role)), False)]
    if cell.access == "yes":  # a token bound to somebody else's is let through too
        return [(Ask(role, STRANGER.get(role)), True)]
    if cell.rule == "slip":
        return [(Ask(role, slip="right"), True), (Ask(role, slip="wrong"), False), (Ask(role, slip="none"), False)]
    return [(Ask(role, HOME[role]), True), (Ask(role, STRANGER[role]), False), (Ask(role), True)]


def items(answer: Any) -> list[dict[str, Any]]:
    return [i for i in (answer if isinstance(answer, list) else [answer]) if isinstance(i, dict)]


async def try_cell(h: Hall, service: str, operation: str, role: str, cell: Cell, shown: set[str]) -> list[str]:
    """Every run of one cell; what went other than the matrix says."""
    problems = []
    for ask, allowed in runs(role, cell):
        call = await SCENARIOS[service][operation](h, ask)
        before = await call.state()
        answer = await h.clients[service].request(
            call.method, call.path, json=call.json, params=call.params, headers=ask.headers
        )
        where = f"{operation} as {ask}"
        if not allowed:
            if answer.status_code != 403:
                problems.append(f"{where}: expected 403, got {answer.status_code} {answer.text[:300]}")
            elif await call.state() != before:
                problems.append(f"{where}: refused, but something changed")
            continue
        if answer.status_code != call.ok:
            problems.append(f"{where}: expected {call.ok}, got {answer.status_code} {answer.text[:300]}")
            continue
        found = items(answer.json())
        for name in cell.hides:
            if any(item.get(name) is not None for item in found):
                problems.append(f"{where}: {name} is shown, and the matrix hides it")
        for name in shown - set(cell.hides):
            if not any(item.get(name) is not None for item in found):
                problems.append(f"{where}: {name} is missing, and only other roles have it hidden")
        if call.after is not None:
            await call.after()
    return problems


@pytest.mark.parametrize(("service", "operation"), OPERATIONS, ids=[f"{s} {o}" for s, o in OPERATIONS])
async def test_each_role_gets_what_the_access_matrix_says(hall: Hall, service: str, operation: str) -> None:
    assert operation in SCENARIOS[service], f"no scenario for {service} {operation}: add one"
    row = MATRIX[service][operation]
    hidden_somewhere = {name for cell in row.values() for name in cell.hides}
    problems = []
    for role, cell in row.items():
        problems += await try_cell(hall, service, operation, role, cell, hidden_somewhere)
    assert not problems, "\n".join(problems)


# --- the matrix against the code ----------------------------------------------------------------------


def protected_operations(app: Any) -> set[str]:
    """The operations of a service's OpenAPI document that need a token: its own routes, not the
    kit's health, metrics and documents."""
    return {operation for operation, roles in roles_by_operation(app.openapi()).items() if roles is not None}


def test_the_matrix_lists_every_route_of_the_four_services_once() -> None:
    apps = {
        "queue": build_queue(QueueSettings(dev_mode=True)),
        "concierge": build_concierge(ConciergeSettings(dev_mode=True)),
        "parking": build_parking(ParkingSettings(dev_mode=True)),
        "feedback": build_feedback(FeedbackSettings(dev_mode=True)),
    }
    for service, app in apps.items():
        assert set(MATRIX[service]) == protected_operations(app), service
    assert sum(len(rows) for rows in MATRIX.values()) == 79


async def test_each_operation_documents_the_roles_its_matrix_row_lets_in(hall: Hall) -> None:
    for service, rows in MATRIX.items():
        document = (await hall.clients[service].get("/openapi.json")).json()
        documented = roles_by_operation(document)
        for operation, row in rows.items():
            allowed = sorted(role for role, cell in row.items() if cell.access != "no")
            assert documented[operation] == allowed, f"{service} {operation}"


# --- the slip, and the rules the matrix cannot show ----------------------------------------------------


async def test_a_ticket_s_slip_code_is_given_once_and_kept_only_as_a_hash(hall: Hall) -> None:
    issued = await ticket(hall)
    code, ticket_id = issued["slip_code"], issued["ticket_id"]
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", code), code
    stored = await hall.db("queue")["tickets"].find_one({"_id": ticket_id})
    assert code not in json.dumps(stored, default=str), "the code is not stored"
    assert stored["slip_code_hash"] == slip_code_hash(ticket_id, code)
    for role in ROLES:
        seen = await hall.clients["queue"].get(f"/tickets/{ticket_id}", headers=Ask(role).headers)
        assert seen.status_code == 200, role
        assert code not in seen.text, role
    other = await ticket(hall)
    assert other["slip_code"] != code
    lower = await hall.clients["queue"].post(
        f"/tickets/{ticket_id}/cancel", json={"slip_code": code.lower()}, headers=Ask("kiosk").headers
    )
    assert lower.status_code == 200, "the code typed in lower case is the same code"
    assert lower.json()["status"] == "cancelled"


async def test_a_kiosk_cannot_cancel_with_another_ticket_s_code(hall: Hall) -> None:
    mine, theirs = await ticket(hall), await ticket(hall)
    before = await hall.version("queue", "tickets", theirs["ticket_id"])
    answer = await hall.clients["queue"].post(
        f"/tickets/{theirs['ticket_id']}/cancel", json={"slip_code": mine["slip_code"]}, headers=Ask("kiosk").headers
    )
    assert answer.status_code == 403, answer.text
    assert "slip" in answer.json()["detail"]
    assert await hall.version("queue", "tickets", theirs["ticket_id"]) == before


async def test_a_retried_issue_whose_answer_was_lost_prints_a_new_code(hall: Hall) -> None:
    issued = await ticket(hall)
    queue = hall.apps["queue"].state.queue
    again, _, _, code = await queue.issue(
        issued["ticket_id"], item_code="A001", channel="kiosk", priority=None, needs=[], phone=None, plate=None
    )
    assert again.id == issued["ticket_id"]
    assert code != issued["slip_code"]
    kiosk = Ask("kiosk").headers
    path = f"/tickets/{issued['ticket_id']}/cancel"
    old = await hall.clients["queue"].post(path, json={"slip_code": issued["slip_code"]}, headers=kiosk)
    assert old.status_code == 403, "the first answer's code is void"
    assert (await hall.clients["queue"].post(path, json={"slip_code": code}, headers=kiosk)).status_code == 200


async def test_a_bound_window_token_cannot_force_its_window_s_pause_or_call_for_another(hall: Hall) -> None:
    home = Ask("window", HOME["window"]).headers
    await window_to(hall, "W01", "open")
    forced = await hall.clients["queue"].post(
        "/windows/W01/pause", json={"reason": "lunch", "force": True}, headers=home
    )
    assert forced.status_code == 403, "forcing is for ops"
    waiting = await ticket(hall)
    elsewhere = await hall.clients["queue"].post(
        "/windows/W02/call", json={"ticket_id": waiting["ticket_id"]}, headers=home
    )
    assert elsewhere.status_code == 403
    assert (await hall.db("queue")["tickets"].find_one({"_id": waiting["ticket_id"]}))["status"] == "waiting"


async def test_a_bound_guard_handset_is_taken_for_its_guard_when_the_body_names_none(hall: Hall) -> None:
    incident_id = await reported(hall)
    answer = await hall.clients["parking"].post(
        f"/incidents/{incident_id}/resolve",
        json={"resolution": "owner moved the car"},
        headers=Ask("guard", HOME["guard"]).headers,
    )
    assert answer.status_code == 200, answer.text
    stored = await hall.db("parking")["incidents"].find_one({"_id": incident_id})
    assert stored["resolved_by"] == HOME["guard"]


async def test_assistance_an_event_asked_for_is_the_desk_s_to_cancel(hall: Hall) -> None:
    desk = hall.apps["concierge"].state.concierge
    request = await desk.request_assistance(unique("a-"), kind="wheelchair", ticket_id=unique("t-"))
    for ask in (Ask("window"), Ask("guard"), Ask("window", HOME["window"])):
        refused = await hall.clients["concierge"].post(f"/assistance/{request.id}/cancel", headers=ask.headers)
        assert refused.status_code == 403, (str(ask), refused.text)
    kiosk = await hall.clients["concierge"].post(f"/assistance/{request.id}/cancel", headers=Ask("kiosk").headers)
    assert kiosk.status_code == 403
    assert (
        await hall.clients["concierge"].post(f"/assistance/{request.id}/cancel", headers=Ask("concierge").headers)
    ).status_code == 200


# --- path parameters ----------------------------------------------------------------------------------


async def test_a_ten_thousand_character_path_id_is_a_422_naming_it(hall: Hall) -> None:
    long_id = "x" * 10_000
    admin = Ask("admin").headers
    checked = 0
    for service in SERVICES:
        document = (await hall.clients[service].get("/openapi.json")).json()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
                for name in names:
                    schema = next(p["schema"] for p in operation["parameters"] if p["name"] == name)
                    assert schema.get("maxLength", 10_001) <= 64, f"{method} {path}: {name} has no length limit"
                    url = path
                    for other in names:
                        url = url.replace("{" + other + "}", long_id if other == name else "A")
                    answer = await hall.clients[service].request(method.upper(), url, headers=admin)
                    assert answer.status_code == 422, f"{method} {path} with a long {name}: {answer.status_code}"
                    problems = [p for p in answer.json()["detail"] if p["loc"] == ["path", name]]
                    assert problems, (path, answer.json())
                    assert "at most" in problems[0]["msg"], (path, problems)
                    checked += 1
    assert checked >= 40


async def test_a_path_id_of_the_wrong_shape_is_a_422_before_any_lookup(hall: Hall) -> None:
    admin = Ask("admin").headers
    for service, url in [
        ("queue", "/windows/w01;drop/open"),
        ("queue", "/tickets/a b/cancel"),
        ("concierge", "/inventory/Umbrella/restock"),
        ("parking", "/incidents/%00/resolve"),
        ("feedback", "/complaints/$where/close"),
    ]:
        answer = await hall.clients[service].post(url, json={}, headers=admin)
        assert answer.status_code == 422, (url, answer.text)
        assert any(p["loc"][0] == "path" for p in answer.json()["detail"]), (url, answer.text)


async def test_the_token_is_checked_before_the_path(hall: Hall) -> None:
    answer = await hall.clients["queue"].post(f"/windows/{'x' * 100}/open", json={}, headers=Ask("kiosk").headers)
    assert answer.status_code == 403
    assert (await hall.clients["queue"].post(f"/windows/{'x' * 100}/open", json={})).status_code == 401
