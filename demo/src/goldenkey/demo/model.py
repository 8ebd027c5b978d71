"""The behaviour model of a simulated hall day: who comes when, for what, how long they take, and
everything else that happens in the hall (rain, cars, patrols, lunches, messages).

Pure: no I/O. The catalogue, categories, windows, rounds and minimum stock levels come in as
arguments (the driver reads them from the services' APIs). Every random draw comes from
`random.Random` seeded from `seed`, so the same seed (and the same arguments) gives the same day.
Each part of the day draws from its own stream (`Random(f"{seed}/visitors")`, …), so, for example,
adding a patrol round does not change the visitors.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

K = TypeVar("K")

# --- what the plan is made of ------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A service item, from the queue's `GET /catalog` (`code`, `category`, `service_min`)."""

    code: str
    category: str
    expected_minutes: float


@dataclass(frozen=True)
class Category:
    """A category, from `GET /categories` (`code`, `target_wait_min`)."""

    letter: str
    target_wait_minutes: float


@dataclass(frozen=True)
class PlannedVisitor:
    index: int
    """The position in `DayPlan.visitors` (sorted by arrival)."""
    arrives_at: datetime
    item_code: str
    category: str
    priority: str | None
    needs: tuple[str, ...]
    plate: str | None
    """Normalised (`陕A7F3K2`, no separator); None when they did not come by car."""
    service_minutes: float
    outcome: str
    """done | needs_materials | referred. Moot for a no-show who does not rejoin."""
    no_show: bool
    rejoins: bool
    """Only ever True for a no-show."""
    transfer_to: str | None
    rating: int | None
    rating_contact: str | None
    borrows: str | None
    loan_end: str
    """ok | damaged | overdue for a borrower; "ok" for everyone else."""
    takes: tuple[tuple[str, int], ...]

    @property
    def by_car(self) -> bool:
        return self.plate is not None

    @property
    def served(self) -> bool:
        """Whether a window serves them in the end (a no-show who rejoins is served)."""
        return not self.no_show or self.rejoins


@dataclass(frozen=True)
class PlannedIncident:
    at: datetime
    kind: str
    visitor_index: int | None
    """The visitor whose car it is; None for a car whose owner has no ticket."""
    plate: str | None = None
    """The car's plate: the visitor's, or for a car with no ticket one no visitor has (the driver
    parks it some time before `at`)."""


@dataclass(frozen=True)
class PlannedRound:
    round_id: str
    start_delay_minutes: float | None
    skips: tuple[str, ...]


@dataclass(frozen=True)
class PlannedMessage:
    at: datetime
    kind: str | None
    text: str
    window_id: str | None
    contact: str | None


@dataclass(frozen=True)
class PlannedLunch:
    window_id: str
    asks_at: datetime
    minutes: float


@dataclass(frozen=True)
class DayPlan:
    day: date
    seed: int
    opens_at: datetime
    closes_at: datetime
    visitors: tuple[PlannedVisitor, ...]
    rain: tuple[tuple[datetime, datetime], ...]
    incidents: tuple[PlannedIncident, ...]
    rounds: tuple[PlannedRound, ...]
    messages: tuple[PlannedMessage, ...]
    lunches: tuple[PlannedLunch, ...]
    restock_below: dict[str, int]

    def raining_at(self, at: datetime) -> bool:
        return is_raining(self.rain, at)


# --- the figures the day is drawn from ---------------------------------------------------------

PRIORITIES = ("elderly", "disabled", "pregnant", "with_infant", "appointment")
NEEDS = ("wheelchair", "reading_glasses", "escort", "proxy_service", "mother_baby_room")
OUTCOMES = ("done", "needs_materials", "referred")
INCIDENT_KINDS = ("flat_tyre", "lights_on", "window_open", "blocking", "damage", "other")
LENDABLES = ("umbrella", "reading-glasses", "power-bank")
LOAN_ENDS = ("ok", "damaged", "overdue")
MESSAGE_KINDS = ("praise", "suggestion", "complaint", None)

