"""Working days as China's government offices count them, without I/O.

The official calendar — public holidays and the make-up working days (调休) that move them, a
Saturday or Sunday worked in exchange — is published each year by the State Council; the
`chinesecalendar` package carries it. The hall adds its own closing days (and days it opens
specially) in its rules. A year the package does not carry yet can be given in the rules from the
State Council's notice; a year nobody has given is counted Monday to Friday, and every deadline
that falls in it says it is an estimate, so nobody mistakes it for the official count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import chinese_calendar

FIRST_YEAR = min(chinese_calendar.holidays).year
LAST_YEAR = max(chinese_calendar.holidays).year
"""The years the installed package carries the official calendar for."""


@dataclass(frozen=True)
class OfficialYear:
    """One year of the official calendar, from the State Council's notice."""

    holidays: frozenset[date]
    workdays: frozenset[date]
    """Make-up working days: weekend days that are worked."""


@dataclass(frozen=True)
class WorkingDays:
    """Which days count. `closed`: the hall's own closing days; `opened`: days it works although
    the calendar says not; `official`: years the package does not carry yet."""

    closed: frozenset[date] = frozenset()
    opened: frozenset[date] = frozenset()
    official: dict[int, OfficialYear] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        closed: Iterable[date] = (),
        opened: Iterable[date] = (),
        official: dict[int, OfficialYear] | None = None,
    ) -> WorkingDays:
        return cls(frozenset(closed), frozenset(opened), dict(official or {}))

    def is_official(self, day: date) -> bool:
        """Whether `day`'s year has the official calendar (else it is counted Monday to Friday)."""
        return day.year in self.official or FIRST_YEAR <= day.year <= LAST_YEAR

    def is_working_day(self, day: date) -> bool:
        if day in self.closed:
            return False
        if day in self.opened:
            return True
        year = self.official.get(day.year)
        if year is not None:
            return day in year.workdays or (day.weekday() < 5 and day not in year.holidays)
        if FIRST_YEAR <= day.year <= LAST_YEAR:
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5

    def after(self, start: date, n: int) -> date:
        """The `n`-th working day after `start` (`start` itself does not count): a case opened on
        Friday with 1 working day to verify is due on Monday, or later if Monday is a holiday."""
        if n < 1:
            raise ValueError(f"a deadline is at least 1 working day, not {n}")
        day, counted = start, 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day

    def estimated(self, start: date, end: date) -> bool:
        """Whether a count from `start` to `end` went through a year without the official calendar."""
        return any(not self.is_official(date(year, 1, 1)) for year in range(start.year, end.year + 1))
