"""The queue's rules, without Kafka or MongoDB."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenkey.kit import BusinessCalendar, Conflict
from goldenkey.kit.errors import Forbidden
from goldenkey.queue.domain import (
    Category,
    Coverage,
    Ticket,
    TicketCounter,
    Window,
    daily_stats,
    estimated_wait,
    new_slip_code,
    next_ticket_for_window,
    pausing_leaves_category_uncovered,
    positions,
    slip_code_hash,
    ticket_number,
    uncovered_categories,
)

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 09:00 in Xi'an
TAX = Category("B", "税务", "Tax", target_wait=timedelta(minutes=20), service_time=timedelta(minutes=12))
CATEGORIES = {"B": TAX, "C": Category("C", "社保", "Social", timedelta(minutes=15), timedelta(minutes=10))}


def ticket(n: int, *, minutes: float = 0, category: str = "B", priority: str | None = None) -> Ticket:
    return Ticket.issue(
        ticket_id=f"t{n}",
        number=ticket_number(category, n),
        category=category,
        item_code=f"{category}001",
        channel="kiosk",
        at=T0 + timedelta(minutes=minutes),
        day=date(2026, 11, 25),
        priority=priority,  # type: ignore[arg-type]
    )


def types(t: Ticket | Window | Coverage) -> list[str]:
    return [type(e.data).__name__ for e in t.pending_events]


def test_numbers_are_the_category_letter_and_a_daily_sequence() -> None:
    counter = TicketCounter(id=TicketCounter.key(date(2026, 11, 25), "B"))
    numbers = []
    for _ in range(3):
        counter.allocate()
        numbers.append(ticket_number("B", counter.last))
    assert numbers == ["B001", "B002", "B003"]
    assert ticket_number("B", 1234) == "B1234"
    assert TicketCounter.key(date(2026, 11, 25), "B") != TicketCounter.key(date(2026, 11, 26), "B")


def test_numbering_starts_again_at_001_at_midnight_in_xian_not_at_midnight_utc() -> None:
    calendar = BusinessCalendar.of("Asia/Shanghai", "Mon-Sun 00:00-24:00")
    counters: dict[str, TicketCounter] = {}

    def number_at(instant: datetime) -> str:
        key = TicketCounter.key(calendar.business_day(instant), "B")
        counter = counters.setdefault(key, TicketCounter(id=key))
        counter.allocate()
        return ticket_number("B", counter.last)

    midnight = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 00:00 on the 26th in Xi'an
    utc_midnight = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # 08:00 there: the same business day
    minutes = [-2, -1 / 60, 0, 1]
    assert [number_at(midnight + timedelta(minutes=m)) for m in minutes] == ["B001", "B002", "B001", "B002"]
    assert [number_at(utc_midnight - timedelta(seconds=1)), number_at(utc_midnight)] == ["B003", "B004"]


def test_priority_tickets_are_called_first_then_first_come_first_served() -> None:
    normal_early, normal_late = ticket(1, minutes=0), ticket(2, minutes=1)
    elderly = ticket(3, minutes=2, priority="elderly")
    order = next_ticket_for_window([normal_late, elderly, normal_early], ["B"], CATEGORIES, T0 + timedelta(minutes=3))
    assert [t.number for t in order] == ["B003", "B001", "B002"]


def test_a_normal_ticket_past_its_target_wait_is_promoted_so_nobody_starves() -> None:
    old, recent = ticket(1, minutes=0), ticket(2, minutes=15)
    priorities = [ticket(n, minutes=25 + n, priority="appointment") for n in range(3, 6)]
    order = next_ticket_for_window([recent, *priorities, old], ["B"], CATEGORIES, T0 + timedelta(minutes=31))
    assert order[0] is old, "waited 31 min against a 20 min target: goes ahead of later priority tickets"
    assert order[-1] is recent, "waited 16 min: still behind the priority tickets"


def test_a_window_only_sees_waiting_tickets_of_the_categories_it_serves() -> None:
    tax, social, called = ticket(1), ticket(2, category="C"), ticket(3)
    called.call("W11", T0)
    assert [t.id for t in next_ticket_for_window([tax, social, called], ["B"], CATEGORIES, T0)] == ["t1"]
    assert {t.id for t in next_ticket_for_window([tax, social, called], ["B", "C"], CATEGORIES, T0)} == {"t1", "t2"}


def test_a_ticket_goes_waiting_called_serving_done_with_one_event_each() -> None:
    t = ticket(1)
    t.call("W11", T0 + timedelta(minutes=5))
    t.start(T0 + timedelta(minutes=6), staff_id="s-7")
    t.complete("done", T0 + timedelta(minutes=16))
    assert types(t) == ["TicketIssued", "TicketCalled", "TicketServiceStarted", "TicketCompleted"]
    completed = t.pending_events[-1].data
    assert completed.wait_s == 360  # type: ignore[attr-defined]
    assert completed.service_s == 600  # type: ignore[attr-defined]
    assert not t.breaks_one_trip_promise


def test_needs_materials_breaks_the_one_trip_promise() -> None:
    t = ticket(1)
    t.call("W11", T0)
    t.start(T0)
    t.complete("needs_materials", T0 + timedelta(minutes=3))
    assert t.breaks_one_trip_promise


@pytest.mark.parametrize(
    ("prepare", "act", "state"),
    [
        ([], lambda t: t.complete("done", T0), "waiting"),
        ([], lambda t: t.start(T0), "waiting"),
        ([], lambda t: t.recall(T0), "waiting"),
        (["call", "start"], lambda t: t.call("W12", T0), "serving"),
        (["call", "start", "complete"], lambda t: t.cancel(T0), "done"),
    ],
)
def test_an_illegal_transition_is_a_conflict_naming_the_current_state(
    prepare: list[str], act: object, state: str
) -> None:
    t = ticket(1)
    steps = {
        "call": lambda: t.call("W11", T0),
        "start": lambda: t.start(T0),
        "complete": lambda: t.complete("done", T0),
    }
    for step in prepare:
        steps[step]()
    with pytest.raises(Conflict, match=f"is {state}"):
        act(t)  # type: ignore[operator]


def test_a_called_ticket_is_recalled_up_to_three_calls_then_is_a_no_show() -> None:
    t = ticket(1)
    t.call("W11", T0)
    t.recall(T0 + timedelta(minutes=1))
    t.recall(T0 + timedelta(minutes=2))
    with pytest.raises(Conflict, match="3 times"):
        t.recall(T0 + timedelta(minutes=3))
    t.mark_no_show(T0 + timedelta(minutes=3))
    assert t.status == "no_show"
    assert types(t)[-1] == "TicketNoShow"


def test_a_no_show_may_rejoin_within_ten_minutes_keeping_its_place() -> None:
    late, other = ticket(1, minutes=0), ticket(2, minutes=1)
    late.call("W11", T0)
    late.mark_no_show(T0 + timedelta(minutes=2))
    late.rejoin(T0 + timedelta(minutes=11))
    assert late.status == "waiting"
    assert [t.id for t in next_ticket_for_window([other, late], ["B"], CATEGORIES, T0 + timedelta(minutes=11))] == [
        "t1",
        "t2",
    ]
    too_late = ticket(3)
    too_late.call("W11", T0)
    too_late.mark_no_show(T0)
    with pytest.raises(Conflict, match="10 minutes"):
        too_late.rejoin(T0 + timedelta(minutes=10, seconds=1))


def test_a_transfer_keeps_the_original_issue_time_and_so_the_place() -> None:
    t = ticket(1, minutes=0)
    t.call("W11", T0 + timedelta(minutes=30))
    t.transfer("C", "C017", T0 + timedelta(minutes=31))
    assert (t.category, t.number, t.status, t.issued_at) == ("C", "C017", "waiting", T0)
    newcomer = ticket(2, minutes=20, category="C")
    order = next_ticket_for_window([newcomer, t], ["C"], CATEGORIES, T0 + timedelta(minutes=32))
    assert order[0] is t
    with pytest.raises(Conflict, match="already"):
        t.transfer("C", "C018", T0)


def test_approaching_is_announced_once_at_position_three() -> None:
    t = ticket(1)
    t.approach(5, 600, T0)
    t.approach(3, 300, T0)
    t.approach(2, 120, T0)
    assert types(t).count("TicketApproaching") == 1


def test_positions_and_estimated_wait_follow_the_queue_order() -> None:
    tickets = [ticket(1), ticket(2, minutes=1), ticket(3, minutes=2, priority="disabled")]
    assert positions(tickets, TAX, T0 + timedelta(minutes=3)) == {"t3": 1, "t1": 2, "t2": 3}
    assert estimated_wait(3, timedelta(minutes=12), open_windows=2) == timedelta(minutes=12)
    assert estimated_wait(1, timedelta(minutes=12), open_windows=0) == timedelta(0)


def windows(*states: tuple[str, list[str], str]) -> list[Window]:
    return [Window(id=i, categories=c, state=s) for i, c, s in states]  # type: ignore[arg-type]


def test_pausing_the_last_open_window_of_a_category_leaves_it_uncovered() -> None:
    open_for = {"B": ["W11", "W12"], "C": ["W12"]}
    assert pausing_leaves_category_uncovered("W11", ["B"], open_for) == []
    assert pausing_leaves_category_uncovered("W12", ["B", "C"], open_for) == ["C"]
    assert pausing_leaves_category_uncovered("W13", ["C", "D"], open_for) == ["D"]
    assert uncovered_categories(open_for, ["B", "C", "D"]) == {"D"}


def test_windows_open_pause_resume_and_close_in_order() -> None:
    w = Window(id="W11", categories=["B"])
    with pytest.raises(Conflict, match="closed"):
        w.pause("lunch", T0)
    w.open("s-1", T0)
    w.pause("lunch", T0, forced=True)
    with pytest.raises(Conflict, match="paused; cannot call"):
        w.can_call()
    w.resume(T0)
    w.close(T0)
    assert types(w) == ["WindowOpened", "WindowPaused", "WindowResumed", "WindowClosed"]
    assert w.pending_events[1].data.forced is True  # type: ignore[attr-defined]


def test_coverage_gaps_are_announced_once_when_they_open_and_when_they_close() -> None:
    coverage = Coverage(id="coverage")
    coverage.observe({"B"}, T0)
    coverage.observe({"B"}, T0 + timedelta(minutes=1))
    coverage.observe(set(), T0 + timedelta(minutes=5))
    assert types(coverage) == ["CoverageGapOpened", "CoverageGapClosed"]
    assert coverage.pending_events[1].data.opened_at == T0  # type: ignore[attr-defined]


@given(st.lists(st.tuples(st.integers(0, 120), st.sampled_from([None, "elderly", "appointment"])), max_size=30))
def test_whatever_the_queue_priority_and_promoted_tickets_come_before_the_rest(
    arrivals: list[tuple[int, str | None]],
) -> None:
    tickets = [ticket(n, minutes=m, priority=p) for n, (m, p) in enumerate(arrivals, start=1)]
    now = T0 + timedelta(minutes=121)
    order = next_ticket_for_window(tickets, ["B"], CATEGORIES, now)
    ahead = [t.priority is not None or now - t.issued_at > TAX.target_wait for t in order]
    assert ahead == sorted(ahead, reverse=True)
    assert len(order) == len(tickets)


def test_the_days_figures_count_service_level_and_broken_one_trip_promises() -> None:
    quick, slow, breach, gone = ticket(1), ticket(2), ticket(3, category="C"), ticket(4)
    quick.call("W11", T0 + timedelta(minutes=5))
    quick.start(T0 + timedelta(minutes=5))
    quick.complete("done", T0 + timedelta(minutes=15))
    slow.call("W12", T0 + timedelta(minutes=30))
    slow.start(T0 + timedelta(minutes=30))  # 30 min against a 20 min target
    slow.complete("done", T0 + timedelta(minutes=40))
    breach.call("W18", T0 + timedelta(minutes=1))
    breach.start(T0 + timedelta(minutes=1))
    breach.complete("needs_materials", T0 + timedelta(minutes=3))
    gone.call("W11", T0)
    gone.mark_no_show(T0)
    stats = daily_stats([quick, slow, breach, gone, ticket(5)], CATEGORIES)
    assert (stats["issued"], stats["served"], stats["no_shows"], stats["waiting"]) == (5, 3, 1, 1)
    assert stats["service_level"] == pytest.approx(2 / 3)
    assert stats["one_trip_breaches"] == 1
    assert stats["average_wait_s"] == pytest.approx((300 + 1800 + 60) / 3)
    assert stats["by_category"]["B"]["service_level"] == 0.5  # type: ignore[index]
    assert stats["by_window"]["W12"]["average_service_s"] == 600  # type: ignore[index]
    assert "W11" in stats["by_window"]  # type: ignore[operator]


# --- who may act on a ticket (docs/access.md) ------------------------------------------------------


def issued_with_slip(code: str) -> Ticket:
    return Ticket.issue(
        ticket_id="t1",
        number="B001",
        category="B",
        item_code="B001",
        channel="kiosk",
        at=T0,
        day=T0.date(),
        slip_code=code,
    )


def test_a_kiosk_acts_for_a_ticket_only_when_shown_the_code_on_its_slip() -> None:
    code = new_slip_code()
    slipped = issued_with_slip(code)
    slipped.must_be_shown_its_slip(code)
    slipped.must_be_shown_its_slip(f" {code.lower()} ")  # typed off the slip
    for wrong in (None, new_slip_code(), ""):
        with pytest.raises(Forbidden):
            slipped.must_be_shown_its_slip(wrong)
    assert code not in slipped.model_dump_json(), "only the hash is kept"
    with pytest.raises(Forbidden):
        ticket(2).must_be_shown_its_slip(code)  # a ticket from before slips carried a code: staff only


def test_a_slip_printed_again_voids_the_first_code() -> None:
    first, second = new_slip_code(), new_slip_code()
    slipped = issued_with_slip(first)
    slipped.new_slip(second)
    slipped.must_be_shown_its_slip(second)
    with pytest.raises(Forbidden):
        slipped.must_be_shown_its_slip(first)


def test_slip_codes_are_unambiguous_and_salted_by_the_ticket() -> None:
    codes = {new_slip_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and not set(c) & set("01IO") for c in codes)
    code = codes.pop()
    assert slip_code_hash("t1", code) != slip_code_hash("t2", code)


def test_a_window_acts_on_the_tickets_at_it_and_for_a_cancel_on_those_at_no_window() -> None:
    waiting, called = ticket(1), ticket(2)
    called.call("W09", T0)
    called.must_be_at_window("W09")
    with pytest.raises(Forbidden, match="at window W09"):
        called.must_be_at_window("W10")
    with pytest.raises(Forbidden, match="W10"):
        called.must_be_at_window("W10", or_at_none=True)
    with pytest.raises(Forbidden, match="not at any window"):
        waiting.must_be_at_window("W09")
    waiting.must_be_at_window("W09", or_at_none=True)
    called.mark_no_show(T0)
    called.must_be_at_window("W09")  # missed there: the window that called it may let it rejoin
