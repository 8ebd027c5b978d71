"""Working days as China's government offices count them: the official calendar (public holidays and
make-up working days, 调休) from the `chinesecalendar` package, the hall's own closing and opening
days, official years given in the rules, and Monday-to-Friday estimates beyond."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldenkey.feedback.workdays import FIRST_YEAR, LAST_YEAR, OfficialYear, WorkingDays

OFFICIAL = WorkingDays()
"""Only the package's calendar: no hall days, no years given in the rules."""

MAKE_UP_DAYS_2026 = [
    date(2026, 1, 4),  # Sunday
    date(2026, 2, 14),  # Saturday
    date(2026, 2, 28),  # Saturday
    date(2026, 5, 9),  # Saturday
    date(2026, 9, 20),  # Sunday
    date(2026, 10, 10),  # Saturday
]
HOLIDAYS_2026 = [
    (date(2026, 1, 1), date(2026, 1, 3)),
    (date(2026, 2, 15), date(2026, 2, 23)),
    (date(2026, 4, 4), date(2026, 4, 6)),
    (date(2026, 5, 1), date(2026, 5, 5)),
    (date(2026, 6, 19), date(2026, 6, 21)),
    (date(2026, 9, 25), date(2026, 9, 27)),
    (date(2026, 10, 1), date(2026, 10, 7)),
]


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def official_2027() -> OfficialYear:
    """A made-up notice for 2027: New Year's Day off on Friday, Saturday 9 January worked."""
    return OfficialYear(
        holidays=frozenset({date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)}),
        workdays=frozenset({date(2027, 1, 9)}),
    )


def test_the_pinned_package_carries_the_official_calendar_from_2004_to_2026() -> None:
    # The examples below count 2027 as a year without the official calendar: move them on when the
    # package (pinned in constraints.txt) is upgraded to carry it.
    assert (FIRST_YEAR, LAST_YEAR) == (2004, 2026)
    assert OFFICIAL.is_official(date(2026, 12, 31))
    assert OFFICIAL.is_official(date(2004, 1, 1))
    assert not OFFICIAL.is_official(date(2027, 1, 1))
    assert not OFFICIAL.is_official(date(2003, 12, 31))


# --- the official calendar ------------------------------------------------------------------------


def test_a_friday_plus_one_working_day_is_the_monday() -> None:
    assert date(2026, 11, 27).weekday() == 4
    assert OFFICIAL.after(date(2026, 11, 27), 1) == date(2026, 11, 30)
    assert OFFICIAL.after(date(2026, 11, 27), 2) == date(2026, 12, 1)


def test_the_start_day_itself_never_counts() -> None:
    assert OFFICIAL.after(date(2026, 11, 25), 1) == date(2026, 11, 26), "Wednesday → Thursday"
    assert OFFICIAL.after(date(2026, 11, 28), 1) == date(2026, 11, 30), "opened on a Saturday → Monday"


@pytest.mark.parametrize("n", [0, -1])
def test_a_deadline_is_at_least_one_working_day(n: int) -> None:
    with pytest.raises(ValueError, match=f"at least 1 working day, not {n}"):
        OFFICIAL.after(date(2026, 11, 25), n)


@pytest.mark.parametrize(("first", "last"), HOLIDAYS_2026)
def test_the_2026_public_holidays_are_not_working_days(first: date, last: date) -> None:
    assert [d for d in days(first, last) if OFFICIAL.is_working_day(d)] == []


@pytest.mark.parametrize("day", MAKE_UP_DAYS_2026)
def test_the_2026_make_up_days_are_working_days_although_at_the_weekend(day: date) -> None:
    assert day.weekday() >= 5
    assert OFFICIAL.is_working_day(day)


def test_the_national_day_week_is_skipped_and_its_make_up_saturday_counts() -> None:
    opened = date(2026, 9, 30)  # Wednesday, the eve of National Day
    assert OFFICIAL.after(opened, 1) == date(2026, 10, 8), "1–7 October are holidays"
    assert OFFICIAL.after(opened, 2) == date(2026, 10, 9)
    assert OFFICIAL.after(opened, 3) == date(2026, 10, 10), "Saturday 10 October is a make-up working day"
    assert OFFICIAL.after(opened, 4) == date(2026, 10, 12), "Sunday 11 October is not"
    assert not OFFICIAL.is_working_day(date(2026, 10, 11))


def test_a_make_up_saturday_is_the_next_working_day_after_a_friday() -> None:
    opened = date(2026, 2, 13)  # Friday before the Spring Festival
    assert OFFICIAL.after(opened, 1) == date(2026, 2, 14)
    assert OFFICIAL.after(opened, 2) == date(2026, 2, 24), "15–23 February are the Spring Festival"


def test_a_make_up_sunday_counts_before_the_mid_autumn_holiday() -> None:
    assert OFFICIAL.after(date(2026, 9, 18), 1) == date(2026, 9, 20)  # Friday → the make-up Sunday
    assert OFFICIAL.after(date(2026, 9, 24), 1) == date(2026, 9, 28), "25–27 September are off"


