"""The concierge's rules, without Kafka or MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenkey.concierge.domain import (
    ACCEPT_WITHIN,
    CLAIM_GRACE,
    LONGEST_LOAN,
    REMIND_BEFORE_DUE,
    Assistance,
    Concierge,
    Consumable,
    Lendable,
    Loan,
    Unit,
    acceptance_overdue,
    check_due_time,
    falls_below_minimum,
    least_loaded_concierge,
    loan_due_at,
    loan_is_due_soon,
    loan_is_overdue,
    requester,
)
from goldenkey.concierge.store import shipped
from goldenkey.contracts import ItemLent, ItemReturnRequested, StockLow, TicketCompleted, envelope_for
from goldenkey.kit import BusinessCalendar, Conflict, Invalid
from goldenkey.kit.errors import Forbidden

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Xi'an
CALENDAR = BusinessCalendar.of("Asia/Shanghai", "Mon-Fri 09:00-17:00")


def types(aggregate: Loan | Consumable | Assistance) -> list[str]:
    return [type(p.data).__name__ for p in aggregate.pending_events]


# --- loans -------------------------------------------------------------------------------------------


def test_a_loan_is_due_at_the_end_of_the_business_day_by_default() -> None:
    assert loan_due_at(T0, CALENDAR.closing_time(T0)) == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 17:00


def test_a_loan_made_at_closing_time_is_not_due_in_the_past() -> None:
    late = datetime(2026, 11, 25, 8, 50, tzinfo=UTC)  # 16:50: ten minutes before closing
    assert loan_due_at(late, CALENDAR.closing_time(late)) == late + timedelta(minutes=30)


def test_a_unit_is_claimed_once_and_a_retry_of_the_same_loan_keeps_it() -> None:
    box = Lendable(id="wheelchair", name_zh="轮椅", name_en="Wheelchair", units=[Unit(unit_id="WC-01")])
    assert box.claim("loan-1", T0).unit_id == "WC-01"
    assert box.claim("loan-1", T0).unit_id == "WC-01"
    with pytest.raises(Conflict, match="no wheelchair is free: 1 lent"):
        box.claim("loan-2", T0)


def test_a_damaged_unit_goes_to_maintenance_not_back_on_the_shelf() -> None:
    box = Lendable(id="umbrella", name_zh="雨伞", name_en="Umbrella", units=[Unit(unit_id="UM-01")])
    box.claim("loan-1", T0)
    box.take_back("UM-01", "loan-1", "damaged", T0)
    assert box.units[0].state == "maintenance"
    assert not box.free_units()
    box.repaired("UM-01", T0)
    assert box.free_units()


def test_a_claim_renewed_by_its_retried_loan_is_not_released_as_orphaned() -> None:
    box = Lendable(id="iron", name_zh="电熨斗", name_en="Iron", units=[Unit(unit_id="IR-01")])
    box.claim("loan-1", T0)
    later = T0 + timedelta(minutes=3)
    box.claim("loan-1", later)  # the loan's retry, just as the watchdog found no loan for the claim
    box.release_claim_of("loan-1", claimed_before=later - timedelta(minutes=2))
    assert (box.units[0].state, box.units[0].loan_id) == ("lent", "loan-1")
    box.release_claim_of("loan-1", claimed_before=later)
    assert (box.units[0].state, box.units[0].loan_id) == ("shelf", None)


def test_a_due_time_must_be_ahead_and_within_the_longest_loan() -> None:
    check_due_time(T0 + LONGEST_LOAN, T0)
    with pytest.raises(Invalid, match="not in the future"):
        check_due_time(T0, T0)
    with pytest.raises(Invalid, match="more than 30 days"):
        check_due_time(T0 + LONGEST_LOAN + timedelta(seconds=1), T0)


def lent(due: datetime = T0 + timedelta(hours=2), ticket: str | None = "t-1") -> Loan:
    return Loan.lend(loan_id="loan-1", sku="umbrella", unit_id="UM-01", at=T0, due_at=due, ticket_id=ticket)


def test_a_loan_needs_a_ticket_or_a_walk_in_borrowers_name_and_phone() -> None:
    with pytest.raises(Invalid, match="ticket, or their name and phone"):
        lent(ticket=None)
    walk_in = Loan.lend(
        loan_id="l",
        sku="umbrella",
        unit_id="UM-01",
        at=T0,
        due_at=T0 + timedelta(hours=1),
        borrower_name="王",
        borrower_phone="13800000000",
    )
    event = walk_in.pending_events[0].data
    assert isinstance(event, ItemLent)
    assert "13800000000" not in event.model_dump_json()


def test_overdue_fires_once_per_loan_and_only_while_out() -> None:
    loan = lent()
    due = loan.due_at
    assert not loan_is_overdue(loan, due - timedelta(seconds=1))
    loan.mark_overdue(due)
    loan.mark_overdue(due + timedelta(hours=1))
    assert types(loan) == ["ItemLent", "ItemOverdue"]
    returned = lent()
    returned.give_back("ok", due - timedelta(minutes=1))
    assert not loan_is_overdue(returned, due + timedelta(hours=1))


def test_a_reminder_goes_out_once_before_due_and_once_when_the_visit_ends() -> None:
    loan = lent()
    assert not loan_is_due_soon(loan, loan.due_at - REMIND_BEFORE_DUE - timedelta(seconds=1))
    assert loan_is_due_soon(loan, loan.due_at - REMIND_BEFORE_DUE)
    loan.remind("due_soon", T0)
    assert not loan_is_due_soon(loan, loan.due_at - timedelta(minutes=1))
    loan.remind("visit_ended", T0)
    loan.remind("visit_ended", T0)
    assert types(loan) == ["ItemLent", "ItemReturnRequested", "ItemReturnRequested"]


def test_a_reminder_because_the_visit_ended_names_its_cause() -> None:
    loan = lent()
    completed = envelope_for(
        TicketCompleted(ticket_id="t-1", outcome="done", window_id="W01", wait_s=1, service_s=1), time=T0
    )
    loan.remind("visit_ended", T0, cause=completed)
    pending = loan.pending_events[-1]
    assert isinstance(pending.data, ItemReturnRequested)
    assert pending.causation == completed


def test_a_lost_unit_is_announced_as_lost_and_a_loan_is_returned_once() -> None:
    loan = lent()
    loan.give_back("lost", T0)
    assert types(loan) == ["ItemLent", "ItemLost"]
    assert loan.status == "lost"
    with pytest.raises(Conflict, match="lost already"):
        loan.give_back("ok", T0)


def test_a_late_return_says_it_was_overdue() -> None:
    loan = lent()
    loan.give_back("ok", loan.due_at + timedelta(minutes=5))
    assert loan.pending_events[-1].data.overdue is True  # type: ignore[union-attr]


# --- consumables ---------------------------------------------------------------------------------------


def candy(stock: int = 12, minimum: int = 10) -> Consumable:
    return Consumable(id="candy", name_zh="糖果", name_en="Candy", stock=stock, minimum=minimum)


def test_dispensing_more_than_is_left_is_refused_and_changes_nothing() -> None:
    item = candy(stock=3)
    with pytest.raises(Conflict, match="only 3 candy left; 5 asked for"):
        item.dispense(5, T0, ticket_id=None, dispensation_id="d")
    assert item.stock == 3
    assert not item.pending_events


def test_stock_low_fires_once_when_the_stock_crosses_its_minimum() -> None:
    item = candy(stock=12, minimum=10)
    item.dispense(2, T0, ticket_id=None, dispensation_id="d1")  # 10: at the minimum, not below
    item.dispense(1, T0, ticket_id=None, dispensation_id="d2")  # 9: crossed
    item.dispense(1, T0, ticket_id=None, dispensation_id="d3")  # 8: still below, no news
    assert [type(p.data) for p in item.pending_events].count(StockLow) == 1
    item.restock(5, T0)  # 13: back above
    item.dispense(4, T0, ticket_id=None, dispensation_id="d4")  # 9: crossed again
    assert [type(p.data) for p in item.pending_events].count(StockLow) == 2


def test_a_dispensation_applied_twice_hands_out_once() -> None:
    item = candy(stock=20)
    item.dispense(3, T0, ticket_id=None, dispensation_id="d1")
    item.dispense(3, T0, ticket_id=None, dispensation_id="d1")  # its retry after a crash
    assert item.stock == 17
    assert types(item) == ["ConsumableDispensed"]


@given(
    start=st.integers(0, 60),
    minimum=st.integers(0, 30),
    steps=st.lists(st.tuples(st.booleans(), st.integers(1, 15)), max_size=30),
)
def test_stock_never_goes_negative_and_low_fires_once_per_crossing(
    start: int, minimum: int, steps: list[tuple[bool, int]]
) -> None:
    item = candy(stock=start, minimum=minimum)
    crossings = 0
    for n, (restock, qty) in enumerate(steps):
        before = item.stock
        if restock:
            item.restock(qty, T0)
        else:
            try:
                item.dispense(qty, T0, ticket_id=None, dispensation_id=f"d{n}")
            except Conflict:
                assert qty > before
        crossings += falls_below_minimum(before, item.stock, minimum)
        assert item.stock >= 0
    assert [type(p.data) for p in item.pending_events].count(StockLow) == crossings


# --- assistance ----------------------------------------------------------------------------------------


def test_a_request_goes_to_the_least_loaded_concierge_on_duty() -> None:
    assert least_loaded_concierge(["GK1", "GK2", "GK3"], {"GK1": 2, "GK2": 1, "GK3": 1}) == "GK2"
    assert least_loaded_concierge([], {}) is None


def test_a_reassignment_avoids_the_concierge_who_let_it_wait_unless_nobody_else_is_on_duty() -> None:
    assert least_loaded_concierge(["GK1", "GK2"], {"GK2": 3}, avoid=["GK1"]) == "GK2"
    assert least_loaded_concierge(["GK1"], {}, avoid=["GK1"]) == "GK1"


def requested() -> Assistance:
    return Assistance.request(assistance_id="a-1", kind="wheelchair", at=T0, ticket_id="t-1")


def test_a_concierge_counts_each_request_they_hold_once_and_only_while_on_duty_takes_more() -> None:
    gk1 = Concierge(id="GK1", name_zh="王敏", name_en="Wang Min", on_duty=True)
    gk1.take("a1", T0)
    gk1.take("a1", T0)  # a retry
    gk1.take("a2", T0)
    assert (gk1.load, gk1.holds("a1")) == (2, True)
    gk1.let_go("a1")
    gk1.let_go("a1")
    assert [h.assistance_id for h in gk1.holding] == ["a2"]
    gk1.set_duty(False, T0)
    with pytest.raises(Conflict, match="off duty"):
        gk1.take("a3", T0)
    assert gk1.load == 1, "what they accepted still counts until it is done"


def test_settling_counts_what_names_the_concierge_and_spares_a_claim_still_being_written() -> None:
    gk1 = Concierge(id="GK1", name_zh="王敏", name_en="Wang Min", on_duty=True)
    gk1.take("lost-in-a-crash", T0)
    gk1.take("being-written", T0 + CLAIM_GRACE)
    later = T0 + CLAIM_GRACE + timedelta(seconds=1)
    assert gk1.settle({"from-before": T0}, later) is True
    assert sorted(h.assistance_id for h in gk1.holding) == ["being-written", "from-before"]
    assert gk1.settle({"from-before": T0}, later) is False, "nothing more to mend"


def test_an_assigned_request_not_accepted_within_three_minutes_is_escalated_and_queued_again() -> None:
    help_ = requested()
    help_.assign("GK1", T0)
    assert not acceptance_overdue(help_, T0 + ACCEPT_WITHIN - timedelta(seconds=1))
    help_.escalate(T0 + ACCEPT_WITHIN - timedelta(seconds=1))
    assert help_.status == "assigned"
    help_.escalate(T0 + ACCEPT_WITHIN)
    assert help_.status == "queued"
    assert help_.passed_over == ["GK1"]
    help_.assign("GK2", T0 + ACCEPT_WITHIN)
    assert types(help_) == ["AssistanceRequested", "AssistanceAssigned", "AssistanceEscalated", "AssistanceAssigned"]
    assert help_.pending_events[-1].data.previous_concierge_id == "GK1"  # type: ignore[union-attr]


def test_an_accepted_request_is_never_escalated() -> None:
    help_ = requested()
    help_.assign("GK1", T0)
    help_.accept(T0 + timedelta(minutes=1))
    assert not acceptance_overdue(help_, T0 + timedelta(hours=1))


def test_a_request_nobody_is_on_duty_for_is_escalated_once() -> None:
    help_ = requested()
    help_.escalate(T0 + ACCEPT_WITHIN)
    help_.escalate(T0 + 3 * ACCEPT_WITHIN)
    assert types(help_).count("AssistanceEscalated") == 1


def test_illegal_steps_name_the_current_state() -> None:
    help_ = requested()
    with pytest.raises(Conflict, match="is queued; cannot accept it"):
        help_.accept(T0)
    help_.assign("GK1", T0)
    help_.complete(T0)
    with pytest.raises(Conflict, match="is completed; cannot cancel it"):
        help_.cancel(T0)


# --- the shipped data ------------------------------------------------------------------------------------


def test_the_lending_box_and_the_roster_are_shipped_as_data() -> None:
    inventory, roster = shipped("inventory"), shipped("concierges")
    skus = {row["sku"] for row in inventory["lendables"]}
    assert {"reading-glasses", "umbrella", "raincoat", "wheelchair", "power-bank", "iron", "medical-kit"} <= skus
    units = [u for row in inventory["lendables"] for u in row["units"]]
    assert len(units) == len(set(units))
    consumables = {row["sku"]: row for row in inventory["consumables"]}
    assert {
        "band-aid",
        "alcohol-swab",
        "candy",
        "sewing-kit",
        "glasses-cloth",
        "pen",
        "smoke-extinguishing-bag",
    } <= set(consumables)
    assert all(0 < row["minimum"] < row["stock"] for row in consumables.values())
    assert len(roster) == 5


def test_a_minimum_raised_above_what_is_left_is_a_crossing_too() -> None:
    item = candy(stock=12, minimum=10)
    item.edit(T0, name_zh=None, name_en=None, minimum=11)  # still 12 ≥ 11
    item.edit(T0, name_zh=None, name_en="Sweets", minimum=20)  # now below
    item.edit(T0, name_zh=None, name_en=None, minimum=30)  # below already: no news
    assert [type(p.data) for p in item.pending_events] == [StockLow]
    assert item.name_en == "Sweets"


# --- who may act on a request (docs/access.md) -------------------------------------------------------


def test_a_concierge_s_own_handset_acts_only_on_the_requests_given_to_them() -> None:
    request = Assistance.request(assistance_id="a-1", kind="escort", at=T0, requested_by=requester("window", "W09"))
    with pytest.raises(Forbidden, match="given to nobody"):
        request.must_be_held_by("GK1")
    request.assign("GK1", T0)
    request.must_be_held_by("GK1")
    with pytest.raises(Forbidden, match="given to GK1"):
        request.must_be_held_by("GK2")


def test_a_device_withdraws_what_it_asked_for_and_an_unbound_token_what_its_role_asked_for() -> None:
    by_w09 = Assistance.request(assistance_id="a-1", kind="escort", at=T0, requested_by=requester("window", "W09"))
    by_a_window = Assistance.request(assistance_id="a-2", kind="escort", at=T0, requested_by=requester("window", None))
    by_an_event = Assistance.request(assistance_id="a-3", kind="wheelchair", at=T0, ticket_id="t-1")
    assert (by_w09.requested_by, by_a_window.requested_by, by_an_event.requested_by) == ("window:W09", "window", None)
    by_w09.must_be_asked_by("window", "W09")
    by_w09.must_be_asked_by("window", None)
    by_a_window.must_be_asked_by("window", None)
    for request, role, bound_to in [
        (by_w09, "window", "W10"),
        (by_w09, "guard", None),
        (by_a_window, "window", "W09"),
        (by_an_event, "window", None),
        (by_an_event, "guard", "G1"),
    ]:
        with pytest.raises(Forbidden, match="concierge desk"):
            request.must_be_asked_by(role, bound_to)
