"""The queue's rules, without I/O: tickets and their lifecycle, who is called next, windows and
the rule that lunch is taken in turns so no category is left without an open window."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from goldenkey.contracts import (
    CoverageGapClosed,
    CoverageGapOpened,
    TicketApproaching,
    TicketCalled,
    TicketCancelled,
    TicketCompleted,
    TicketIssued,
    TicketNoShow,
    TicketRecalled,
    TicketServiceStarted,
    TicketTransferred,
    WindowClosed,
    WindowOpened,
    WindowPaused,
    WindowResumed,
)
from goldenkey.contracts.vocabulary import Channel, Need, Outcome, PauseReason, Priority
from goldenkey.kit import Aggregate, Conflict
from goldenkey.kit.errors import Forbidden

TicketStatus = Literal["waiting", "called", "serving", "done", "no_show", "cancelled"]
WindowState = Literal["closed", "open", "paused"]

MAX_CALLS = 3
"""A called ticket is called at most this many times before it is a no-show."""
REJOIN_WITHIN = timedelta(minutes=10)
"""A no-show may rejoin within this long without losing its place."""
APPROACHING_AT = 3
"""`ticket.approaching` goes out once, when a ticket reaches this position."""
SLIP_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""No 0, O, 1 or I: a citizen may have to type it off the slip."""
SLIP_CODE_LENGTH = 8
"""40 random bits: guessing one at a kiosk is hopeless."""


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    target_wait: timedelta
    """Service level: a ticket served within this wait counts as on time; past it, it is promoted."""
    service_time: timedelta
    """Typical time at the window, until recent service times say otherwise."""


def ticket_number(letter: str, sequence: int) -> str:
    """`B023`: the category's letter and the day's sequence, at least three digits."""
    return f"{letter}{sequence:03d}"


def new_slip_code() -> str:
    """The code printed on a ticket's slip (and in its QR): whoever shows it holds the ticket."""
    return "".join(secrets.choice(SLIP_CODE_ALPHABET) for _ in range(SLIP_CODE_LENGTH))


def slip_code_hash(ticket_id: str, code: str) -> str:
    """What the ticket keeps of its slip's code: a hash, salted with the ticket's id."""
    return hashlib.sha256(f"{ticket_id}:{code.strip().upper()}".encode()).hexdigest()


class TicketCounter(Aggregate):
    """The numbers a category has handed out on one business day (id `<day>:<letter>`)."""

    last: int = 0

    @staticmethod
    def key(day: date, letter: str) -> str:
        return f"{day.isoformat()}:{letter}"

    def allocate(self) -> None:
        self.last += 1