CATEGORY_SHARES: dict[str, float] = {
    "A": 0.14,  # business start-up and registration
    "B": 0.17,  # tax
    "C": 0.19,  # social and medical insurance
    "D": 0.09,  # housing provident fund
    "E": 0.04,  # construction permits
    "F": 0.11,  # real estate registration
    "G": 0.03,  # culture and tourism
    "H": 0.03,  # health
    "J": 0.10,  # public security
    "Z": 0.06,  # comprehensive window
    "P": 0.04,  # assisted and proxy service
}
"""Shares of the day's visitors by category; a category not listed weighs `OTHER_CATEGORY_SHARE`."""
OTHER_CATEGORY_SHARE = 0.03
ITEM_ZIPF = 0.8
"""Within a category, the item at catalogue rank r weighs (r+1)^-0.8 × √(median / expected minutes):
the first (commonest) items and the quick ones come most."""

PRIORITY_SHARE = 0.08
PRIORITY_MIX = {"elderly": 0.42, "disabled": 0.10, "pregnant": 0.08, "with_infant": 0.10, "appointment": 0.30}
NEEDS_BY_PRIORITY: dict[str, tuple[float, dict[str, float]]] = {
    # priority: (chance of any need, which need)
    "elderly": (0.40, {"reading_glasses": 0.35, "escort": 0.30, "wheelchair": 0.15, "proxy_service": 0.20}),
    "disabled": (0.70, {"wheelchair": 0.55, "escort": 0.25, "proxy_service": 0.20}),
    "pregnant": (0.25, {"escort": 0.6, "wheelchair": 0.4}),
    "with_infant": (0.45, {"mother_baby_room": 0.9, "escort": 0.1}),
    "appointment": (0.03, {"reading_glasses": 0.5, "proxy_service": 0.5}),
}
NEEDS_PROXY_CATEGORY = ("P", 0.25)
"""Visitors to the assisted and proxy service category ask for proxy_service this often."""
NEEDS_OTHERWISE: tuple[float, dict[str, float]] = (
    0.012,
    {"reading_glasses": 0.35, "escort": 0.25, "proxy_service": 0.25, "wheelchair": 0.15},
)
SECOND_NEED = 0.15

BY_CAR_SHARE = 1 / 3
NEW_ENERGY_SHARE = 0.18
PLATE_REGIONS = (("陕A", 0.80), ("陕U", 0.03), ("陕C", 0.02), ("陕D", 0.03), ("陕E", 0.02), ("陕K", 0.02))
OTHER_PROVINCES = ("豫A", "甘A", "川A", "晋A", "宁A", "京N", "渝B", "鄂A")
"""A plate from outside Shaanxi takes one of these, together weighing what PLATE_REGIONS leaves."""
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

SERVICE_SIGMA = 0.45
"""Lognormal spread of the service time; its mean is the item's expected minutes."""
OUTCOME_MIX = {"done": 0.88, "needs_materials": 0.08, "referred": 0.04}
NO_SHOW_SHARE = 0.03
REJOIN_SHARE = 0.5
TRANSFER_SHARE = 0.02

RATING_SHARE = 0.75
RATING_MIX: dict[int, float] = {5: 0.62, 4: 0.25, 3: 0.08, 2: 0.03, 1: 0.02}
"""The day's mix. Per outcome (below), a visit sent home for missing materials rates worse; the
done mix is set so the three together give RATING_MIX."""
RATING_MIX_BY_OUTCOME: dict[str, dict[int, float]] = {
    "needs_materials": {5: 0.35, 4: 0.30, 3: 0.15, 2: 0.12, 1: 0.08},
    "referred": {5: 0.50, 4: 0.30, 3: 0.12, 2: 0.05, 1: 0.03},
}
RATING_CONTACT_SHARE = 0.5

BORROW_WHEN_RAINING = 0.12
"""Visitors arriving in the rain who borrow an umbrella."""
BORROW_ELDERLY = 0.30
"""Elderly visitors (not already asking for reading glasses at the ticket) who borrow reading glasses."""
BORROW_OTHERWISE: tuple[float, dict[str, float]] = (
    0.04,
    {"power-bank": 0.85, "reading-glasses": 0.12, "umbrella": 0.03},
)
LOAN_END_MIX = {"ok": 0.93, "damaged": 0.02, "overdue": 0.05}

TAKE_SHARE = 0.10
TAKE_WEIGHTS = {
    "pen": 30,
    "paper-cup": 20,
    "tissue-pack": 12,
    "face-mask": 10,
    "document-bag": 8,
    "candy": 6,
    "band-aid": 4,
    "glue-stick": 3,
    "glasses-cloth": 2,
    "alcohol-swab": 2,
    "smoke-extinguishing-bag": 2,
    "sewing-kit": 1,
}
"""Relative popularity of the consumables; one not listed weighs 1."""
TAKE_MAX_QTY = {"candy": 3, "paper-cup": 2, "face-mask": 2}
TAKE_SECOND = 0.15

