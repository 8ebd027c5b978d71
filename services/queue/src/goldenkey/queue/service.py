"""The queue's use cases: what a kiosk, a window or an event asks of it, on top of the rules."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from goldenkey.contracts import CloudEvent, TicketPaged
from goldenkey.contracts.vocabulary import Channel, Need, PauseReason, Priority
from goldenkey.kit import AlreadyExists, BusinessCalendar, Clock, Conflict, Invalid, Missing, NotFound
from goldenkey.kit.pii import InvalidPlate, mask_plate, normalise_phone, normalise_plate, plate_hash
from goldenkey.queue.domain import (
    APPROACHING_AT,
    Category,
    Coverage,
    Ticket,
    Window,
    daily_stats,
    estimated_wait,
    next_ticket_for_window,
    pausing_leaves_category_uncovered,
    positions,
    queue_order,
    ticket_number,
    uncovered_categories,
)
from goldenkey.queue.metrics import QueueMetrics
from goldenkey.queue.store import QueueStore

COVERAGE_ID = "coverage"
LEFT_AT_CLOSING = ("waiting", "called", "no_show")
DAY_ENDED = "the business day ended"


class QueueService:
    def __init__(
        self, store: QueueStore, clock: Clock, calendar: BusinessCalendar, pii_key: str, metrics: QueueMetrics
    ) -> None:
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
    ) -> tuple[Ticket, int | None, float | None]:
        """Issue a ticket; with its position and estimated wait (None when it existed already).

        `retry=False` says no earlier attempt can have created it (a first Idempotency-Key, or
        none): the look for it is skipped. Were it there after all, the insert finds it, at the
        cost of a number left unused."""
        existing = await self.store.tickets.get(ticket_id) if retry else None
        if existing is not None:  # a retried request that ran before: the first ticket stands
            return existing, None, None
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
        )
        ticket.approach(position, wait, now)  # near the front already: told in the same write
        waiting.append(ticket)
        try:
            await self.store.tickets.add(ticket)
        except AlreadyExists:
            waiting.remove(ticket)
            return await self.store.tickets.require(ticket_id), None, None
        except BaseException:
            waiting.remove(ticket)
            raise
        self.metrics.ticket_issued(ticket)
        await self.announce_approaching(category.code, waiting)
        return ticket, position, wait

    async def status(self, ticket_id: str) -> tuple[Ticket, int | None, float | None]:
        ticket = await self.store.tickets.require(ticket_id)
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
        before = await self.store.tickets.require(ticket_id)
        ticket = await self.store.tickets.update(ticket_id, lambda t: action(t, self.clock.now()))
        self.store.lines_changed()
        if before.status != ticket.status and ticket.status == "serving":
            self.metrics.ticket_started(ticket)
        if before.status != ticket.status and ticket.status == "done":
            self.metrics.ticket_completed(ticket)
            self.store.cache.forget("service/")
        await self.announce_approaching(ticket.category)
        return ticket

    async def stats_today(self) -> dict[str, object]:
        day = self.calendar.business_day(self.clock.now())
        return {"day": day.isoformat(), **daily_stats(await self.store.of_day(day), await self.store.categories())}

    async def transfer(self, ticket_id: str, category_code: str) -> Ticket:
        categories = await self.store.categories()
        if category_code not in categories:
            raise Invalid(f"unknown category {category_code!r}; see GET /categories")
        now = self.clock.now()
        number = ticket_number(
            category_code, await self.store.next_number(self.calendar.business_day(now), category_code)
        )
        ticket = await self.store.tickets.update(ticket_id, lambda t: t.transfer(category_code, number, now))
        self.store.lines_changed()
        await self.announce_approaching(category_code)
        return ticket

    async def announce_approaching(self, category_code: str, waiting: list[Ticket] | None = None) -> None:
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

    # --- windows -------------------------------------------------------------------------------

    async def window(self, window_id: str) -> Window:
        try:
            return await self.store.windows.require(window_id)
        except NotFound:
            raise Missing(f"no window {window_id}") from None

    async def window_step(self, window_id: str, step: Callable[[Window, datetime], None]) -> Window:
        await self.window(window_id)
        window = await self.store.windows.update(window_id, lambda w: step(w, self.clock.now()))
        self.store.cache.forget("windows")
        await self.watch_coverage()
        return window

    async def pause(self, window_id: str, reason: PauseReason, *, force: bool) -> Window:
        window = await self.window(window_id)
        now = self.clock.now()
        if window.state == "open" and self.calendar.is_open(now) and not force:
            left = pausing_leaves_category_uncovered(window, await self.store.all_windows())
            if left:
                raise Conflict(
                    f"pausing window {window_id} would leave category {', '.join(left)} with no open window; "
                    "take lunch in turns, or an ops token may force it"
                )
        return await self.window_step(window_id, lambda w, at: w.pause(reason, at, forced=force))

    async def call_next(self, window_id: str) -> Ticket | None:
        """Claim the best waiting ticket this window serves. Two windows calling at once never get
        the same ticket: the claim is a versioned write of the ticket, and the loser tries the next."""
        window = await self.window(window_id)
        window.can_call()
        categories = await self.store.categories()
        now = self.clock.now()
        waiting = await self.store.waiting(self.calendar.business_day(now), window.categories)
        for candidate in next_ticket_for_window(waiting, window.categories, categories, now):
            try:
                ticket = await self.store.tickets.update(candidate.id, lambda t: t.call(window_id, self.clock.now()))
            except Conflict:  # another window was quicker
                continue
            self.store.lines_changed()
            still_waiting = [t for t in waiting if t.id != ticket.id]
            await self.announce_approaching(ticket.category, still_waiting)
            return ticket
        return None

    async def call_ticket(self, window_id: str, ticket_id: str) -> Ticket:
        """Call one ticket out of order (logged and counted per window)."""
        window = await self.window(window_id)
        window.can_call()
        ticket = await self.store.tickets.require(ticket_id)
        if not window.serves(ticket.category):
            raise Conflict(f"window {window_id} does not serve category {ticket.category} of ticket {ticket.number}")
        ticket = await self.store.tickets.update(
            ticket_id, lambda t: t.call(window_id, self.clock.now(), out_of_order=True)
        )
        self.store.lines_changed()
        await self.store.windows.update(window_id, _count_out_of_order)
        await self.announce_approaching(ticket.category)
        return ticket

    async def watch_coverage(self) -> None:
        """Announce categories left with no open window during business hours, and their end."""
        now = self.clock.now()
        categories = await self.store.categories()
        gaps = uncovered_categories(await self.store.all_windows(), categories) if self.calendar.is_open(now) else set()
        try:
            await self.store.coverage.add(_new_coverage())
        except AlreadyExists:
            pass
        await self.store.coverage.update(COVERAGE_ID, lambda c: c.observe(gaps, now))

    async def close_earlier_days(self) -> int:
        """Cancel what earlier business days left waiting, called or missed: those citizens have
        gone home, and their visits end (a concierge asks their loans back). Serving tickets stay
        for their window to complete. How many it cancelled."""
        today = self.calendar.business_day(self.clock.now()).isoformat()
        left = await self.store.tickets.find({"status": {"$in": list(LEFT_AT_CLOSING)}, "day": {"$lt": today}})
        for ticket in left:
            with contextlib.suppress(Conflict):  # served or cancelled meanwhile
                await self.store.tickets.update(ticket.id, lambda t: t.cancel(self.clock.now(), DAY_ENDED))
        # Claimed numbers only matter while their day can still hand some out: keep yesterday's
        # for a request still claiming one across midnight, drop the rest (keeps `numbers` small).
        before_yesterday = (self.calendar.business_day(self.clock.now()) - timedelta(days=1)).isoformat()
        await self.store.forget_numbers_before(before_yesterday)
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


def _new_coverage() -> Coverage:
    return Coverage(id=COVERAGE_ID)
