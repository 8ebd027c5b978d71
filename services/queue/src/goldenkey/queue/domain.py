"""The queue's rules, without I/O: tickets and their lifecycle, who is called next, windows and
the rule that lunch is taken in turns so no category is left without an open window."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import Field

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

TicketStatus = Literal["waiting", "called", "serving", "done", "no_show", "cancelled"]
WindowState = Literal["closed", "open", "paused"]

MAX_CALLS = 3
"""A called ticket is called at most this many times before it is a no-show."""
REJOIN_WITHIN = timedelta(minutes=10)
"""A no-show may rejoin within this long without losing its place."""
APPROACHING_AT = 3
"""`ticket.approaching` goes out once, when a ticket reaches this position."""


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


def is_promoted(ticket: Ticket, now: datetime, target_wait: timedelta) -> bool:
    """A normal ticket that has waited past its category's target goes ahead, so nobody starves."""
    return ticket.priority is None and now - ticket.issued_at > target_wait


def queue_order(ticket: Ticket, now: datetime, target_wait: timedelta) -> tuple[int, datetime, str]:
    """Priority tickets and promoted ones first, then everyone else; within each, first come."""
    ahead = ticket.priority is not None or is_promoted(ticket, now, target_wait)
    return (0 if ahead else 1, ticket.issued_at, ticket.number)


def next_ticket_for_window(
    waiting: Iterable[Ticket], serves: Iterable[str], categories: dict[str, Category], now: datetime
) -> list[Ticket]:
    """The waiting tickets a window may call, best first (the caller claims the first it can)."""
    served = set(serves)
    mine = [t for t in waiting if t.status == "waiting" and t.category in served]
    return sorted(mine, key=lambda t: queue_order(t, now, categories[t.category].target_wait))


def positions(waiting: Iterable[Ticket], category: Category, now: datetime) -> dict[str, int]:
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
        self._require("open", doing="pause it")
        self.state, self.pause_reason = "paused", reason
        self.record(WindowPaused(window_id=self.id, reason=reason, forced=forced, staff_id=self.staff_id), at=at)

    def resume(self, at: datetime) -> None:
        self._require("paused", doing="resume it")
        self.state, self.pause_reason = "open", None
        self.record(WindowResumed(window_id=self.id, staff_id=self.staff_id), at=at)

    def close(self, at: datetime) -> None:
        self._require("open", "paused", doing="close it")
        staff, self.state, self.staff_id, self.pause_reason = self.staff_id, "closed", None, None
        self.record(WindowClosed(window_id=self.id, staff_id=staff), at=at)

    def can_call(self) -> None:
        self._require("open", doing="call tickets")

    def serves(self, category: str) -> bool:
        return category in self.categories


def pausing_leaves_category_uncovered(window: Window, windows: Iterable[Window]) -> list[str]:
    """The categories `window` serves that no other open window serves: pausing would leave them
    without a window ("lunch in turns, windows stay staffed")."""
    others_cover = {c for w in windows if w.id != window.id and w.state == "open" for c in w.categories}
    return sorted(c for c in window.categories if c not in others_cover)


def uncovered_categories(windows: Iterable[Window], categories: Iterable[str]) -> set[str]:
    """Categories with no open window right now."""
    covered = {c for w in windows if w.state == "open" for c in w.categories}
    return {c for c in categories if c not in covered}


class Coverage(Aggregate):
    """Which categories have no open window, as last announced (one document, id `coverage`)."""

    gaps: dict[str, datetime] = Field(default_factory=dict)
    """category → when its gap opened."""

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