RAIN_CHANCE = 0.5
"""The chance of a wet day: one spell (two a third of the time) of 30–150 minutes."""

INCIDENTS_PER_VISITOR = 1 / 1000
"""Flat tyres per visitor; as many other incidents again."""
OTHER_INCIDENT_MIX = {"lights_on": 0.30, "window_open": 0.25, "blocking": 0.20, "damage": 0.10, "other": 0.15}
INCIDENT_WITHOUT_TICKET = 0.2
"""Incidents on a car whose owner has no ticket (escalated after 5 minutes)."""

ROUND_MISSED = 1 / 8
ROUND_SKIPS = 1 / 6
ROUND_MAX_DELAY = 4.0

MESSAGES_PER_VISITOR = 1 / 100
MESSAGE_MIX: dict[str | None, float] = {"praise": 0.50, "suggestion": 0.25, "complaint": 0.15, None: 0.10}
MESSAGE_CONTACT: dict[str | None, float] = {"praise": 0.10, "suggestion": 0.25, "complaint": 0.60, None: 0.05}

LUNCH_FROM = time(11, 30)
LUNCH_UNTIL = time(13, 30)
LUNCH_WAVES = (time(11, 30), time(12, 15), time(13, 0))
"""Lunch goes in three waves; neighbouring windows (who serve the same categories) go in different
waves, so a category is never left with nobody."""
LUNCH_JITTER_MINUTES = 12.0
LUNCH_MINUTES = (45.0, 4.0, 35.0, 55.0)
"""Mean, spread, shortest, longest."""

LAST_ARRIVAL_BEFORE_CLOSE = timedelta(minutes=30)
SHANGHAI = ZoneInfo("Asia/Shanghai")

_MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "177",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
)


# --- the arrival curve -------------------------------------------------------------------------


def _minutes(t: time) -> float:
    return t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6


def _bump(x: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((x - centre) / width) ** 2)


def arrival_weight(local: time, *, opens: time = time(9), closes: time = time(17)) -> float:
    """Relative arrival intensity at a local time of day: a morning peak at 10:00 (09:30–10:30
    busy), a lunch lull, an afternoon peak at 15:00 (14:30–15:30 busy), and a trickle in between;
    0 before `opens` and from `closes` on."""
    m = _minutes(local)
    if m < _minutes(opens) or m >= _minutes(closes):
        return 0.0
    return 0.12 + 1.0 * _bump(m, 600, 48) + 0.85 * _bump(m, 900, 50)


# --- helpers ------------------------------------------------------------------------------------


def is_raining(rain: Sequence[tuple[datetime, datetime]], at: datetime) -> bool:
    return any(start <= at < end for start, end in rain)


def _pick(rng: random.Random, mix: Mapping[K, float]) -> K:
    keys = list(mix)
    return rng.choices(keys, weights=[mix[k] for k in keys])[0]


def _local_instant(day: date, t: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, t, tzinfo=zone).astimezone(UTC)


def _mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _window_name(window_id: str) -> str:
    digits = re.sub(r"\D", "", window_id)
    return f"{int(digits)}号窗口" if digits else f"{window_id}窗口"


def _plate(rng: random.Random) -> str:
    r = rng.random()
    prefix = None
    for region, share in PLATE_REGIONS:
        if r < share:
            prefix = region
            break
        r -= share
    if prefix is None:
        prefix = rng.choice(OTHER_PROVINCES)
    if rng.random() < NEW_ENERGY_SHARE:
        # small new-energy car: D (electric) or F (hybrid), a letter or digit, four digits
        kind = "D" if rng.random() < 0.7 else "F"
        second = rng.choice(PLATE_LETTERS) if rng.random() < 0.3 else str(rng.randrange(10))
        return f"{prefix}{kind}{second}{rng.randrange(10**4):04d}"
    serial = [str(rng.randrange(10)) for _ in range(5)]
    letters = rng.choices((0, 1, 2), weights=(0.5, 0.35, 0.15))[0]
    for pos in rng.sample(range(5), letters):
        serial[pos] = rng.choice(PLATE_LETTERS)
    return prefix + "".join(serial)


