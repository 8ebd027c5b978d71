"""Time, as the hall sees it: a clock tests can move, and the business day in the hall's time zone."""

from __future__ import annotations

import asyncio
import re
import time as monotonic
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic_core import core_schema

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


SHORTEST_NAP_S = 0.2
"""The least real time a periodic job waits between rounds on a fast simulated clock."""


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time (a watchdog's interval)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SimulatedClock:
    """The hall's day played faster than real time, on a clock every service shares: it reads
    `start` at the real instant `anchor`, and runs `speed` simulated seconds per real second.
    Services started a few seconds apart agree because they share the anchor, not their start."""

    def __init__(self, start: datetime, speed: float, anchor: datetime | None = None) -> None:
        if start.tzinfo is None or (anchor is not None and anchor.tzinfo is None):
            raise ValueError("a simulated clock needs aware datetimes")
        if speed <= 0:
            raise ValueError(f"a simulated clock runs forward: speed {speed} is not positive")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self.anchor = (anchor or datetime.now(UTC)).astimezone(UTC)
        # Real time is measured on the monotonic clock from the anchor, so a wall-clock step
        # (NTP) does not make the hall's day jump.
        self._anchored_at = monotonic.monotonic() - (datetime.now(UTC) - self.anchor).total_seconds()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(monotonic.monotonic() - self._anchored_at) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds / self.speed, min(seconds, SHORTEST_NAP_S)))


class ManualClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # real time: a test moves this clock itself

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)


def clock_of(start: datetime | None, speed: float, anchor: datetime | None) -> Clock:
    """The clock the settings ask for: wall-clock time, or a simulated day."""
    if start is None:
        return SystemClock()
    return SimulatedClock(start, speed, anchor)


@dataclass(frozen=True)
class BusinessHours:
    """Opening hours such as `Mon-Fri 09:00-17:00`; `Mon-Sun 00:00-24:00` means always open."""

    days: frozenset[int]
    opens: time
    closes_minutes: int
    """Minutes after midnight; 1440 is the end of the day."""

    @classmethod
    def parse(cls, text: str) -> BusinessHours:
        match = re.fullmatch(r"\s*(\w{3})(?:-(\w{3}))?\s+(\d{2}):(\d{2})-(\d{2}):(\d{2})\s*", text)
        if not match:
            raise ValueError(f"business hours {text!r} are not like 'Mon-Fri 09:00-17:00'")
        first, last, oh, om, ch, cm = match.groups()
        last = last or first
        if first not in DAYS or last not in DAYS:
            raise ValueError(f"unknown day in {text!r}; use {', '.join(DAYS)}")
        start, end = DAYS.index(first), DAYS.index(last)
        days = frozenset(range(start, end + 1)) if start <= end else frozenset([*range(start, 7), *range(0, end + 1)])
        opens_minutes, closes = int(oh) * 60 + int(om), int(ch) * 60 + int(cm)
        if not (0 <= opens_minutes < closes <= 1440) or int(om) > 59 or int(cm) > 59:
            raise ValueError(f"business hours {text!r}: opening must come before closing, within one day")
        return cls(days, time(int(oh), int(om)), closes)

    def __str__(self) -> str:
        days = sorted(self.days)
        closes = f"{self.closes_minutes // 60:02d}:{self.closes_minutes % 60:02d}"
        return f"{DAYS[days[0]]}-{DAYS[days[-1]]} {self.opens:%H:%M}-{closes}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: object) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            lambda v: v if isinstance(v, BusinessHours) else cls.parse(str(v)),
            core_schema.any_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


@dataclass(frozen=True)
class BusinessCalendar:
    """The hall's day: which business day an instant falls in, and whether the hall is open."""

    zone: ZoneInfo
    hours: BusinessHours

    @classmethod
    def of(cls, timezone: str, hours: BusinessHours | str) -> BusinessCalendar:
        return cls(ZoneInfo(timezone), hours if isinstance(hours, BusinessHours) else BusinessHours.parse(hours))

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)

    def business_day(self, instant: datetime) -> date:
        """The local calendar date; ticket numbers and daily figures reset at local midnight."""
        return self.local(instant).date()

    def is_open(self, instant: datetime) -> bool:
        local = self.local(instant)
        minutes = local.hour * 60 + local.minute
        opens = self.hours.opens.hour * 60 + self.hours.opens.minute
        return local.weekday() in self.hours.days and opens <= minutes < self.hours.closes_minutes

    def closing_time(self, instant: datetime) -> datetime:
        """When the business day of `instant` ends (its local midnight if the hall is closed that day)."""
        day = self.business_day(instant)
        if day.weekday() not in self.hours.days:
            return datetime.combine(day + timedelta(days=1), time(0), self.zone).astimezone(UTC)
        start = datetime.combine(day, time(0), self.zone)
        return (start + timedelta(minutes=self.hours.closes_minutes)).astimezone(UTC)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants at which local day `day` starts and ends."""
        start = datetime.combine(day, time(0), self.zone)
        end = datetime.combine(day + timedelta(days=1), time(0), self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)
