"""The queue's use cases: what a kiosk, a window or an event asks of it, on top of the rules."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from goldenkey.contracts import CloudEvent, TicketPaged
from goldenkey.contracts.vocabulary import Channel, Need, PauseReason, Priority
from goldenkey.kit import (
    AlreadyExists,
    BusinessCalendar,
    Clock,
    ConcurrencyError,
    Conflict,
    Invalid,
    Missing,
    NotFound,
)
from goldenkey.kit.pii import InvalidPlate, mask_plate, normalise_phone, normalise_plate, plate_hash
from goldenkey.queue.domain import (
    APPROACHING_AT,
    Category,
    Coverage,
    InLine,
    Ticket,
    TicketStatus,
    Window,
    daily_stats,
    estimated_wait,
    new_slip_code,
    next_ticket_for_window,
    positions,
    queue_order,
    ticket_number,
    uncovered_categories,
)
from goldenkey.queue.metrics import QueueMetrics
from goldenkey.queue.store import WAITING_TTL_S, QueueStore

COVERAGE_ID = "coverage"
LEFT_AT_CLOSING = ("waiting", "called", "no_show")
CLOSED = ("done", "cancelled")
DAY_ENDED = "the business day ended"
STEP_ATTEMPTS = 10
"""How often a pause or close is decided again when the window changed between its read and its write."""


@dataclass
class WaitingLine:
    """The day's waiting tickets as `call_next` last read them, plus those this instance issued
    since, less those its calls claimed."""

    day: date
    read_at: float
    """When it was read (monotonic seconds): calls go by it for `WAITING_TTL_S` at most."""
    tickets: list[InLine]


class QueueService:
    def __init__(
        self, store: QueueStore, clock: Clock, calendar: BusinessCalendar, pii_key: str, metrics: QueueMetrics
    ) -> None:
        self._calling = asyncio.Lock()
        """This instance's `call-next`s take turns (see `call_next`)."""
        self._line: WaitingLine | None = None
        self.metrics = metrics
        self.store = store
        self.clock = clock
        self.calendar = calendar
        self.pii_key = pii_key

    def today(self) -> tuple[datetime, str]:
        now = self.clock.now()
        return now, self.calendar.business_day(now).isoformat()

    # --- tickets -------------------------------------------------------------------------------

    async def issue(
        self,
        ticket_id: str,
        *,
        item_code: str,
        channel: Channel,
        priority: Priority | None,
        needs: list[Need],
        phone: str | None,
        plate: str | None,
        retry: bool = True,
    ) -> tuple[Ticket, int | None, float | None, str]:
        """Issue a ticket; with its position and estimated wait (None when it existed already),
        and the code for its slip (kept only as a hash).

        `retry=False` says no earlier attempt can have created it (a first Idempotency-Key, or
        none): the look for it is skipped. Were it there after all, the insert finds it, at the
        cost of a number left unused."""
        existing = await self.store.tickets.get(ticket_id) if retry else None
        if existing is not None:  # a retried request that ran before: the first ticket stands
            reprinted, code = await self._reprint(ticket_id)
            return reprinted, None, None, code
        item = await self.store.item(item_code)
        if item is None:
            raise Invalid(f"unknown service item {item_code!r}; see GET /catalog")
        try:
            phone = normalise_phone(phone) if phone else None
            plate = normalise_plate(plate) if plate else None
        except (InvalidPlate, ValueError) as error:
            raise Invalid(str(error)) from None
        categories = await self.store.categories()
        category = categories[item["category"]]
        now = self.clock.now()
        day = self.calendar.business_day(now)
        number = ticket_number(category.code, await self.store.next_number(day, category.code))
        service, open_windows = await self._estimate_basis(category)
        waiting = await self.store.waiting_line(day, category.code)
        # From here to joining the line, no await: this instance's concurrent requests count each other.
        # Everyone waiting came earlier: a normal ticket has them all ahead, a priority ticket only
        # the priority and promoted ones.
        position = 1 + sum(1 for t in waiting if priority is None or queue_order(t, now, category.target_wait)[0] == 0)
        wait = estimated_wait(position, service, open_windows).total_seconds()
        slip_code = new_slip_code()
        ticket = Ticket.issue(
            ticket_id=ticket_id,
            number=number,
            category=category.code,
            item_code=item_code,
            channel=channel,
            at=now,
            day=day,
            priority=priority,
            needs=needs,
            phone=phone,
            plate_hash=plate_hash(self.pii_key, plate) if plate else None,
            plate_masked=mask_plate(plate) if plate else None,
            position=position,
            estimated_wait_s=wait,
            slip_code=slip_code,
        )
        ticket.approach(position, wait, now)  # near the front already: told in the same write
        in_line = InLine.of(ticket)
        waiting.append(in_line)
        try:
            await self.store.tickets.add(ticket)
        except AlreadyExists:
            waiting.remove(in_line)
            reprinted, code = await self._reprint(ticket_id)
            return reprinted, None, None, code
        except BaseException:
            waiting.remove(in_line)
            raise
        self.metrics.ticket_issued(ticket)
        self._joined_line(in_line)
        await self.announce_approaching(category.code, waiting)
        return ticket, position, wait, slip_code

    async def _reprint(self, ticket_id: str) -> tuple[Ticket, str]:
        """A retried issue whose first answer never reached the kiosk: the code that answer
        carried is known only by its hash, so the slip gets a new one."""
        slip_code = new_slip_code()
        return await self.store.tickets.update(ticket_id, lambda t: t.new_slip(slip_code)), slip_code

    async def status(self, ticket_id: str) -> tuple[Ticket, int | None, float | None]:
        ticket = await self.store.tickets.get(ticket_id) or await self.store.tickets.find_archived(ticket_id)
        if ticket is None:
            raise NotFound(f"Ticket {ticket_id} not found")
        if ticket.status != "waiting":
            return ticket, None, None
        categories = await self.store.categories()
        category = categories[ticket.category]
        now = self.clock.now()
        place = positions(await self.store.waiting(self.calendar.business_day(now), [ticket.category]), category, now)
        position = place.get(ticket.id)
        wait = await self._estimate(category, position, ticket.day) if position else None
        return ticket, position, wait

    async def _estimate(self, category: Category, position: int, day: str) -> float:
        service, open_windows = await self._estimate_basis(category)
        return estimated_wait(position, service, open_windows).total_seconds()

    async def _estimate_basis(self, category: Category) -> tuple[timedelta, int]:
        """A recent service time and the open windows of a category: what a wait is estimated from."""
        service = await self.store.recent_service_time(category, self.calendar.business_day(self.clock.now()))
        return service, await self.store.open_windows(category.code)

    async def act(self, ticket_id: str, action: Callable[[Ticket, datetime], None]) -> Ticket:
        """Apply one step of the lifecycle to a ticket, then tell those now near the front."""
        was: list[TicketStatus] = []

        def step(t: Ticket) -> None:
            was.append(t.status)  # as read by the write that lands (the last of its tries)
            action(t, self.clock.now())

        ticket = await self.store.tickets.update(ticket_id, step)
        before = was[-1]
        if before != ticket.status and ticket.status == "serving":
            self.metrics.ticket_started(ticket)
        if before != ticket.status and ticket.status == "done":
            self.metrics.ticket_completed(ticket)
            self.store.cache.forget("service/")
        if "waiting" in (before, ticket.status):  # start, recall, complete move nobody up the line
            self.store.lines_changed()
            self._line = None
            await self.announce_approaching(ticket.category)
        return ticket

    async def stats_today(self) -> dict[str, object]:
        day = self.calendar.business_day(self.clock.now())
        return {"day": day.isoformat(), **daily_stats(await self.store.of_day(day), await self.store.categories())}

    async def transfer(
        self, ticket_id: str, category_code: str, check: Callable[[Ticket], None] = lambda _: None
    ) -> Ticket:
        categories = await self.store.categories()
        if category_code not in categories:
            raise Invalid(f"unknown category {category_code!r}; see GET /categories")
        now = self.clock.now()
        number = ticket_number(
            category_code, await self.store.next_number(self.calendar.business_day(now), category_code)
        )

        def transfer(t: Ticket) -> None:
            check(t)
            t.transfer(category_code, number, now)

        ticket = await self.store.tickets.update(ticket_id, transfer)
        self.store.lines_changed()
        self._line = None
        await self.announce_approaching(category_code)
        return ticket

    async def announce_approaching(self, category_code: str, waiting: list[InLine] | None = None) -> None:
        """`ticket.approaching`, once, for every waiting ticket now at position 3 or nearer."""
        categories = await self.store.categories()
        category = categories[category_code]
        now = self.clock.now()
        if waiting is None:
            waiting = await self.store.waiting(self.calendar.business_day(now), [category_code])
        by_id = {t.id: t for t in waiting if t.category == category_code}
        for ticket_id, position in positions(by_id.values(), category, now).items():
            ticket = by_id[ticket_id]
            if position <= APPROACHING_AT and not ticket.approaching_sent:
                wait = await self._estimate(category, position, ticket.day)
                # A ticket in this instance's line whose issue is still writing it: that issue tells it.
                with contextlib.suppress(NotFound):
                    await self.store.tickets.update(ticket_id, lambda t, p=position, w=wait: t.approach(p, w, now))
                    ticket.approaching_sent = True  # the line as read may be used again (`call_next`)

    # --- windows -------------------------------------------------------------------------------

    async def start_service(
        self, ticket_id: str, staff_id: str | None, check: Callable[[Ticket], None] = lambda _: None
    ) -> Ticket:
        """The citizen sits down at the window: served by `staff_id`, or by whoever opened the
        window (so a rating of the visit knows whom it rates)."""
        if staff_id is None:
            ticket = await self.store.tickets.require(ticket_id)
            window = await self.store.windows.get(ticket.window_id) if ticket.window_id else None
            staff_id = window.staff_id if window is not None else None

        def start(t: Ticket, at: datetime) -> None:
            check(t)
            t.start(at, staff_id)

        return await self.act(ticket_id, start)

    async def window(self, window_id: str) -> Window:
        try:
            return await self.store.windows.require(window_id)
        except NotFound:
            raise Missing(f"no window {window_id}") from None

    async def open_window(self, window_id: str, staff_id: str) -> Window:
        return await self._coming_in(window_id, lambda w, at: w.open(staff_id, at))

    async def resume(self, window_id: str) -> Window:
        return await self._coming_in(window_id, Window.resume)

    async def pause(self, window_id: str, reason: PauseReason, *, force: bool) -> Window:
        """Pause a window, unless (in business hours, not forced) that would leave a category it
        serves with no open window: decided on the coverage document, with its version, so of two
        pauses racing for a category's last two open windows one is refused."""
        lunch_rule = self.calendar.is_open(self.clock.now()) and not force
        return await self._going_out(
            window_id, Window.can_pause, lambda w, at: w.pause(reason, at, forced=force), lunch_rule=lunch_rule
        )

    async def close(self, window_id: str) -> Window:
        return await self._going_out(window_id, Window.can_close, Window.close, lunch_rule=False)

    async def _coming_in(self, window_id: str, step: Callable[[Window, datetime], None]) -> Window:
        """Open or resume: the window's write first, then the coverage's (which so never counts
        a window open that is not)."""
        await self.window(window_id)
        window = await self.store.windows.update(window_id, lambda w: step(w, self.clock.now()))
        self.store.cache.forget("windows")
        await self._cover(_entering(window))
        return window

    async def _going_out(
        self,
        window_id: str,
        allowed: Callable[[Window], None],
        step: Callable[[Window, datetime], None],
        *,
        lunch_rule: bool,
    ) -> Window:
        """Pause or close: the coverage's write first (where the lunch rule is decided), then the
        window's, only if the window is still as read before the coverage's (else decide again).
        A crash in between leaves the window counted out while open, which the watchdog undoes."""
        for _ in range(STEP_ATTEMPTS):
            window = await self.window(window_id)
            allowed(window)
            await self._cover(_leaving(window, lunch_rule=lunch_rule))
            step(window, self.clock.now())
            try:
                window = await self.store.windows.save(window)
            except ConcurrencyError:  # it changed since it was read (a resume, another pause): again
                continue
            self.store.cache.forget("windows")
            return window
        raise Conflict(f"window {window_id} kept changing while it was being paused or closed; try again")

    async def _cover(self, change: Callable[[Coverage, datetime], None]) -> Coverage:
        """One versioned write of the coverage document: `change`, and the gaps that opens or closes
        announced (in business hours; outside them, every gap closes)."""
        categories = await self.store.categories()

        def apply(coverage: Coverage) -> None:
            now = self.clock.now()
            change(coverage, now)
            open_hall = self.calendar.is_open(now)
            coverage.observe(uncovered_categories(coverage.open_for(), categories) if open_hall else set(), now)

        try:
            return await self.store.coverage.update(COVERAGE_ID, apply)
        except NotFound:  # the first window step of a new hall: made from the windows first
            await self.watch_coverage()
            return await self.store.coverage.update(COVERAGE_ID, apply)

    async def call_next(self, window_id: str) -> Ticket | None:
        """Claim the best waiting ticket this window serves. Two windows calling at once never get
        the same ticket: the claim is a versioned write of the ticket, and the loser tries the next.

        This instance's calls take turns, so they do not all go for the same ticket (a loser
        working down a line read before the winners' claims fell ever further behind). They go by
        one waiting line: read at most `WAITING_TTL_S` ago, with the tickets this instance issued
        since, less those its calls claimed. (Reading the day's line for every call made the calls
        of 58 windows queue behind each other's reads.) Only a ticket issued within that second by
        another instance, or while the line was being read, can be overtaken; and a call that
        finds nobody reads afresh before it answers so, so a window is never told "nobody" while
        someone waits."""
        window = await self.window(window_id)
        window.can_call()
        categories = await self.store.categories()
        async with self._calling:
            day = self.calendar.business_day(self.clock.now())
            line = self._line
            fresh = line is None or line.day != day or time.monotonic() - line.read_at > WAITING_TTL_S
            ticket = await self._claim(window, categories, day, fresh)
            if ticket is None and not fresh:
                ticket = await self._claim(window, categories, day, fresh=True)
            line = self._line
            still_waiting = [t for t in line.tickets if t.category == ticket.category] if ticket and line else []
        if ticket is None:
            return None
        self.store.left_line(day, ticket.category, ticket.id)
        await self.announce_approaching(ticket.category, still_waiting)
        return ticket

    async def _claim(self, window: Window, categories: dict[str, Category], day: date, fresh: bool) -> Ticket | None:
        """The best ticket of the line (read afresh if `fresh`) this window could claim, claimed."""
        if fresh or self._line is None:
            self._line = WaitingLine(day, time.monotonic(), await self.store.waiting(day))
        line = self._line
        try:
            for candidate in next_ticket_for_window(line.tickets, window.categories, categories, self.clock.now()):
                line.tickets.remove(candidate)  # claimed now, or not waiting any more
                try:
                    return await self.store.tickets.update(candidate.id, lambda t: t.call(window.id, self.clock.now()))
                except (Conflict, NotFound):  # another instance's window was quicker
                    continue
        except BaseException:  # a claim whose outcome is unknown: the next call reads afresh
            self._line = None
            raise
        return None

    def _joined_line(self, ticket: InLine) -> None:
        """A ticket this instance issued is in the line its calls go by at once."""
        if self._line is not None and self._line.day.isoformat() == ticket.day:
            self._line.tickets.append(ticket)

    async def call_ticket(self, window_id: str, ticket_id: str) -> Ticket:
        """Call one ticket out of order (logged and counted per window)."""
        window = await self.window(window_id)
        window.can_call()

        def call(t: Ticket) -> None:  # the category checked in the write: a transfer may be landing
            if not window.serves(t.category):
                raise Conflict(f"window {window_id} does not serve category {t.category} of ticket {t.number}")
            t.call(window_id, self.clock.now(), out_of_order=True)

        ticket = await self.store.tickets.update(ticket_id, call)
        self.store.lines_changed()
        await self.store.windows.update(window_id, _count_out_of_order)
        await self.announce_approaching(ticket.category)
        return ticket

    async def watch_coverage(self) -> None:
        """Mend the coverage from the windows (what a crash between a window's write and the
        coverage's left behind), and announce categories left with no open window during business
        hours, and their end."""
        windows = await self.store.all_windows()  # read before the write: mend trusts no older read
        try:
            await self.store.coverage.add(_new_coverage())
        except AlreadyExists:
            pass
        coverage = await self._cover(lambda c, _: c.mend(windows))
        for window_id in coverage.left_open(windows, self.clock.now()):
            # Its pause or close was never written. A write of the window first (a new version, so
            # the lost write, were it only late, can no longer land), then it counts as open again.
            window = await self.store.windows.update(window_id, _touch, write_unchanged=True)
            if window.state == "open":
                await self._cover(_entering(window))

    async def close_earlier_days(self) -> int:
        """Cancel what earlier business days left waiting, called or missed: those citizens have
        gone home, and their visits end (a concierge asks their loans back). Serving tickets stay
        for their window to complete. How many it cancelled.

        Earlier days' closed tickets, once their events are out, move to the archive: the working
        collection holds about one day, so the reads a day makes stay as fast on day 300 as on
        day 1 (docs/decisions.md, "Storage")."""
        today = self.calendar.business_day(self.clock.now()).isoformat()
        left = await self.store.tickets.find({"status": {"$in": list(LEFT_AT_CLOSING)}, "day": {"$lt": today}})
        for ticket in left:
            with contextlib.suppress(Conflict):  # served or cancelled meanwhile
                await self.store.tickets.update(ticket.id, lambda t: t.cancel(self.clock.now(), DAY_ENDED))
        # Claimed numbers only matter while their day can still hand some out: keep yesterday's
        # for a request still claiming one across midnight, drop the rest (keeps `numbers` small).
        before_yesterday = (self.calendar.business_day(self.clock.now()) - timedelta(days=1)).isoformat()
        await self.store.forget_numbers_before(before_yesterday)
        await self.store.tickets.archive({"day": {"$lt": today}, "status": {"$in": list(CLOSED)}})
        return len(left)

    # --- events --------------------------------------------------------------------------------

    async def page_owner(self, envelope: CloudEvent, ticket_id: str | None, plate: str | None, message: str) -> None:
        """A guard's report names a ticket, or a plate of a live ticket: page its holder where they are."""
        day = self.calendar.business_day(self.clock.now())
        ticket = await self.store.tickets.get(ticket_id) if ticket_id else None
        if ticket is None and plate:
            ticket = await self.store.live_ticket_with_plate(plate, day)
        if ticket is None or ticket.status in ("done", "cancelled"):
            return
        incident_id = envelope.data.get("incident_id")

        def page(t: Ticket) -> None:
            if t.status in ("done", "cancelled"):  # the visit ended since it was read
                return
            window = t.window_id if t.status in ("called", "serving") else None
            t.record(
                TicketPaged(
                    ticket_id=t.id, message=message, window_id=window, incident_id=incident_id, number=t.number
                ),
                at=self.clock.now(),
                causation=envelope,
            )

        await self.store.tickets.update(ticket.id, page, cause=envelope)


def _count_out_of_order(window: Window) -> None:
    window.out_of_order_calls += 1


def _entering(window: Window) -> Callable[[Coverage, datetime], None]:
    return lambda coverage, _: coverage.enter(window)


def _leaving(window: Window, *, lunch_rule: bool) -> Callable[[Coverage, datetime], None]:
    return lambda coverage, at: coverage.leave(window, at, lunch_rule=lunch_rule)


def _touch(window: Window) -> None:
    """No change: the write gives the window a new version."""


def _new_coverage() -> Coverage:
    return Coverage(id=COVERAGE_ID)
