"""The hall's day: business hours and the business day in Asia/Shanghai, without I/O."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenkey.kit import KitSettings, ServiceKit
from goldenkey.kit.clock import (
    SHORTEST_NAP_S,
    BusinessCalendar,
    BusinessHours,
    ManualClock,
    SimulatedClock,
    SystemClock,
    clock_of,
)

WEEKDAYS = BusinessCalendar.of("Asia/Shanghai", "Mon-Fri 09:00-17:00")


def shanghai(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as a UTC instant (Shanghai is UTC+8, no daylight saving)."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def test_ticket_numbers_reset_at_shanghai_midnight_not_utc_midnight() -> None:
    before = datetime(2026, 11, 24, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Xi'an
    after = datetime(2026, 11, 24, 16, 0, 0, tzinfo=UTC)  # 00:00:00 the next day there
    assert WEEKDAYS.business_day(before) == date(2026, 11, 24)
    assert WEEKDAYS.business_day(after) == date(2026, 11, 25)


def test_the_hall_is_open_from_opening_up_to_but_not_at_closing() -> None:
    wednesday = (2026, 11, 25)
    assert not WEEKDAYS.is_open(shanghai(*wednesday, 8, 59))
    assert WEEKDAYS.is_open(shanghai(*wednesday, 9, 0))
    assert WEEKDAYS.is_open(shanghai(*wednesday, 16, 59))
    assert not WEEKDAYS.is_open(shanghai(*wednesday, 17, 0))


def test_the_hall_is_closed_at_the_weekend() -> None:
    saturday = shanghai(2026, 11, 28, 10)
    assert not WEEKDAYS.is_open(saturday)


def test_always_open_means_every_minute_of_every_day() -> None:
    always = BusinessCalendar.of("Asia/Shanghai", "Mon-Sun 00:00-24:00")
    assert always.is_open(shanghai(2026, 11, 29, 0, 0))
    assert always.is_open(shanghai(2026, 11, 29, 23, 59))


def test_the_business_day_closes_at_closing_time_in_shanghai() -> None:
    assert WEEKDAYS.closing_time(shanghai(2026, 11, 25, 10)) == shanghai(2026, 11, 25, 17)
    assert WEEKDAYS.closing_time(shanghai(2026, 11, 28, 10)) == shanghai(2026, 11, 29, 0)


def test_day_bounds_are_local_midnights() -> None:
    start, end = WEEKDAYS.day_bounds(date(2026, 11, 25))
    assert start == datetime(2026, 11, 24, 16, tzinfo=UTC)
    assert end - start == timedelta(days=1)


@pytest.mark.parametrize(
    "text", ["Mon-Fri 9:00-17:00", "Mon-Fri 17:00-09:00", "Fun-Fri 09:00-17:00", "Mon-Fri 09:00-24:01", "always"]
)
def test_malformed_business_hours_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"business hours|unknown day"):
        BusinessHours.parse(text)


@given(st.sampled_from(["Mon-Fri 09:00-17:00", "Sat-Sun 10:00-12:30", "Mon-Sun 00:00-24:00", "Wed 08:15-08:16"]))
def test_business_hours_print_as_they_parse(text: str) -> None:
    assert str(BusinessHours.parse(text)) == text.replace("Wed 08", "Wed-Wed 08")


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 11, 25, 1, tzinfo=UTC))
    first = clock.now()
    assert clock.now() == first
    assert clock.advance(timedelta(minutes=3)) == first + timedelta(minutes=3)
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 11, 25, 1))


# --- the simulated clock every service shares ---------------------------------------------------------


def test_two_services_given_one_anchor_read_the_same_simulated_time_however_far_apart_they_start() -> None:
    day_starts = shanghai(2026, 11, 25, 9)
    anchor = datetime.now(UTC) - timedelta(seconds=2)  # the day began two real seconds ago
    first = SimulatedClock(day_starts, speed=60, anchor=anchor)
    second = SimulatedClock(day_starts, speed=60, anchor=anchor)  # "started" later
    a, b = first.now(), second.now()
    assert abs((a - b).total_seconds()) < 1.0, "one minute of the hall per real second: within a second"
    assert timedelta(seconds=100) < a - day_starts < timedelta(seconds=200), "about two minutes into the day"


def test_the_simulated_clock_runs_at_its_speed() -> None:
    clock = SimulatedClock(shanghai(2026, 11, 25, 9), speed=1000)
    before, started = clock.now(), time.monotonic()
    while time.monotonic() - started < 0.05:
        pass
    elapsed = time.monotonic() - started
    assert (clock.now() - before).total_seconds() >= 1000 * elapsed * 0.99


async def test_a_watchdogs_interval_passes_in_simulated_time_with_a_shortest_real_nap() -> None:
    clock = SimulatedClock(shanghai(2026, 11, 25, 9), speed=100)
    started = time.monotonic()
    await clock.sleep(15)  # 15 simulated seconds: 0.15 s real, but never under the shortest nap
    assert time.monotonic() - started >= SHORTEST_NAP_S * 0.95


def test_the_settings_choose_the_clock() -> None:
    assert isinstance(clock_of(None, 1.0, None), SystemClock)
    start = shanghai(2026, 11, 25, 9)
    clock = clock_of(start, 100.0, datetime.now(UTC))
    assert isinstance(clock, SimulatedClock)
    assert clock.now() >= start
    settings = KitSettings(
        clock_start="2026-11-25T09:00:00+08:00", clock_speed=100, clock_anchor=datetime.now(UTC), dev_mode=True
    )
    assert isinstance(ServiceKit(settings).clock, SimulatedClock)
    with pytest.raises(ValueError, match="aware"):
        SimulatedClock(datetime(2026, 11, 25, 9), speed=10)
    with pytest.raises(ValueError, match="not positive"):
        SimulatedClock(start, speed=0)
