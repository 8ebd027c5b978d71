"""The simulated day's behaviour model, planned against the data the services ship."""

from __future__ import annotations

import json
import re
import time as clock
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from goldenkey.demo.model import (
    INCIDENT_KINDS,
    LENDABLES,
    LOAN_ENDS,
    NEEDS,
    OUTCOMES,
    PRIORITIES,
    Category,
    DayPlan,
    Item,
    arrival_weight,
    plan_day,
)
from goldenkey.kit.pii import normalise_phone, normalise_plate

ROOT = Path(__file__).resolve().parents[2]
QUEUE_DATA = ROOT / "services/queue/src/goldenkey/queue/data"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2025, 6, 3)
SEED = 20250603
VISITORS = 5000


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


CATALOG = load(QUEUE_DATA / "catalog.json")
CATEGORIES = load(QUEUE_DATA / "categories.json")
WINDOWS = load(QUEUE_DATA / "windows.json")
INVENTORY = load(ROOT / "services/concierge/src/goldenkey/concierge/data/inventory.json")
PATROLS = load(ROOT / "services/parking/src/goldenkey/parking/data/patrols.json")

ITEMS = [Item(code=i["code"], category=i["category"], expected_minutes=i["service_min"]) for i in CATALOG]
EXPECTED = {item.code: item.expected_minutes for item in ITEMS}
LETTERS = [c["code"] for c in CATEGORIES]
ALL_CHECKPOINTS = [c["checkpoint_id"] for c in PATROLS["checkpoints"]]
ROUTES = {r["round_id"]: r.get("checkpoints", ALL_CHECKPOINTS) for r in PATROLS["rounds"]}
MINIMUMS = {c["sku"]: c["minimum"] for c in INVENTORY["consumables"]}
WINDOW_IDS = [w["id"] for w in WINDOWS]


def plan(seed: int = SEED, visitors: int = VISITORS, **overrides: Any) -> DayPlan:
    hall: dict[str, Any] = {
        "items": ITEMS,
        "categories": [Category(letter=c["code"], target_wait_minutes=c["target_wait_min"]) for c in CATEGORIES],
        "windows": WINDOW_IDS,
        "round_ids": list(ROUTES),
        "checkpoints": ROUTES,
        "minimums": MINIMUMS,
    }
    hall.update(overrides)
    return plan_day(seed=seed, day=DAY, visitors=visitors, **hall)


@pytest.fixture(scope="module")
def day() -> DayPlan:
    return plan()


def local(at: datetime) -> time:
    return at.astimezone(SHANGHAI).time()


def share(count: int, total: int) -> float:
    return count / total if total else 0.0


# --- the arrival curve


def test_arrivals_peak_mid_morning_and_mid_afternoon_with_a_lunch_lull_between() -> None:
    minutes = [time(h, m) for h in range(9, 17) for m in range(60)]
    weights = [arrival_weight(t) for t in minutes]
    peaks = [
        minutes[i] for i in range(1, len(weights) - 1) if weights[i - 1] < weights[i] and weights[i] >= weights[i + 1]
    ]
    assert len(peaks) == 2
    morning, afternoon = peaks
    assert time(9, 30) <= morning <= time(10, 30)
    assert time(14, 30) <= afternoon <= time(15, 30)
    between = [(w, t) for w, t in zip(weights, minutes, strict=True) if morning < t < afternoon]
    lull, lull_at = min(between)
    assert time(11, 30) <= lull_at <= time(13, 30)
    assert lull < 0.3 * min(arrival_weight(morning), arrival_weight(afternoon))


def test_nobody_arrives_outside_opening_hours() -> None:
    for t in (time(0), time(6), time(8, 59, 59), time(17), time(17, 0, 1), time(20), time(23, 59)):
        assert arrival_weight(t) == 0.0
    assert arrival_weight(time(9)) > 0
    assert arrival_weight(time(16, 59)) > 0
    assert arrival_weight(time(9, 30), opens=time(10)) == 0.0


# --- reproducibility and speed