class Ticket(Aggregate):
    number: str
    category: str
    item_code: str
    channel: Channel
    priority: Priority | None = None
    needs: list[Need] = Field(default_factory=list)
    phone: str | None = None
    """Raw, and only here: the queue is the one service that may text the citizen."""
    plate_hash: str | None = None
    plate_masked: str | None = None
    day: str
    """The business day (ISO date, Asia/Shanghai) the ticket was issued on."""
    issued_at: datetime
    """The original issue time: a transfer keeps it, so the citizen keeps their place."""
    status: TicketStatus = "waiting"
    window_id: str | None = None
    staff_id: str | None = None
    call_count: int = 0
    called_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    no_show_at: datetime | None = None
    outcome: Outcome | None = None
    approaching_sent: bool = False
    out_of_order: bool = False
    slip_code_hash: str | None = None
    """The hash of the code on its slip (`slip_code_hash`), never the code; None for tickets
    issued before slips carried one, which only staff may cancel."""

    @classmethod
    def issue(
        cls,
        *,
        ticket_id: str,
        number: str,
        category: str,
        item_code: str,
        channel: Channel,
        at: datetime,
        day: date,
        priority: Priority | None = None,
        needs: Sequence[Need] = (),
        phone: str | None = None,
        plate_hash: str | None = None,
        plate_masked: str | None = None,
        position: int | None = None,
        estimated_wait_s: float | None = None,
        slip_code: str | None = None,
    ) -> Ticket:
        ticket = cls(
            id=ticket_id,
            number=number,
            category=category,
            item_code=item_code,
            channel=channel,
            priority=priority,
            needs=list(dict.fromkeys(needs)),
            phone=phone,
            plate_hash=plate_hash,
            plate_masked=plate_masked,
            day=day.isoformat(),
            issued_at=at,
            slip_code_hash=slip_code_hash(ticket_id, slip_code) if slip_code else None,
        )
        ticket.record(
            TicketIssued(
                ticket_id=ticket_id,
                number=number,
                category=category,
                item_code=item_code,
                channel=channel,
                priority=priority,
                needs=ticket.needs,
                plate_hash=plate_hash,
                plate_masked=plate_masked,
                issued_at=at,
                position=position,
                estimated_wait_s=estimated_wait_s,
            ),
            at=at,
            correlation_id=ticket_id,
        )
        return ticket

    # --- who may act on it (docs/access.md) ---------------------------------------------------

    def new_slip(self, code: str) -> None:
        """A slip printed again (a retried issue whose first answer was lost): the old code is void."""
        self.slip_code_hash = slip_code_hash(self.id, code)

    def must_be_shown_its_slip(self, code: str | None) -> None:
        """A kiosk is a public device: it acts for a ticket only when shown the code on its slip."""
        if code is None:
            raise Forbidden(f"show the code on ticket {self.number}'s slip (slip_code), or ask at a window")
        if self.slip_code_hash is None or not hmac.compare_digest(self.slip_code_hash, slip_code_hash(self.id, code)):
            raise Forbidden(f"that is not the code on ticket {self.number}'s slip; ask at a window")

    def must_be_at_window(self, window_id: str, *, or_at_none: bool = False) -> None:
        """A window's terminal acts on the tickets at its window: called, served or missed there
        (`or_at_none`: also one not at any window, as a waiting ticket is)."""
        if self.window_id == window_id or (or_at_none and self.window_id is None):
            return
        where = f"at window {self.window_id}" if self.window_id else "not at any window"
        raise Forbidden(f"ticket {self.number} is {where}: window {window_id} may not act on it")

    # --- the lifecycle -----------------------------------------------------------------------

    def _require(self, *allowed: TicketStatus, doing: str) -> None:
        if self.status not in allowed:
            raise Conflict(f"ticket {self.number} is {self.status}; cannot {doing} (needs {' or '.join(allowed)})")

    def call(self, window_id: str, at: datetime, *, out_of_order: bool = False) -> None:
        self._require("waiting", doing="call it")
        self.status, self.window_id, self.call_count, self.called_at = "called", window_id, 1, at
        self.out_of_order = out_of_order
        self.record(
            TicketCalled(
                ticket_id=self.id,
                number=self.number,
                category=self.category,
                window_id=window_id,
                call_count=1,
                out_of_order=out_of_order,
            ),
            at=at,
            correlation_id=self.id,
        )

    def recall(self, at: datetime) -> None:
        self._require("called", doing="recall it")
        if self.call_count >= MAX_CALLS:
            raise Conflict(f"ticket {self.number} was called {self.call_count} times already; mark it a no-show")
        self.call_count += 1
        self.called_at = at
        assert self.window_id is not None
        self.record(
            TicketRecalled(
                ticket_id=self.id,
                number=self.number,
                category=self.category,
                window_id=self.window_id,
                call_count=self.call_count,
            ),
            at=at,
            correlation_id=self.id,
        )

    def mark_no_show(self, at: datetime) -> None:
        self._require("called", doing="mark it a no-show")
        self.status, self.no_show_at = "no_show", at
        self.record(
            TicketNoShow(
                ticket_id=self.id,
                number=self.number,
                category=self.category,
                window_id=self.window_id,
                call_count=self.call_count,
                rejoin_until=at + REJOIN_WITHIN,
            ),
            at=at,
            correlation_id=self.id,
        )

    def rejoin(self, at: datetime) -> None:
        """A no-show who turns up within ten minutes goes back to waiting, keeping their place."""
        self._require("no_show", doing="rejoin")
        assert self.no_show_at is not None
        if at - self.no_show_at > REJOIN_WITHIN:
            raise Conflict(f"ticket {self.number} missed its call over {REJOIN_WITHIN.seconds // 60} minutes ago")
        self.status, self.window_id, self.call_count, self.no_show_at = "waiting", None, 0, None

    def start(self, at: datetime, staff_id: str | None = None) -> None:
        self._require("called", doing="start service")
        self.status, self.started_at, self.staff_id = "serving", at, staff_id
        assert self.window_id is not None
        self.record(
            TicketServiceStarted(
                ticket_id=self.id,
                number=self.number,
                category=self.category,
                window_id=self.window_id,
                staff_id=staff_id,
                wait_s=self.wait_s,
            ),
            at=at,
            correlation_id=self.id,
        )

    def complete(self, outcome: Outcome, at: datetime) -> None:
        self._require("serving", doing="complete it")
        self.status, self.outcome, self.completed_at = "done", outcome, at
        assert self.window_id is not None
        self.record(
            TicketCompleted(
                ticket_id=self.id,
                outcome=outcome,
                window_id=self.window_id,
                wait_s=self.wait_s,
                service_s=self.service_s,
                number=self.number,
                category=self.category,
                item_code=self.item_code,
                staff_id=self.staff_id,
            ),
            at=at,
            correlation_id=self.id,
        )

    def transfer(self, category: str, number: str, at: datetime) -> None:
        """To another category's queue, with a number there, keeping the original issue time."""
        self._require("waiting", "called", "serving", doing="transfer it")
        if category == self.category:
            raise Conflict(f"ticket {self.number} is in category {category} already")
        previous, window = self.category, self.window_id
        self.category, self.number, self.status = category, number, "waiting"
        self.window_id, self.call_count, self.called_at, self.started_at = None, 0, None, None
        self.approaching_sent = False
        self.record(
            TicketTransferred(
                ticket_id=self.id,
                number=number,
                from_category=previous,
                to_category=category,
                window_id=window,
                issued_at=self.issued_at,
            ),
            at=at,
            correlation_id=self.id,
        )

    def cancel(self, at: datetime, reason: str | None = None) -> None:
        self._require("waiting", "called", "no_show", doing="cancel it")
        self.status = "cancelled"
        self.record(
            TicketCancelled(ticket_id=self.id, number=self.number, category=self.category, reason=reason),
            at=at,
            correlation_id=self.id,
        )

    def approach(self, position: int, estimated_wait_s: float, at: datetime) -> None:
        """Tell the citizen it is nearly their turn — once, at position 3 or nearer."""
        if self.status != "waiting" or self.approaching_sent or position > APPROACHING_AT:
            return
        self.approaching_sent = True
        self.record(
            TicketApproaching(
                ticket_id=self.id,
                number=self.number,
                category=self.category,
                position=position,
                estimated_wait_s=estimated_wait_s,
            ),
            at=at,
            correlation_id=self.id,
        )

    @property
    def wait_s(self) -> float:
        """From the original issue to the start of service (or to now-ish, the last call)."""
        end = self.started_at or self.called_at or self.issued_at
        return max((end - self.issued_at).total_seconds(), 0.0)

    @property
    def service_s(self) -> float:
        if self.started_at is None or self.completed_at is None:
            return 0.0
        return max((self.completed_at - self.started_at).total_seconds(), 0.0)

    @property
    def breaks_one_trip_promise(self) -> bool:
        """`needs_materials` sends the citizen home to come back: the promise is broken."""
        return self.outcome == "needs_materials"