def _done_rating_mix() -> dict[int, float]:
    """The done visits' mix, so that with the other outcomes' the day's mix is RATING_MIX."""
    done = OUTCOME_MIX["done"]
    mix: dict[int, float] = {}
    for score, share in RATING_MIX.items():
        rest = sum(OUTCOME_MIX[o] * m[score] for o, m in RATING_MIX_BY_OUTCOME.items())
        mix[score] = max(0.0, (share - rest) / done)
    return mix


_RATING_MIXES: dict[str, dict[int, float]] = {"done": _done_rating_mix(), **RATING_MIX_BY_OUTCOME}


class _Chooser(Generic[K]):
    """Weighted choice by bisecting cumulative weights, built once for many draws."""

    def __init__(self, values: Sequence[K], weights: Sequence[float]) -> None:
        self.values = list(values)
        self.cum = list(itertools.accumulate(weights))

    def __call__(self, rng: random.Random) -> K:
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


def _item_chooser(items: Sequence[Item]) -> _Chooser[Item]:
    by_category: dict[str, list[Item]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)
    values: list[Item] = []
    weights: list[float] = []
    for letter, members in by_category.items():
        share = CATEGORY_SHARES.get(letter, OTHER_CATEGORY_SHARE)
        minutes = sorted(max(item.expected_minutes, 0.5) for item in members)
        median = minutes[len(minutes) // 2]
        raw = [
            (rank + 1) ** -ITEM_ZIPF * math.sqrt(median / max(item.expected_minutes, 0.5))
            for rank, item in enumerate(members)
        ]
        total = sum(raw)
        values.extend(members)
        weights.extend(share * w / total for w in raw)
    return _Chooser(values, weights)


# --- the plan ----------------------------------------------------------------------------------


def plan_day(
    *,
    seed: int,
    day: date,
    visitors: int,
    items: Sequence[Item],
    categories: Sequence[Category],
    windows: Sequence[str],
    round_ids: Sequence[str],
    checkpoints: Sequence[str] | Mapping[str, Sequence[str]],
    minimums: Mapping[str, int],
    zone: ZoneInfo = SHANGHAI,
    opens: time = time(9),
    closes: time = time(17),
) -> DayPlan:
    """Plan a day. `windows` are the staffed windows' ids, in the hall's order (neighbours serve the
    same categories). `checkpoints` is the patrol's checkpoint ids, or a mapping from round id to
    that round's own checkpoints (a round's skip is then one of its own). `minimums` are the
    consumables' minimum levels by sku (the skus visitors take)."""
    if visitors < 0:
        raise ValueError("visitors must not be negative")
    letters = [c.letter for c in categories]
    if visitors and not items:
        raise ValueError("no items to visit for")
    unknown = sorted({item.category for item in items} - set(letters))
    if unknown:
        raise ValueError(f"items in categories not given: {', '.join(unknown)}")
    opens_at = _local_instant(day, opens, zone)
    closes_at = _local_instant(day, closes, zone)
    last_arrival = closes_at - LAST_ARRIVAL_BEFORE_CLOSE
    if last_arrival <= opens_at:
        raise ValueError("the hall must be open for more than 30 minutes")

    rain = _plan_rain(random.Random(f"{seed}/rain"), opens_at, closes_at)
    people = _plan_visitors(
        random.Random(f"{seed}/visitors"),
        count=visitors,
        items=items,
        letters=letters,
        minimums=minimums,
        rain=rain,
        opens_at=opens_at,
        last_arrival=last_arrival,
        zone=zone,
        opens=opens,
        closes=closes,
    )
    return DayPlan(
        day=day,
        seed=seed,
        opens_at=opens_at,
        closes_at=closes_at,
        visitors=people,
        rain=rain,
        incidents=_plan_incidents(random.Random(f"{seed}/incidents"), people, opens_at, closes_at),
        rounds=_plan_rounds(random.Random(f"{seed}/rounds"), round_ids, checkpoints),
        messages=_plan_messages(
            random.Random(f"{seed}/messages"), visitors, windows, opens_at, closes_at, zone, opens, closes
        ),
        lunches=_plan_lunches(random.Random(f"{seed}/lunches"), day, windows, zone),
        restock_below=dict(minimums),
    )


def _plan_rain(rng: random.Random, opens_at: datetime, closes_at: datetime) -> tuple[tuple[datetime, datetime], ...]:
    if rng.random() >= RAIN_CHANCE:
        return ()
    spells = []
    span = (closes_at - opens_at).total_seconds() / 60
    for _ in range(2 if rng.random() < 1 / 3 else 1):
        start = opens_at + timedelta(minutes=round(rng.uniform(-60, span - 30)))
        end = start + timedelta(minutes=round(rng.uniform(30, 150)))
        spells.append((start, end))
    spells.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spells:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def _arrival_times(
    rng: random.Random,
    count: int,
    opens_at: datetime,
    last_arrival: datetime,
    zone: ZoneInfo,
    opens: time,
    closes: time,
) -> list[datetime]:
    minutes = int((last_arrival - opens_at).total_seconds() // 60)
    weights = []
    for m in range(minutes):
        local = (opens_at + timedelta(minutes=m, seconds=30)).astimezone(zone).time()
        weights.append(arrival_weight(local, opens=opens, closes=closes))
    if not any(weights):
        weights = [1.0] * minutes
    cum = list(itertools.accumulate(weights))
    chosen = rng.choices(range(minutes), cum_weights=cum, k=count)
    return sorted(opens_at + timedelta(seconds=m * 60 + rng.randrange(60)) for m in chosen)


def _plan_visitors(
    rng: random.Random,
    *,
    count: int,
    items: Sequence[Item],
    letters: Sequence[str],
    minimums: Mapping[str, int],
    rain: tuple[tuple[datetime, datetime], ...],
    opens_at: datetime,
    last_arrival: datetime,
    zone: ZoneInfo,
    opens: time,
    closes: time,
) -> tuple[PlannedVisitor, ...]:
    if count == 0:
        return ()
    arrivals = _arrival_times(rng, count, opens_at, last_arrival, zone, opens, closes)
    choose_item = _item_chooser(items)
    share_of = {letter: CATEGORY_SHARES.get(letter, OTHER_CATEGORY_SHARE) for letter in letters}
    consumables = list(minimums)
    choose_take = _Chooser(consumables, [TAKE_WEIGHTS.get(sku, 1) for sku in consumables]) if consumables else None
    plates: set[str] = set()
    people = []
    for index, arrives_at in enumerate(arrivals):
        item = choose_item(rng)
        priority = _pick(rng, PRIORITY_MIX) if rng.random() < PRIORITY_SHARE else None
        needs = _needs(rng, priority, item.category)

        plate = None
        if rng.random() < BY_CAR_SHARE:
            plate = _plate(rng)
            while plate in plates:
                plate = _plate(rng)
            plates.add(plate)

        expected = max(item.expected_minutes, 0.25)
        mu = math.log(expected) - SERVICE_SIGMA**2 / 2
        service = min(max(rng.lognormvariate(mu, SERVICE_SIGMA), 1.0), max(4 * expected, 1.0))
        outcome = _pick(rng, OUTCOME_MIX)
        no_show = rng.random() < NO_SHOW_SHARE
        rejoins = no_show and rng.random() < REJOIN_SHARE
        served = not no_show or rejoins

        transfer_to = None
        others = [letter for letter in letters if letter != item.category]
        if served and others and rng.random() < TRANSFER_SHARE:
            transfer_to = rng.choices(others, weights=[share_of[o] for o in others])[0]

        rating = contact = None
        if served and rng.random() < RATING_SHARE:
            rating = _pick(rng, _RATING_MIXES[outcome])
            if rating <= 2 and rng.random() < RATING_CONTACT_SHARE:
                contact = _mobile(rng)

        borrows = _borrows(rng, priority, needs, is_raining(rain, arrives_at))
        loan_end = _pick(rng, LOAN_END_MIX) if borrows else "ok"
        takes: tuple[tuple[str, int], ...] = ()
        if choose_take is not None and rng.random() < TAKE_SHARE:
            skus = [choose_take(rng)]
            if rng.random() < TAKE_SECOND:
                second = choose_take(rng)
                if second not in skus:
                    skus.append(second)
            takes = tuple((sku, rng.randint(1, TAKE_MAX_QTY.get(sku, 1))) for sku in skus)

        people.append(
            PlannedVisitor(
                index=index,
                arrives_at=arrives_at,
                item_code=item.code,
                category=item.category,
                priority=priority,
                needs=needs,
                plate=plate,
                service_minutes=round(service, 1),
                outcome=outcome,
                no_show=no_show,
                rejoins=rejoins,
                transfer_to=transfer_to,
                rating=rating,
                rating_contact=contact,
                borrows=borrows,
                loan_end=loan_end,
                takes=takes,
            )
        )
    return tuple(people)


def _needs(rng: random.Random, priority: str | None, category: str) -> tuple[str, ...]:
    if priority is not None:
        chance, mix = NEEDS_BY_PRIORITY[priority]
    elif category == NEEDS_PROXY_CATEGORY[0]:
        chance, mix = NEEDS_PROXY_CATEGORY[1], {"proxy_service": 1.0}
    else:
        chance, mix = NEEDS_OTHERWISE
    if rng.random() >= chance:
        return ()
    needs = [_pick(rng, mix)]
    if rng.random() < SECOND_NEED:
        second = _pick(rng, NEEDS_OTHERWISE[1])
        if second not in needs:
            needs.append(second)
    return tuple(sorted(needs, key=NEEDS.index))


def _borrows(rng: random.Random, priority: str | None, needs: tuple[str, ...], raining: bool) -> str | None:
    if raining and rng.random() < BORROW_WHEN_RAINING:
        return "umbrella"
    if priority == "elderly" and "reading_glasses" not in needs and rng.random() < BORROW_ELDERLY:
        return "reading-glasses"
    chance, mix = BORROW_OTHERWISE
    if rng.random() < chance:
        sku = _pick(rng, mix)
        if sku == "reading-glasses" and "reading_glasses" in needs:
            return None
        return sku
    return None


def _plan_incidents(
    rng: random.Random, people: Sequence[PlannedVisitor], opens_at: datetime, closes_at: datetime
) -> tuple[PlannedIncident, ...]:
    if not people:
        return ()
    flats = max(1, round(len(people) * INCIDENTS_PER_VISITOR))
    kinds = ["flat_tyre"] * flats + [_pick(rng, OTHER_INCIDENT_MIX) for _ in range(flats)]
    rng.shuffle(kinds)
    # Cars whose owner is surely still inside shortly after arriving: came by car and answer calls.
    cars = [p for p in people if p.plate is not None and not p.no_show]
    car_arrivals = [p.arrives_at for p in cars]
    used: set[int] = set()
    plates = {p.plate for p in people if p.plate is not None}
    start = opens_at + timedelta(minutes=20)
    span = (closes_at - timedelta(minutes=40) - start).total_seconds()
    incidents = []
    for k, kind in enumerate(kinds):
        target = start + timedelta(seconds=round(span * (k + rng.random()) / len(kinds)))
        lo = bisect.bisect_left(car_arrivals, target - timedelta(minutes=30))
        hi = bisect.bisect_right(car_arrivals, target)
        candidates = [p for p in cars[lo:hi] if p.index not in used]
        if candidates and rng.random() >= INCIDENT_WITHOUT_TICKET:
            owner = rng.choice(candidates)
            used.add(owner.index)
            # Within their service time of arriving: even served at once, they are still inside.
            after = rng.uniform(1.0, max(1.0, min(8.0, owner.service_minutes)))
            at = owner.arrives_at + timedelta(seconds=math.floor(after * 60))
            incidents.append(PlannedIncident(at, kind, owner.index, owner.plate))
        else:
            plate = _plate(rng)
            while plate in plates:
                plate = _plate(rng)
            plates.add(plate)
            incidents.append(PlannedIncident(target, kind, None, plate))
    incidents.sort(key=lambda incident: incident.at)
    return tuple(incidents)


def _plan_rounds(
    rng: random.Random, round_ids: Sequence[str], checkpoints: Sequence[str] | Mapping[str, Sequence[str]]
) -> tuple[PlannedRound, ...]:
    if isinstance(checkpoints, Mapping):
        everywhere = list(dict.fromkeys(c for route in checkpoints.values() for c in route))
    else:
        everywhere = list(checkpoints)
    rounds = []
    for round_id in round_ids:
        route = list(checkpoints.get(round_id, everywhere)) if isinstance(checkpoints, Mapping) else everywhere
        if rng.random() < ROUND_MISSED:
            rounds.append(PlannedRound(round_id, None, ()))
            continue
        delay = round(rng.uniform(0, ROUND_MAX_DELAY), 1)
        skips = (rng.choice(route),) if route and rng.random() < ROUND_SKIPS else ()
        rounds.append(PlannedRound(round_id, delay, skips))
    return tuple(rounds)


_PRAISE = (
    "感谢{w}的工作人员耐心解答，一次就办好了",
    "{w}的同志业务熟练，效率很高，点赞！",
    "{w}服务热情周到，材料不全还主动帮我想办法",
    "{w}工作人员帮我父亲办理，特别耐心细致，谢谢",
    "在{w}办事很顺利，真正做到了最多跑一次",
    "{w}的小姑娘态度很好，讲解清楚，给你们点赞",
    "{w}中午加班帮我办完，非常感谢",
)
_COMPLAINTS = (
    "{w}一次性告知不清楚，害我又跑了一趟",
    "{w}工作人员态度冷淡，问两句就不耐烦",
    "在{w}等了很久，工作人员办理期间一直在看手机",
    "{w}说材料不齐，但网上清单没写这一项",
    "{w}中午没人，排了半小时",
)
_SUGGESTIONS = (
    "建议增加停车位，上午很难找到车位",
    "希望自助服务区多放几台打印复印机",
    "建议叫号屏显示预计等待时间",
    "饮水机旁边可以多放些纸杯",
    "建议网上公布的材料清单写得更详细一些",
    "希望周末也能开放部分窗口",
    "导办台的指示牌可以再醒目一些",
)
_REMARKS = (
    "大厅环境整洁明亮，办事体验很好",
    "第一次来，导办人员很热情",
    "金钥匙服务台借了雨伞，很贴心",
    "母婴室很干净，谢谢",
)


def _plan_messages(
    rng: random.Random,
    visitors: int,
    windows: Sequence[str],
    opens_at: datetime,
    closes_at: datetime,
    zone: ZoneInfo,
    opens: time,
    closes: time,
) -> tuple[PlannedMessage, ...]:
    count = round(visitors * MESSAGES_PER_VISITOR)
    if count == 0:
        return ()
    # Written after a visit: when people came, 10–60 minutes on, before closing.
    last = closes_at - min(timedelta(minutes=60), (closes_at - opens_at) / 2)
    times = _arrival_times(rng, count, opens_at, last, zone, opens, closes)
    # Some windows draw more praise (and complaints) than others.
    window_weights = [0.5 + rng.random() for _ in windows]
    messages = []
    for written in times:
        at = written + timedelta(seconds=rng.randrange(10 * 60, 60 * 60))
        kind = _pick(rng, MESSAGE_MIX)
        window_id = None
        if kind in ("praise", "complaint") and windows:
            window_id = rng.choices(list(windows), weights=window_weights)[0]
        w = _window_name(window_id) if window_id else "窗口"
        if kind == "praise":
            text = rng.choice(_PRAISE).format(w=w)
        elif kind == "complaint":
            text = rng.choice(_COMPLAINTS).format(w=w)
        elif kind == "suggestion":
            text = rng.choice(_SUGGESTIONS)
        else:
            text = rng.choice(_REMARKS)
        contact = _mobile(rng) if rng.random() < MESSAGE_CONTACT[kind] else None
        messages.append(PlannedMessage(at, kind, text, window_id, contact))
    messages.sort(key=lambda message: message.at)
    return tuple(messages)


def _plan_lunches(rng: random.Random, day: date, windows: Sequence[str], zone: ZoneInfo) -> tuple[PlannedLunch, ...]:
    latest = _local_instant(day, LUNCH_UNTIL, zone) - timedelta(seconds=1)
    mean, spread, shortest, longest = LUNCH_MINUTES
    offset = rng.randrange(len(LUNCH_WAVES))
    lunches = []
    for i, window_id in enumerate(windows):
        wave = _local_instant(day, LUNCH_WAVES[(i + offset) % len(LUNCH_WAVES)], zone)
        asks_at = min(wave + timedelta(seconds=round(rng.uniform(0, LUNCH_JITTER_MINUTES) * 60)), latest)
        minutes = round(min(max(rng.gauss(mean, spread), shortest), longest), 1)
        lunches.append(PlannedLunch(window_id, asks_at, minutes))
    lunches.sort(key=lambda lunch: (lunch.asks_at, lunch.window_id))
    return tuple(lunches)