def test_the_same_seed_gives_the_same_day_and_another_seed_another_day(day: DayPlan) -> None:
    assert plan() == day
    other = plan(seed=SEED + 1)
    assert other != day
    assert [v.arrives_at for v in other.visitors] != [v.arrives_at for v in day.visitors]
    assert [v.item_code for v in other.visitors] != [v.item_code for v in day.visitors]


def test_planning_5000_visitors_takes_well_under_two_seconds() -> None:
    started = clock.perf_counter()
    plan(seed=1)
    assert clock.perf_counter() - started < 2.0


def test_more_patrol_rounds_do_not_change_who_comes(day: DayPlan) -> None:
    fewer = plan(round_ids=["R0900"])
    assert fewer.visitors == day.visitors
    assert fewer.rounds != day.rounds


# --- visitors


def test_every_visitor_arrives_in_opening_hours_at_least_half_an_hour_before_closing_in_order(day: DayPlan) -> None:
    assert day.opens_at == datetime(2025, 6, 3, 1, 0, tzinfo=UTC)
    assert day.closes_at == datetime(2025, 6, 3, 9, 0, tzinfo=UTC)
    assert len(day.visitors) == VISITORS
    arrivals = [v.arrives_at for v in day.visitors]
    assert arrivals == sorted(arrivals)
    assert [v.index for v in day.visitors] == list(range(VISITORS))
    for at in arrivals:
        assert at.utcoffset() == timedelta(0)
        assert day.opens_at <= at <= day.closes_at - timedelta(minutes=30)


def test_the_day_is_busiest_at_the_peaks_and_quiet_at_lunch(day: DayPlan) -> None:
    by_hour = Counter(local(v.arrives_at).hour for v in day.visitors)
    assert by_hour[10] > 1.5 * by_hour[12]
    assert by_hour[15] > 1.5 * by_hour[12]
    assert by_hour[12] > 0


def test_shares_of_the_day_come_near_their_targets(day: DayPlan) -> None:
    visitors = day.visitors
    n = len(visitors)
    assert 0.05 <= share(sum(v.priority is not None for v in visitors), n) <= 0.11
    assert 0.025 <= share(sum(bool(v.needs) for v in visitors), n) <= 0.06
    assert 0.28 <= share(sum(v.plate is not None for v in visitors), n) <= 0.39
    no_shows = [v for v in visitors if v.no_show]
    assert 0.015 <= share(len(no_shows), n) <= 0.045
    assert 0.3 <= share(sum(v.rejoins for v in no_shows), len(no_shows)) <= 0.7
    assert 0.01 <= share(sum(v.transfer_to is not None for v in visitors), n) <= 0.03
    outcomes = Counter(v.outcome for v in visitors)
    assert 0.85 <= share(outcomes["done"], n) <= 0.91
    assert 0.06 <= share(outcomes["needs_materials"], n) <= 0.10
    assert 0.025 <= share(outcomes["referred"], n) <= 0.055
    assert 0.03 <= share(sum(v.borrows is not None for v in visitors), n) <= 0.08
    assert 0.08 <= share(sum(bool(v.takes) for v in visitors), n) <= 0.12


def test_ratings_follow_the_hall_s_mix(day: DayPlan) -> None:
    served = [v for v in day.visitors if not v.no_show or v.rejoins]
    rated = [v for v in served if v.rating is not None]
    assert 0.70 <= share(len(rated), len(served)) <= 0.80
    scores = Counter(v.rating for v in rated)
    for score, target in {5: 0.62, 4: 0.25, 3: 0.08, 2: 0.03, 1: 0.02}.items():
        assert abs(share(scores[score], len(rated)) - target) <= max(0.04, target / 2), score
    sent_home = [v.rating for v in rated if v.outcome == "needs_materials"]
    done = [v.rating for v in rated if v.outcome == "done"]
    assert sum(sent_home) / len(sent_home) < sum(done) / len(done)