# --- who is next ---------------------------------------------------------------------------------


class Queued(Protocol):
    """What ordering a line needs of a ticket: a `Ticket`, or the light `InLine` read of one."""

    @property
    def id(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def priority(self) -> Priority | None: ...
    @property
    def issued_at(self) -> datetime: ...
    @property
    def status(self) -> TicketStatus: ...


Q = TypeVar("Q", bound=Queued)


@dataclass(slots=True)
class InLine:
    """A waiting ticket as the line reads it, often and in bulk: just what ordering and the
    approaching notice need (a whole `Ticket` per row cost most of each read)."""

    id: str
    number: str
    category: str
    issued_at: datetime
    day: str
    priority: Priority | None = None
    status: TicketStatus = "waiting"
    approaching_sent: bool = False

    @classmethod
    def of(cls, ticket: Ticket) -> InLine:
        return cls(
            id=ticket.id,
            number=ticket.number,
            category=ticket.category,
            issued_at=ticket.issued_at,
            day=ticket.day,
            priority=ticket.priority,
            status=ticket.status,
            approaching_sent=ticket.approaching_sent,
        )


def is_promoted(ticket: Queued, now: datetime, target_wait: timedelta) -> bool:
    """A normal ticket that has waited past its category's target goes ahead, so nobody starves."""
    return ticket.priority is None and now - ticket.issued_at > target_wait


def queue_order(ticket: Queued, now: datetime, target_wait: timedelta) -> tuple[int, datetime, str]:
    """Priority tickets and promoted ones first, then everyone else; within each, first come."""
    ahead = ticket.priority is not None or is_promoted(ticket, now, target_wait)
    return (0 if ahead else 1, ticket.issued_at, ticket.number)


def next_ticket_for_window(
    waiting: Iterable[Q], serves: Iterable[str], categories: dict[str, Category], now: datetime
) -> list[Q]:
    """The waiting tickets a window may call, best first (the caller claims the first it can)."""
    served = set(serves)
    mine = [t for t in waiting if t.status == "waiting" and t.category in served]
    return sorted(mine, key=lambda t: queue_order(t, now, categories[t.category].target_wait))


def positions(waiting: Iterable[Queued], category: Category, now: datetime) -> dict[str, int]:
    """Each waiting ticket's place in its category's queue, from 1."""
    line = sorted(
        (t for t in waiting if t.status == "waiting" and t.category == category.code),
        key=lambda t: queue_order(t, now, category.target_wait),
    )
    return {t.id: n for n, t in enumerate(line, start=1)}


def estimated_wait(position: int, service_time: timedelta, open_windows: int) -> timedelta:
    """Those ahead, times a service, shared by the open windows (none open: as if one opens)."""
    return (position - 1) * service_time / max(open_windows, 1)


# --- windows and lunch in turns -------------------------------------------------------------------


class Window(Aggregate):
    categories: list[str]
    name_zh: str = ""
    state: WindowState = "closed"
    staff_id: str | None = None
    pause_reason: PauseReason | None = None
    out_of_order_calls: int = 0

    def _require(self, *allowed: WindowState, doing: str) -> None:
        if self.state not in allowed:
            raise Conflict(f"window {self.id} is {self.state}; cannot {doing} (needs {' or '.join(allowed)})")

    def open(self, staff_id: str, at: datetime) -> None:
        self._require("closed", doing="open it")
        self.state, self.staff_id, self.pause_reason = "open", staff_id, None
        self.record(WindowOpened(window_id=self.id, staff_id=staff_id, categories=self.categories), at=at)

    def pause(self, reason: PauseReason, at: datetime, *, forced: bool = False) -> None:
        self.can_pause()
        self.state, self.pause_reason = "paused", reason
        self.record(WindowPaused(window_id=self.id, reason=reason, forced=forced, staff_id=self.staff_id), at=at)

    def resume(self, at: datetime) -> None:
        self._require("paused", doing="resume it")
        self.state, self.pause_reason = "open", None
        self.record(WindowResumed(window_id=self.id, staff_id=self.staff_id), at=at)

    def close(self, at: datetime) -> None:
        self.can_close()
        staff, self.state, self.staff_id, self.pause_reason = self.staff_id, "closed", None, None
        self.record(WindowClosed(window_id=self.id, staff_id=staff), at=at)

    def can_call(self) -> None:
        self._require("open", doing="call tickets")

    def can_pause(self) -> None:
        self._require("open", doing="pause it")

    def can_close(self) -> None:
        self._require("open", "paused", doing="close it")

    def serves(self, category: str) -> bool:
        return category in self.categories


def pausing_leaves_category_uncovered(
    window_id: str, serves: Iterable[str], open_for: Mapping[str, Sequence[str]]
) -> list[str]:
    """The categories a window serves that no other open window serves (`open_for`: category →
    its open windows): pausing it would leave them without a window ("lunch in turns, windows
    stay staffed")."""
    return sorted(c for c in serves if not any(other != window_id for other in open_for.get(c, ())))


def uncovered_categories(open_for: Mapping[str, Sequence[str]], categories: Iterable[str]) -> set[str]:
    """Categories with no open window right now (`open_for`: category → its open windows)."""
    return {c for c in categories if not open_for.get(c)}


LEAVING_GRACE = timedelta(minutes=2)
"""How long the coverage waits for the write of a window that it let pause or close: a window
still open after that lost its write (the process died between the two) and covers again."""


class WindowCover(BaseModel):
    """What the coverage knows of one window."""

    categories: list[str]
    open: bool = False
    version: int = 0
    """The window's version this reflects: an older read of the window changes nothing."""
    leaving_since: datetime | None = None
    """A pause or close took the window out; the window's own write follows."""


class Coverage(Aggregate):
    """Which windows are open for each category, and which categories have no open window, as
    announced (one document, id `coverage`).

    The lunch rule spans windows, so what it decides lives here: every window that opens,
    resumes, pauses or closes updates this one document with its version, and two pauses racing
    for the last two open windows of a category cannot both pass. The document only ever claims
    a window open after the window's own write says so: open and resume write the window first,
    pause and close this document first and then the window only if it has not changed since it
    was read. A crash between the two writes leaves a window counted out that is open, never
    counted in that is not; the watchdog's `mend` and `left_open` put it back."""

    gaps: dict[str, datetime] = Field(default_factory=dict)
    """category → when its gap opened."""
    windows: dict[str, WindowCover] = Field(default_factory=dict)

    def open_for(self) -> dict[str, list[str]]:
        """category → the windows open for it."""
        found: dict[str, list[str]] = {}
        for window_id, cover in sorted(self.windows.items()):
            for category in cover.categories if cover.open else ():
                found.setdefault(category, []).append(window_id)
        return found

    def enter(self, window: Window) -> None:
        """`window` is open, as written at its version: it covers its categories."""
        known = self.windows.get(window.id)
        if known is not None and (
            window.version < known.version or (known.leaving_since is not None and window.version <= known.version)
        ):
            return  # a pause or close that read it after this write has taken it out again
        self.windows[window.id] = WindowCover(categories=list(window.categories), open=True, version=window.version)

    def leave(self, window: Window, at: datetime, *, lunch_rule: bool) -> None:
        """`window`, as read at its version, is about to pause or close: it covers nothing from
        now on. With `lunch_rule`, refuse when that would leave a category it serves with no
        open window."""
        if lunch_rule:
            left = pausing_leaves_category_uncovered(window.id, window.categories, self.open_for())
            if left:
                raise Conflict(
                    f"pausing window {window.id} would leave category {', '.join(left)} with no open window; "
                    "take lunch in turns, or an ops token may force it"
                )
        known = self.windows.get(window.id)
        version = max(window.version, known.version if known else 0)
        self.windows[window.id] = WindowCover(
            categories=list(window.categories), open=False, version=version, leaving_since=at
        )

    def mend(self, windows: Iterable[Window]) -> None:
        """Bring the coverage in line with the windows as read just before this write: a window
        this document has not heard of, or read at a newer version than it knows (an open or
        resume whose write here was lost, a pause or close that has landed). A read older than
        what the document knows changes nothing, and a window it let pause or close that still
        reads open is left out (its write is on its way, or was lost: `left_open`)."""
        for window in windows:
            is_open = window.state == "open"
            known = self.windows.get(window.id)
            if known is not None:
                if window.version < known.version:
                    continue
                if known.leaving_since is not None and is_open:
                    continue
                if known.leaving_since is None and window.version == known.version:
                    continue
            self.windows[window.id] = WindowCover(
                categories=list(window.categories), open=is_open, version=window.version
            )

    def left_open(self, windows: Iterable[Window], at: datetime) -> list[str]:
        """The windows this document let pause or close that still read open `LEAVING_GRACE`
        later: the process died before their own write, and they should count as open again."""
        found = []
        for window in windows:
            known = self.windows.get(window.id)
            if (
                window.state == "open"
                and known is not None
                and known.leaving_since is not None
                and window.version >= known.version
                and at - known.leaving_since >= LEAVING_GRACE
            ):
                found.append(window.id)
        return found

    def observe(self, uncovered: set[str], at: datetime) -> None:
        """Announce the gaps that opened and closed since the last look."""
        for category in sorted(uncovered - self.gaps.keys()):
            self.gaps[category] = at
            self.record(CoverageGapOpened(category=category, opened_at=at), at=at)
        for category in sorted(self.gaps.keys() - uncovered):
            opened = self.gaps.pop(category)
            self.record(CoverageGapClosed(category=category, opened_at=opened, closed_at=at), at=at)


# --- the day's figures ---------------------------------------------------------------------------


def _figures(tickets: list[Ticket], categories: dict[str, Category]) -> dict[str, float | int | None]:
    started = [t for t in tickets if t.started_at is not None]
    served = [t for t in tickets if t.status == "done"]
    on_time = [t for t in started if t.wait_s <= categories[t.category].target_wait.total_seconds()]
    return {
        "issued": len(tickets),
        "served": len(served),
        "no_shows": sum(1 for t in tickets if t.status == "no_show"),
        "cancelled": sum(1 for t in tickets if t.status == "cancelled"),
        "waiting": sum(1 for t in tickets if t.status == "waiting"),
        "average_wait_s": sum(t.wait_s for t in started) / len(started) if started else None,
        "average_service_s": sum(t.service_s for t in served) / len(served) if served else None,
        "service_level": len(on_time) / len(started) if started else None,
        "one_trip_breaches": sum(1 for t in served if t.breaks_one_trip_promise),
    }


def daily_stats(tickets: list[Ticket], categories: dict[str, Category]) -> dict[str, object]:
    """The day at a glance, overall, per category and per window. Service level is the share of
    tickets whose service started within their category's target wait."""
    by_window: dict[str, list[Ticket]] = {}
    for ticket in tickets:
        if ticket.window_id is not None and ticket.started_at is not None:
            by_window.setdefault(ticket.window_id, []).append(ticket)
    return {
        **_figures(tickets, categories),
        "by_category": {
            code: _figures([t for t in tickets if t.category == code], categories)
            for code in sorted({t.category for t in tickets})
        },
        "by_window": {window: _figures(mine, categories) for window, mine in sorted(by_window.items())},
    }