def test_a_count_within_an_official_year_is_not_an_estimate() -> None:
    assert not OFFICIAL.estimated(date(2026, 9, 30), date(2026, 10, 8))
    assert not OFFICIAL.estimated(date(2025, 12, 31), date(2026, 1, 5))


# --- the hall's own days --------------------------------------------------------------------------


def test_the_halls_own_closing_day_is_skipped() -> None:
    hall = WorkingDays.of(closed=[date(2026, 11, 30)])
    assert not hall.is_working_day(date(2026, 11, 30))
    assert hall.after(date(2026, 11, 27), 1) == date(2026, 12, 1)


def test_a_day_the_hall_opens_counts_although_the_calendar_says_not() -> None:
    hall = WorkingDays.of(opened=[date(2026, 11, 28), date(2026, 10, 2)])
    assert hall.after(date(2026, 11, 27), 1) == date(2026, 11, 28), "an opened Saturday"
    assert hall.after(date(2026, 9, 30), 1) == date(2026, 10, 2), "an opened public holiday"


def test_the_hall_can_close_on_a_make_up_day() -> None:
    hall = WorkingDays.of(closed=[date(2026, 2, 14)])
    assert hall.after(date(2026, 2, 13), 1) == date(2026, 2, 24)


# --- years without the package's calendar ---------------------------------------------------------


def test_a_year_without_the_official_calendar_is_counted_monday_to_friday_and_flagged() -> None:
    opened = date(2026, 12, 31)  # Thursday
    due = OFFICIAL.after(opened, 1)
    assert due == date(2027, 1, 1), "New Year's Day counts: nobody has said it is a holiday"
    assert OFFICIAL.estimated(opened, due)
    assert OFFICIAL.after(date(2027, 1, 8), 1) == date(2027, 1, 11), "Friday → Monday"
    assert not OFFICIAL.is_working_day(date(2027, 1, 9))


def test_a_year_before_the_package_is_counted_monday_to_friday_too() -> None:
    assert OFFICIAL.after(date(2003, 12, 31), 1) == date(2004, 1, 2), "2004-01-01 is a holiday in the package"
    assert OFFICIAL.estimated(date(2003, 12, 31), date(2004, 1, 2))
    assert OFFICIAL.is_working_day(date(2003, 10, 1)), "a Wednesday, estimated"


def test_a_count_through_a_year_without_the_calendar_is_an_estimate_even_if_it_ends_in_one_with_it() -> None:
    assert OFFICIAL.estimated(date(2003, 12, 20), date(2004, 1, 10))
    assert OFFICIAL.estimated(date(2040, 1, 5), date(2040, 1, 6))
    assert not OFFICIAL.estimated(date(2004, 1, 1), date(2026, 12, 31))


def test_an_official_year_given_in_the_rules_is_used_instead_of_the_estimate() -> None:
    given_2027 = WorkingDays.of(official={2027: official_2027()})
    assert given_2027.is_official(date(2027, 6, 1))
    opened = date(2026, 12, 31)
    due = given_2027.after(opened, 1)
    assert due == date(2027, 1, 4), "1–3 January are holidays in the notice"
    assert not given_2027.estimated(opened, due)
    assert given_2027.after(date(2027, 1, 8), 1) == date(2027, 1, 9), "its make-up Saturday counts"
    assert given_2027.is_working_day(date(2027, 3, 3)), "any other weekday is worked"
    assert not given_2027.is_working_day(date(2027, 3, 6)), "any other Saturday is not"


def test_the_halls_days_win_over_an_official_year_given_in_the_rules() -> None:
    hall = WorkingDays.of(
        closed=[date(2027, 1, 9)],
        opened=[date(2027, 1, 2)],
        official={2027: official_2027()},
    )
    assert not hall.is_working_day(date(2027, 1, 9))
    assert hall.is_working_day(date(2027, 1, 2))


# --- what every count satisfies -------------------------------------------------------------------


def working_between(calendar: WorkingDays, start: date, end: date) -> int:
    return sum(1 for d in days(start + timedelta(days=1), end) if calendar.is_working_day(d))


CALENDARS = st.sampled_from(
    [
        OFFICIAL,
        WorkingDays.of(closed=[date(2026, 11, 30), date(2026, 12, 1)], opened=[date(2026, 10, 3)]),
        WorkingDays.of(official={2027: official_2027()}),
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)  # the same examples on every run
@given(
    calendar=CALENDARS,
    start=st.dates(min_value=date(2025, 12, 1), max_value=date(2028, 1, 31)),
    n=st.integers(1, 20),
)
def test_the_nth_working_day_after_is_a_working_day_with_exactly_n_working_days_up_to_it(
    calendar: WorkingDays, start: date, n: int
) -> None:
    due = calendar.after(start, n)
    assert due > start
    assert calendar.is_working_day(due)
    assert working_between(calendar, start, due) == n
    carried = set(range(2004, 2027)) | set(calendar.official)
    assert calendar.estimated(start, due) == any(y not in carried for y in range(start.year, due.year + 1))