def test_busy_categories_get_more_visitors_than_quiet_ones(day: DayPlan) -> None:
    by_category = Counter(v.category for v in day.visitors)
    assert set(by_category) == set(LETTERS)
    uniform = VISITORS / len(LETTERS)
    for busy in ("A", "B", "C"):
        assert by_category[busy] > 1.3 * uniform, busy
    for quiet in ("E", "G", "H", "P"):
        assert by_category[quiet] < 0.7 * uniform, quiet
    assert min(by_category["B"], by_category["C"]) > 3 * max(by_category["G"], by_category["H"])


def test_visitors_come_for_catalogue_items_common_ones_most(day: DayPlan) -> None:
    category_of = {item.code: item.category for item in ITEMS}
    for v in day.visitors:
        assert category_of[v.item_code] == v.category
    popular = Counter(v.item_code for v in day.visitors).most_common()
    assert len(popular) > 200
    assert popular[0][1] > 5 * popular[len(popular) // 2][1]


def test_service_times_scatter_around_the_item_s_expected_minutes(day: DayPlan) -> None:
    ratios = []
    for v in day.visitors:
        expected = EXPECTED[v.item_code]
        assert 1.0 <= v.service_minutes <= max(4 * expected, 1.0) + 0.05
        ratios.append(v.service_minutes / expected)
    assert 0.9 <= sum(ratios) / len(ratios) <= 1.1
    assert len({round(v.service_minutes) for v in day.visitors if v.item_code == "A001"}) > 5


def test_priorities_and_needs_are_the_queue_s_own(day: DayPlan) -> None:
    priorities = Counter(v.priority for v in day.visitors if v.priority)
    assert set(priorities) <= set(PRIORITIES)
    assert share(priorities["elderly"], priorities.total()) > 0.3
    assert {p for p, _ in priorities.most_common(2)} == {"elderly", "appointment"}
    for v in day.visitors:
        assert set(v.needs) <= set(NEEDS)
        assert len(set(v.needs)) == len(v.needs)
    with_infant = [v for v in day.visitors if v.priority == "with_infant" and v.needs]
    assert any("mother_baby_room" in v.needs for v in with_infant)


def test_every_plate_is_a_valid_chinese_plate_and_no_two_visitors_share_one(day: DayPlan) -> None:
    plates = [v.plate for v in day.visitors if v.plate is not None]
    assert len(plates) == len(set(plates))
    for plate in plates:
        assert normalise_plate(plate) == plate
    assert share(sum(p.startswith("陕A") for p in plates), len(plates)) > 0.7
    assert any(len(p) == 8 for p in plates), "some new-energy cars"
    assert any(not p.startswith("陕") for p in plates), "some from other provinces"


def test_transfers_go_to_another_category_the_hall_has(day: DayPlan) -> None:
    transferred = [v for v in day.visitors if v.transfer_to is not None]
    assert transferred
    for v in transferred:
        assert v.transfer_to in LETTERS
        assert v.transfer_to != v.category
        assert not v.no_show or v.rejoins


def test_only_served_visits_are_rated_and_only_bad_reviews_leave_a_number(day: DayPlan) -> None:
    for v in day.visitors:
        assert v.outcome in OUTCOMES
        assert v.rejoins <= v.no_show
        if v.no_show and not v.rejoins:
            assert v.rating is None
            assert v.transfer_to is None
        if v.rating is not None:
            assert 1 <= v.rating <= 5
        if v.rating_contact is not None:
            assert v.rating is not None
            assert v.rating <= 2
            assert normalise_phone(v.rating_contact) == v.rating_contact
    bad = [v for v in day.visitors if v.rating is not None and v.rating <= 2]
    assert 0.3 <= share(sum(v.rating_contact is not None for v in bad), len(bad)) <= 0.7
    assert any(v.no_show and v.rejoins and v.rating is not None for v in day.visitors)


def test_loans_are_of_lendable_things_and_mostly_come_back_fine(day: DayPlan) -> None:
    borrowers = [v for v in day.visitors if v.borrows is not None]
    assert {v.borrows for v in borrowers} <= set(LENDABLES)
    ends = Counter(v.loan_end for v in borrowers)
    assert set(ends) <= set(LOAN_ENDS)
    assert share(ends["ok"], len(borrowers)) >= 0.85
    assert all(v.loan_end == "ok" for v in day.visitors if v.borrows is None)
    glasses = [v for v in borrowers if v.borrows == "reading-glasses"]
    assert share(sum(v.priority == "elderly" for v in glasses), len(glasses)) > 0.5
    overall = Counter(v.loan_end for v in (v for seed in range(6) for v in plan(seed=seed).visitors) if v.borrows)
    total = sum(overall.values())
    assert 0.88 <= share(overall["ok"], total) <= 0.97
    assert 0.005 <= share(overall["damaged"], total) <= 0.05
    assert 0.02 <= share(overall["overdue"], total) <= 0.09


def test_umbrellas_are_borrowed_mostly_in_the_rain() -> None:
    wet = next(p for p in (plan(seed=s) for s in range(30)) if p.rain)
    umbrellas = [v for v in wet.visitors if v.borrows == "umbrella"]
    assert umbrellas
    assert share(sum(wet.raining_at(v.arrives_at) for v in umbrellas), len(umbrellas)) > 0.6
    dry = next(p for p in (plan(seed=s) for s in range(30)) if not p.rain)
    assert share(sum(v.borrows == "umbrella" for v in dry.visitors), VISITORS) < 0.01


def test_rain_comes_in_spells_on_some_days_not_others() -> None:
    days = [plan(seed=s, visitors=0) for s in range(40)]
    assert 5 <= sum(bool(d.rain) for d in days) <= 35
    for d in days:
        for start, end in d.rain:
            assert start < end
            assert timedelta(minutes=30) <= end - start <= timedelta(hours=6)
        assert list(d.rain) == sorted(d.rain)


def test_visitors_take_consumables_the_desk_stocks_and_it_restocks_at_the_minimums(day: DayPlan) -> None:
    taken: Counter[str] = Counter()
    for v in day.visitors:
        skus = [sku for sku, _ in v.takes]
        assert len(skus) == len(set(skus))
        for sku, qty in v.takes:
            assert sku in MINIMUMS
            assert 1 <= qty <= 3
            taken[sku] += qty
    assert taken.most_common(1)[0][0] == "pen"
    assert day.restock_below == MINIMUMS


# --- incidents, rounds, messages, lunches


def test_every_incident_names_a_car_whose_owner_is_still_in_the_hall(day: DayPlan) -> None:
    assert [i.at for i in day.incidents] == sorted(i.at for i in day.incidents)
    kinds = Counter(i.kind for i in day.incidents)
    assert set(kinds) <= set(INCIDENT_KINDS)
    assert kinds["flat_tyre"] == VISITORS // 1000
    assert len(day.incidents) == 2 * kinds["flat_tyre"]
    owners = [i.visitor_index for i in day.incidents if i.visitor_index is not None]
    assert owners, "most incidents are on a visitor's car"
    assert len(owners) == len(set(owners))
    for incident in day.incidents:
        assert day.opens_at <= incident.at < day.closes_at
        assert incident.plate is not None
        assert normalise_plate(incident.plate) == incident.plate
        if incident.visitor_index is None:
            continue
        owner = day.visitors[incident.visitor_index]
        assert owner.plate is not None
        assert incident.plate == owner.plate
        assert not owner.no_show
        assert owner.arrives_at < incident.at
        # even if called at once, they are still at the window then
        assert incident.at - owner.arrives_at <= timedelta(minutes=owner.service_minutes)
    hours = {local(i.at).hour for i in day.incidents}
    assert min(hours) < 12 < max(hours)


def test_incidents_include_cars_with_no_ticket_under_a_plate_no_visitor_has() -> None:
    days = [plan(seed=s, visitors=2000) for s in range(10)]
    found = [(d, i) for d in days for i in d.incidents if i.visitor_index is None]
    assert found
    for d, incident in found:
        assert incident.plate not in {v.plate for v in d.visitors}


def test_a_small_day_still_has_a_flat_tyre_on_a_visitor_s_car() -> None:
    small = plan(visitors=60)
    assert [i.kind for i in small.incidents].count("flat_tyre") == 1
    for incident in small.incidents:
        if incident.visitor_index is not None:
            assert small.visitors[incident.visitor_index].plate is not None


def test_every_round_is_planned_once_and_skips_only_its_own_checkpoints() -> None:
    days = [plan(seed=s, visitors=0) for s in range(300)]
    rounds = [r for d in days for r in d.rounds]
    for d in days:
        assert [r.round_id for r in d.rounds] == list(ROUTES)
    missed = [r for r in rounds if r.start_delay_minutes is None]
    started = [r for r in rounds if r.start_delay_minutes is not None]
    assert 0.08 <= share(len(missed), len(rounds)) <= 0.17
    assert all(not r.skips for r in missed)
    for r in started:
        assert r.start_delay_minutes is not None
        assert 0 <= r.start_delay_minutes <= 4
        assert len(r.skips) <= 1
        assert set(r.skips) <= set(ROUTES[r.round_id])
    assert 0.11 <= share(sum(bool(r.skips) for r in started), len(started)) <= 0.23


def test_a_flat_list_of_checkpoints_serves_every_round() -> None:
    flat = plan(visitors=0, checkpoints=ALL_CHECKPOINTS)
    for r in flat.rounds:
        assert set(r.skips) <= set(ALL_CHECKPOINTS)


def test_messages_praise_and_complain_about_staffed_windows_in_chinese(day: DayPlan) -> None:
    messages = day.messages
    assert len(messages) == VISITORS // 100
    assert [m.at for m in messages] == sorted(m.at for m in messages)
    kinds = Counter(m.kind for m in messages)
    assert set(kinds) <= {"praise", "suggestion", "complaint", None}
    assert 0.3 <= share(kinds["praise"], len(messages)) <= 0.7
    assert kinds["suggestion"]
    assert kinds["complaint"]
    for m in messages:
        assert day.opens_at <= m.at <= day.closes_at
        assert re.search(r"[\u4e00-\u9fff]", m.text)
        assert len(m.text) <= 1000
        if m.kind in ("praise", "complaint"):
            assert m.window_id in WINDOW_IDS
            assert f"{int(m.window_id[1:])}号窗口" in m.text
        if m.contact is not None:
            assert normalise_phone(m.contact) == m.contact


def test_each_window_asks_for_lunch_once_between_half_past_eleven_and_half_past_one(day: DayPlan) -> None:
    assert sorted(lunch.window_id for lunch in day.lunches) == sorted(WINDOW_IDS)
    for lunch in day.lunches:
        assert time(11, 30) <= local(lunch.asks_at) < time(13, 30)
        assert 35 <= lunch.minutes <= 55
    assert 40 <= sum(lunch.minutes for lunch in day.lunches) / len(day.lunches) <= 50


def test_lunch_in_turns_leaves_every_category_a_window_at_every_minute(day: DayPlan) -> None:
    serving = {w["id"]: set(w["categories"]) for w in WINDOWS}
    away = [(lunch.window_id, lunch.asks_at, lunch.asks_at + timedelta(minutes=lunch.minutes)) for lunch in day.lunches]
    at = day.opens_at + timedelta(hours=2, minutes=30)  # 11:30 local
    while local(at) < time(14, 30):
        out = {w for w, start, end in away if start <= at < end}
        for letter in LETTERS:
            assert any(letter in serving[w] for w in WINDOW_IDS if w not in out), (letter, local(at))
        at += timedelta(minutes=1)


# --- edges


def test_an_empty_day_still_has_its_rounds_and_lunches() -> None:
    empty = plan(visitors=0)
    assert empty.visitors == empty.incidents == empty.messages == ()
    assert len(empty.rounds) == len(ROUTES)
    assert len(empty.lunches) == len(WINDOW_IDS)


def test_items_in_an_unknown_category_are_refused() -> None:
    with pytest.raises(ValueError, match="Q"):
        plan(items=[*ITEMS, Item(code="Q001", category="Q", expected_minutes=5)])
