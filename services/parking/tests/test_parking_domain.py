"""The car park's rules, without Kafka or MongoDB: the lot's count and its full/available sign,
the guards' patrol rounds, and incidents on parked cars."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from goldenkey.contracts import (
    IncidentEscalated,
    IncidentReported,
    IncidentResolved,
    LotAvailable,
    LotFull,
    OwnerNotified,
    PatrolCompleted,
    PatrolMissed,
    TicketPaged,
    TyreAlert,
    envelope_for,
    spec_for,
)
from goldenkey.contracts.vocabulary import IncidentKind
from goldenkey.kit import Aggregate, Conflict, Invalid, ManualClock, pii
from goldenkey.kit.errors import Forbidden
from goldenkey.parking.domain import (
    EARLY_START,
    NOTIFY_WITHIN,
    STEPS,
    Checkpoint,
    Entry,
    Incident,
    IncidentStatus,
    Lot,
    LotPlan,
    Patrol,
    PatrolSchedule,
    Round,
    ScheduledRound,
    Step,
    Zone,
    lot_crossing,
    may,
    round_is_missed,
    round_to_start,
    rounds_of_day,
    same_problem,
)
from goldenkey.parking.store import shipped

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Xi'an
DAY = date(2026, 11, 25)
HALL = ZoneInfo("Asia/Shanghai")
FIVE_MINUTES = timedelta(minutes=5)


def types(aggregate: Aggregate) -> list[str]:
    """The CloudEvents types of what an aggregate recorded, in order."""
    return [spec_for(type(p.data)).type for p in aggregate.pending_events]


# --- the lot ---------------------------------------------------------------------------------------


def plan(spaces: int = 10, reopen_free: int = 3, *, more: dict[str, int] | None = None) -> LotPlan:
    zones = [Zone(zone_id="A", name_zh="A区", name_en="Zone A", spaces=spaces)]
    zones += [Zone(zone_id=z, name_zh=f"{z}区", name_en=f"Zone {z}", spaces=n) for z, n in (more or {}).items()]
    return LotPlan(
        lot_id="QJ-MAIN", name_zh="停车场", name_en="Car park", default_zone="A", reopen_free=reopen_free, zones=zones
    )


def lot_of(spaces: int = 10, reopen_free: int = 3, *, more: dict[str, int] | None = None) -> Lot:
    return Lot(id="QJ-MAIN", plan=plan(spaces, reopen_free, more=more))


def entry(visit: str, zone: str = "A", since: datetime = T0, plate: str = "陕A12345") -> Entry:
    return Entry(visit_id=visit, zone=zone, since=since, plate=plate)


def fill(lot: Lot, cars: int, at: datetime = T0) -> None:
    """`cars` cars come in, plates h-1…h-n under visits v-1…v-n."""
    for n in range(1, cars + 1):
        lot.enter(f"h-{n}", entry(f"v-{n}"), at)


def test_the_lot_is_full_exactly_when_its_last_space_is_taken() -> None:
    assert lot_crossing(False, 9, 10, 3) is None
    assert lot_crossing(False, 10, 10, 3) == "full"
    assert lot_crossing(False, 11, 10, 3) == "full", "more cars than spaces is full too"
    assert lot_crossing(True, 10, 10, 3) is None, "full already: no news"


def test_a_full_lot_is_announced_available_only_once_the_margin_is_free() -> None:
    assert lot_crossing(True, 9, 10, 3) is None
    assert lot_crossing(True, 8, 10, 3) is None
    assert lot_crossing(True, 7, 10, 3) == "available"
    assert lot_crossing(True, 0, 10, 3) == "available"
    assert lot_crossing(False, 7, 10, 3) is None, "not full: nothing to reopen"


def test_the_lot_announces_full_when_the_last_car_comes_in_with_its_count() -> None:
    lot = lot_of(spaces=3, reopen_free=1)
    fill(lot, 2)
    assert not lot.pending_events
    lot.enter("h-3", entry("v-3"), T0 + timedelta(minutes=1))
    [full] = lot.pending_events
    assert full.data == LotFull(lot_id="QJ-MAIN", capacity=3, occupied=3)
    assert full.at == T0 + timedelta(minutes=1)
    assert (lot.full, lot.free) == (True, 0)


def test_a_car_leaving_and_another_coming_in_at_the_edge_does_not_flap_the_sign() -> None:
    lot = lot_of(spaces=10, reopen_free=3)
    fill(lot, 10)
    for n in range(11, 15):  # one out, one in, four times over
        lot.leave(f"h-{n - 10}", T0)
        lot.enter(f"h-{n}", entry(f"v-{n}"), T0)
    assert types(lot) == ["lot.full"]
    lot.leave("h-11", T0)
    lot.leave("h-12", T0)
    assert types(lot) == ["lot.full"], "two free spaces are not the margin of three"
    lot.leave("h-13", T0)
    assert types(lot) == ["lot.full", "lot.available"]
    assert lot.pending_events[-1].data == LotAvailable(lot_id="QJ-MAIN", capacity=10, occupied=7)
    assert not lot.full


Move = tuple[str, int]
MOVES = st.lists(
    st.tuples(st.sampled_from(["in", "in", "out", "out", "again", "stranger"]), st.integers(0, 99)),
    min_size=30,
    max_size=100,
)
"""A car comes in; car number k inside leaves; car k inside comes in again, not seen leaving; a car
never counted in leaves."""


@settings(max_examples=300, deadline=None, derandomize=True)  # the same sequences on every run
@given(spaces=st.integers(1, 8), margin=st.integers(1, 8), moves=MOVES)
def test_the_sign_alternates_full_and_available_and_changes_only_at_a_crossing(
    spaces: int, margin: int, moves: list[Move]
) -> None:
    reopen_free = min(margin, spaces)
    lot = lot_of(spaces=spaces, reopen_free=reopen_free)
    inside: list[str] = []
    shown_full = False
    for n, (move, k) in enumerate(moves):
        at, before = T0 + timedelta(seconds=n), len(lot.pending_events)
        if move == "in":
            inside.append(f"h-{n}")
            assert lot.enter(f"h-{n}", entry(f"v-{n}"), at) is None
        elif move == "again" and inside:
            assert lot.enter(inside[k % len(inside)], entry(f"v-{n}"), at) is not None
        elif move == "out" and inside:
            assert lot.leave(inside.pop(k % len(inside)), at) is not None
        else:
            assert lot.leave(f"h-stranger-{n}", at) is None
        assert lot.occupied == len(inside)
        new = lot.pending_events[before:]
        if not shown_full and len(inside) >= spaces:
            expected: type | None = LotFull
        elif shown_full and spaces - len(inside) >= reopen_free:
            expected = LotAvailable
        else:
            expected = None
        assert [type(p.data) for p in new] == ([expected] if expected else [])
        if expected is not None:
            shown_full = expected is LotFull
            assert new[0].data.occupied == len(inside)  # type: ignore[attr-defined]
            assert new[0].at == at
        assert lot.full == shown_full
    announced = types(lot)
    assert all(a != b for a, b in itertools.pairwise(announced)), announced
    assert announced[:1] in ([], ["lot.full"]), "an empty lot is never announced available first"


def test_a_plate_already_inside_under_another_visit_returns_the_stale_entry_and_keeps_the_count() -> None:
    lot = lot_of()
    first = entry("v-1")
    lot.enter("h-1", first, T0)
    again = entry("v-2", since=T0 + timedelta(hours=3))
    stale = lot.enter("h-1", again, T0 + timedelta(hours=3))
    assert stale == first, "the visit it was not seen leaving, to be closed"
    assert lot.occupied == 1
    assert lot.inside == {"h-1": again}


def test_a_retried_arrival_of_the_same_visit_changes_nothing() -> None:
    lot = lot_of()
    first = entry("v-1")
    lot.enter("h-1", first, T0)
    assert lot.enter("h-1", entry("v-1", since=T0 + timedelta(seconds=30)), T0 + timedelta(seconds=30)) is None
    assert lot.inside == {"h-1": first}
    assert lot.occupied == 1


def test_an_arrival_without_a_zone_is_counted_in_the_default_zone_and_an_unknown_zone_is_refused() -> None:
    lot = lot_of(more={"B": 20})
    assert lot.zone(None) == "A"
    assert lot.zone("B") == "B"
    with pytest.raises(Invalid, match=re.escape("the lot has no zone 'Z'; its zones are ['A', 'B']")):
        lot.zone("Z")


def test_a_car_leaving_that_was_never_counted_in_uses_up_a_head_counts_extra_car() -> None:
    lot = lot_of()
    fill(lot, 1)
    lot.head_count(3, "G01", T0)  # two cars came in that the gate did not see
    assert (lot.occupied, lot.adjustment) == (3, 2)
    assert lot.leave("h-unknown", T0) is None
    assert (lot.occupied, lot.adjustment) == (2, 1)
    lot.leave("h-unknown-2", T0)
    lot.leave("h-unknown-3", T0)  # the head count explained only two
    assert (lot.occupied, lot.adjustment) == (1, 0)


def test_a_car_leaving_that_was_never_counted_in_changes_nothing_without_a_head_count() -> None:
    lot = lot_of()
    fill(lot, 2)
    assert lot.leave("h-unknown", T0) is None
    assert (lot.occupied, lot.adjustment) == (2, 0)
    assert set(lot.inside) == {"h-1", "h-2"}


def test_a_car_a_lower_head_count_missed_is_taken_off_once_found_gone_unseen() -> None:
    lot = lot_of(spaces=10)
    fill(lot, 3)  # h-3 leaves unseen: the records still count it
    lot.head_count(2, "g-1", T0 + timedelta(minutes=5))
    assert (lot.occupied, lot.adjustment) == (2, -1)
    lot.enter("h-3", entry("v-3b", since=T0 + timedelta(minutes=9)), T0 + timedelta(minutes=9))
    assert (lot.occupied, lot.adjustment) == (3, 0), "h-3 is back: three cars, and the correction is spent"


def test_a_car_seen_twice_that_a_head_count_counted_once_stays_counted_once_when_merged() -> None:
    lot = lot_of(spaces=10)
    lot.enter("h-misread", entry("v-1"), T0)
    lot.enter("h-right", entry("v-2"), T0)  # one car, read twice
    lot.head_count(1, "g-1", T0 + timedelta(minutes=5))
    lot.rekey("v-1", "h-misread", "h-right", "陕A12345", T0 + timedelta(minutes=6))
    assert (lot.occupied, lot.adjustment) == (1, 0)


def test_a_stale_visit_that_came_in_after_the_head_count_leaves_its_correction_alone() -> None:
    lot = lot_of(spaces=10)
    fill(lot, 3)
    lot.head_count(2, "g-1", T0 + timedelta(minutes=5))  # some other car is gone unseen
    lot.enter("h-4", entry("v-4", since=T0 + timedelta(minutes=6)), T0 + timedelta(minutes=6))
    lot.enter("h-4", entry("v-4b", since=T0 + timedelta(minutes=8)), T0 + timedelta(minutes=8))
    assert (lot.occupied, lot.adjustment) == (3, -1), "h-4 was counted after the count: not the car it missed"


def test_a_head_count_makes_the_lots_count_the_guards() -> None:
    lot = lot_of()
    fill(lot, 4)
    up = lot.head_count(6, "G01", T0)
    assert (up.counted, up.recorded, up.guard_id, up.at) == (6, 4, "G01", T0)
    assert lot.occupied == 6
    later = T0 + timedelta(hours=1)
    down = lot.head_count(2, "G02", later)
    assert (down.counted, down.recorded) == (2, 6)
    assert (lot.occupied, lot.adjustment) == (2, -2)
    assert lot.last_head_count == down
    assert len(lot.inside) == 4, "the visits stay open: the head count lists them, nobody closes them here"


def test_a_head_count_that_fills_the_lot_announces_it_full_and_one_that_empties_it_available() -> None:
    lot = lot_of(spaces=10, reopen_free=3)
    fill(lot, 5)
    lot.head_count(10, "G01", T0)
    lot.head_count(7, "G01", T0)
    assert types(lot) == ["lot.full", "lot.available"]


def test_a_corrected_plate_is_counted_under_it_and_a_car_seen_twice_is_merged() -> None:
    lot = lot_of()
    lot.enter("h-misread", entry("v-1", plate="陕A12845"), T0)
    lot.enter("h-right", entry("v-2", plate="陕A12345"), T0)
    duplicate = lot.rekey("v-1", "h-misread", "h-right", "陕A12345", T0)
    assert duplicate is not None
    assert duplicate.visit_id == "v-2", "the other visit of the same car, to be closed"
    assert list(lot.inside) == ["h-right"]
    assert (lot.inside["h-right"].visit_id, lot.inside["h-right"].plate) == ("v-1", "陕A12345")
    assert lot.occupied == 1


def test_a_corrected_plate_nobody_else_has_is_just_rekeyed() -> None:
    lot = lot_of()
    lot.enter("h-misread", entry("v-1", plate="陕A12845"), T0)
    assert lot.rekey("v-1", "h-misread", "h-right", "陕A12345", T0) is None
    assert lot.inside["h-right"].plate == "陕A12345"
    assert lot.occupied == 1
    assert lot.rekey("v-9", "h-not-inside", "h-other", "陕A99999", T0) is None
    assert set(lot.inside) == {"h-right"}


def test_correcting_a_visit_whose_plate_another_visit_took_since_leaves_that_one_counted() -> None:
    lot = lot_of()
    lot.enter("h-1", entry("v-old"), T0)
    lot.enter("h-1", entry("v-new"), T0 + timedelta(minutes=1))  # v-old was stale: replaced
    assert lot.rekey("v-old", "h-1", "h-2", "陕A22222", T0 + timedelta(minutes=2)) is None
    assert (set(lot.inside), lot.inside["h-1"].visit_id) == ({"h-1"}, "v-new")


@pytest.mark.parametrize("space", ["A-1", "A-6", "B-017", "B-20", "B-0001"])
def test_a_space_within_a_zone_is_accepted(space: str) -> None:
    lot_of(spaces=6, more={"B": 20}).check_space(space)


def test_a_space_in_a_zone_whose_id_has_a_hyphen_or_with_a_five_digit_number_is_accepted() -> None:
    lot = lot_of(spaces=6, more={"A-NORTH": 10, "VISITORS1": 5, "B": 10000})
    for space in ("A-NORTH-1", "A-NORTH-10", "VISITORS1-5", "B-10000", "A-6"):
        lot.check_space(space)
    with pytest.raises(Invalid):
        lot.check_space("A-NORTH-11")


@pytest.mark.parametrize("space", ["A-0", "A-7", "B-021", "C-1", "B17", "b-017", "B-", "-1", "", "B-017 "])
def test_a_space_that_is_not_in_the_lot_is_refused_naming_the_lots_spaces(space: str) -> None:
    lot = lot_of(spaces=6, more={"B": 20})
    message = f"the lot has no space {space!r}; its spaces are A-1…A-6, B-1…B-20"
    with pytest.raises(Invalid, match=re.escape(message)) as refused:
        lot.check_space(space)
    assert refused.value.status == 422


def test_a_lot_plan_has_unique_zones_a_known_default_zone_and_a_margin_it_can_free() -> None:
    a = {"zone_id": "A", "name_zh": "A区", "name_en": "Zone A", "spaces": 6}
    b = {"zone_id": "B", "name_zh": "B区", "name_en": "Zone B", "spaces": 4}
    base = {"lot_id": "QJ-MAIN", "name_zh": "停车场", "name_en": "Car park", "default_zone": "A", "zones": [a, b]}
    assert LotPlan.model_validate({**base, "reopen_free": 10}).capacity == 10
    with pytest.raises(ValidationError, match=re.escape("zone ids must be unique: ['A', 'A']")):
        LotPlan.model_validate({**base, "zones": [a, a], "reopen_free": 1})
    with pytest.raises(ValidationError, match=re.escape("default_zone 'C' is not one of the zones ['A', 'B']")):
        LotPlan.model_validate({**base, "default_zone": "C"})
    with pytest.raises(ValidationError, match=re.escape("reopen_free 11 is more than the lot's 10 spaces")):
        LotPlan.model_validate({**base, "reopen_free": 11})
    with pytest.raises(ValidationError):
        LotPlan.model_validate({**base, "reopen_free": 0})
    with pytest.raises(ValidationError):
        LotPlan.model_validate({**base, "zones": []})


def test_a_replanned_lot_counts_cars_of_a_removed_zone_in_the_default_zone() -> None:
    lot = lot_of(spaces=10, reopen_free=2, more={"B": 5})
    lot.enter("h-1", entry("v-1", zone="B"), T0)
    lot.enter("h-2", entry("v-2", zone="A"), T0)
    lot.replan(plan(spaces=2, reopen_free=1), T0)
    assert lot.occupied_by_zone() == {"A": 2}
    assert types(lot) == ["lot.full"], "two cars in a lot of two spaces"
    other = LotPlan.model_validate({**plan().model_dump(), "lot_id": "ELSEWHERE"})
    with pytest.raises(Invalid, match="cannot be renamed to 'ELSEWHERE'"):
        lot.replan(other, T0)


def test_the_shipped_lot_validates() -> None:
    lot = LotPlan.model_validate(shipped("lot"))
    assert lot.lot_id == "QJ-MAIN"
    assert {z.zone_id: z.spaces for z in lot.zones} == {"A": 86, "B": 120, "ACC": 8, "EV": 24}
    assert (lot.capacity, lot.default_zone, lot.reopen_free) == (238, "A", 5)
    assert {z.kind for z in lot.zones} == {"standard", "accessible", "ev"}
    Lot(id=lot.lot_id, plan=lot).check_space("ACC-8")


def test_the_shipped_patrol_schedule_validates() -> None:
    schedule = PatrolSchedule.model_validate(shipped("patrols"))
    assert schedule.start_within == FIVE_MINUTES
    assert [r.at for r in schedule.rounds] == [f"{h:02d}:00" for h in range(9, 17)]
    everything = [c.checkpoint_id for c in schedule.checkpoints]
    assert everything[0] == "GATE"
    assert everything[-1] == "EXIT"
    assert schedule.route("R0900") == everything
    assert schedule.route("R1200") == ["GATE", "A-NORTH", "A-SOUTH", "ACC", "EV", "EXIT"], "no basement at lunch"
    assert schedule.route(None) == everything
    assert len(rounds_of_day(schedule, DAY, HALL, True)) == 8


# --- patrol rounds ---------------------------------------------------------------------------------


def checkpoint(checkpoint_id: str) -> Checkpoint:
    return Checkpoint(checkpoint_id=checkpoint_id, name_zh=checkpoint_id, name_en=checkpoint_id)


SCHEDULE = PatrolSchedule(
    checkpoints=[checkpoint("GATE"), checkpoint("EV"), checkpoint("EXIT")],
    rounds=[  # not in time order: the day's rounds are sorted
        Round(round_id="R1000", at="10:00", checkpoints=["GATE", "EXIT"]),
        Round(round_id="R0900", at="09:00"),
        Round(round_id="R0030", at="00:30"),
    ],
)
R0030, R0900, R1000 = rounds_of_day(SCHEDULE, DAY, HALL, True)
NINE = R0900.scheduled_at


def test_a_days_rounds_are_at_their_local_times_in_utc_earliest_first() -> None:
    assert [(r.round_id, r.patrol_id, r.scheduled_at) for r in rounds_of_day(SCHEDULE, DAY, HALL, True)] == [
        ("R0030", "2026-11-25-R0030", datetime(2026, 11, 24, 16, 30, tzinfo=UTC)),  # the day before, in UTC
        ("R0900", "2026-11-25-R0900", datetime(2026, 11, 25, 1, 0, tzinfo=UTC)),
        ("R1000", "2026-11-25-R1000", datetime(2026, 11, 25, 2, 0, tzinfo=UTC)),
    ]


def test_no_round_is_due_on_a_day_the_hall_is_closed() -> None:
    assert rounds_of_day(SCHEDULE, date(2026, 11, 28), HALL, False) == []


def test_a_schedule_names_only_its_own_checkpoints_once_each() -> None:
    with pytest.raises(ValidationError, match=re.escape("round R1 names unknown checkpoints ['ROOF']")):
        PatrolSchedule(
            checkpoints=[checkpoint("GATE")], rounds=[Round(round_id="R1", at="09:00", checkpoints=["ROOF"])]
        )
    with pytest.raises(ValidationError, match="checkpoint ids must be unique"):
        PatrolSchedule(checkpoints=[checkpoint("GATE"), checkpoint("GATE")], rounds=[])
    with pytest.raises(ValidationError, match="round ids must be unique"):
        PatrolSchedule(checkpoints=[checkpoint("GATE")], rounds=[Round(round_id="R1", at="09:00")] * 2)
    with pytest.raises(ValidationError, match="round R1 has no checkpoints"):
        PatrolSchedule(checkpoints=[checkpoint("GATE")], rounds=[Round(round_id="R1", at="09:00", checkpoints=[])])
    with pytest.raises(ValidationError):
        Round(round_id="R1", at="24:00")


def test_a_round_is_missed_exactly_five_minutes_after_its_time_unless_started() -> None:
    assert not round_is_missed(R0900, False, NINE + FIVE_MINUTES - timedelta(seconds=1), FIVE_MINUTES)
    assert round_is_missed(R0900, False, NINE + FIVE_MINUTES, FIVE_MINUTES)
    assert not round_is_missed(R0900, True, NINE + timedelta(hours=1), FIVE_MINUTES)


def walked(scheduled: ScheduledRound, at: datetime) -> Patrol:
    return Patrol.start(
        patrol_id=scheduled.patrol_id,
        day=DAY,
        route=SCHEDULE.route(scheduled.round_id),
        guard_id="G01",
        at=at,
        scheduled=scheduled,
    )


def reported_missed(scheduled: ScheduledRound) -> Patrol:
    return Patrol.missed(
        scheduled=scheduled, day=DAY, route=SCHEDULE.route(scheduled.round_id), at=scheduled.scheduled_at + FIVE_MINUTES
    )


def nine_and_ten() -> list[ScheduledRound]:
    return [R0900, R1000]


@pytest.mark.parametrize(
    "now",
    [NINE - EARLY_START, NINE - timedelta(minutes=1), NINE, NINE + FIVE_MINUTES - timedelta(seconds=1)],
    ids=["15 min early", "1 min early", "on time", "4 min 59 s late"],
)
def test_the_round_due_is_started_from_fifteen_minutes_early_to_five_minutes_late(now: datetime) -> None:
    assert round_to_start(nine_and_ten(), {}, now, FIVE_MINUTES) == R0900


def test_nothing_is_due_before_fifteen_minutes_ahead_of_the_first_round() -> None:
    assert round_to_start(nine_and_ten(), {}, NINE - EARLY_START - timedelta(seconds=1), FIVE_MINUTES) is None


def test_a_round_started_after_its_five_minutes_is_the_missed_one() -> None:
    assert round_to_start(nine_and_ten(), {}, NINE + FIVE_MINUTES, FIVE_MINUTES) == R0900
    missed = {R0900.patrol_id: reported_missed(R0900)}
    assert round_to_start(nine_and_ten(), missed, NINE + timedelta(minutes=20), FIVE_MINUTES) == R0900


def test_the_round_due_now_comes_before_a_missed_one() -> None:
    ten_to_ten = R1000.scheduled_at - timedelta(minutes=10)
    missed = {R0900.patrol_id: reported_missed(R0900)}
    assert round_to_start(nine_and_ten(), missed, ten_to_ten, FIVE_MINUTES) == R1000


def test_five_minutes_late_a_round_gives_way_to_the_next_one_due() -> None:
    close = SCHEDULE.model_copy(
        update={"rounds": [Round(round_id="R0900", at="09:00"), Round(round_id="R0920", at="09:20")]}
    )
    nine, twenty_past = rounds_of_day(close, DAY, HALL, True)
    assert round_to_start([nine, twenty_past], {}, NINE + FIVE_MINUTES - timedelta(seconds=1), FIVE_MINUTES) == nine
    assert round_to_start([nine, twenty_past], {}, NINE + FIVE_MINUTES, FIVE_MINUTES) == twenty_past


def test_with_nothing_due_the_latest_missed_round_is_walked() -> None:
    half_past_ten = R1000.scheduled_at + timedelta(minutes=30)
    assert round_to_start(nine_and_ten(), {}, half_past_ten, FIVE_MINUTES) == R1000
    both_missed = {r.patrol_id: reported_missed(r) for r in nine_and_ten()}
    assert round_to_start(nine_and_ten(), both_missed, half_past_ten, FIVE_MINUTES) == R1000
    ten_walked = {R1000.patrol_id: walked(R1000, R1000.scheduled_at)}
    assert round_to_start(nine_and_ten(), ten_walked, half_past_ten, FIVE_MINUTES) == R0900


def test_with_every_round_walked_a_guard_walks_outside_the_schedule() -> None:
    half_past_ten = R1000.scheduled_at + timedelta(minutes=30)
    done = {r.patrol_id: walked(r, r.scheduled_at) for r in nine_and_ten()}
    assert round_to_start(nine_and_ten(), done, half_past_ten, FIVE_MINUTES) is None
    assert round_to_start(nine_and_ten(), done, R1000.scheduled_at, FIVE_MINUTES) is None


def test_a_finished_round_reports_the_checkpoints_not_scanned() -> None:
    patrol = walked(R0900, NINE)
    patrol.scan("GATE", NINE + timedelta(minutes=1))
    patrol.scan("EXIT", NINE + timedelta(minutes=9))
    patrol.finish(NINE + timedelta(minutes=10))
    [completed] = patrol.pending_events
    assert isinstance(completed.data, PatrolCompleted)
    assert completed.data.complete is False
    assert completed.data.missing_checkpoints == ["EV"]
    assert completed.data.checkpoints_scanned == ["GATE", "EXIT"]
    assert (patrol.status, patrol.state) == ("completed", "incomplete")


def test_a_round_with_every_checkpoint_scanned_is_complete() -> None:
    patrol = walked(R1000, R1000.scheduled_at)
    patrol.scan("GATE", R1000.scheduled_at)
    patrol.scan("EXIT", R1000.scheduled_at + timedelta(minutes=5))
    patrol.finish(R1000.scheduled_at + timedelta(minutes=6))
    assert patrol.pending_events[-1].data == PatrolCompleted(
        patrol_id="2026-11-25-R1000",
        guard_id="G01",
        started_at=R1000.scheduled_at,
        finished_at=R1000.scheduled_at + timedelta(minutes=6),
        complete=True,
        checkpoints_scanned=["GATE", "EXIT"],
        missing_checkpoints=[],
        round_id="R1000",
        scheduled_at=R1000.scheduled_at,
        late=False,
    )
    assert patrol.state == "completed"


def test_scanning_a_checkpoint_not_on_the_round_is_invalid() -> None:
    patrol = walked(R1000, R1000.scheduled_at)  # GATE and EXIT only
    with pytest.raises(Invalid, match=re.escape("checkpoint 'EV' is not on round 2026-11-25-R1000")) as refused:
        patrol.scan("EV", R1000.scheduled_at)
    assert refused.value.status == 422
    assert patrol.scans == []


def test_scanning_on_a_finished_round_is_a_conflict() -> None:
    patrol = walked(R0900, NINE)
    patrol.finish(NINE + timedelta(minutes=10))
    with pytest.raises(Conflict, match="is completed: checkpoints are scanned on a round in progress") as refused:
        patrol.scan("GATE", NINE + timedelta(minutes=11))
    assert refused.value.status == 409
    with pytest.raises(Conflict, match="is completed: only a round in progress can be finished"):
        patrol.finish(NINE + timedelta(minutes=12))
    assert types(patrol) == ["patrol.completed"]


def test_scanning_a_checkpoint_twice_keeps_the_first_scan() -> None:
    patrol = walked(R0900, NINE)
    patrol.scan("GATE", NINE)
    patrol.scan("GATE", NINE + timedelta(minutes=2))
    assert [(s.checkpoint_id, s.at) for s in patrol.scans] == [("GATE", NINE)]
    assert patrol.missing == ["EV", "EXIT"]


def test_a_missed_round_is_recorded_missed_once() -> None:
    patrol = reported_missed(R0900)
    assert types(patrol) == ["patrol.missed"]
    assert patrol.pending_events[0].data == PatrolMissed(
        patrol_id="2026-11-25-R0900", scheduled_at=NINE, round_id="R0900"
    )
    assert patrol.pending_events[0].at == NINE + FIVE_MINUTES
    assert (patrol.state, patrol.guard_id, patrol.started_at, patrol.late) == ("missed", None, None, False)
    with pytest.raises(Conflict, match="is missed: checkpoints are scanned on a round in progress"):
        patrol.scan("GATE", NINE + timedelta(minutes=6))


def test_a_missed_round_can_still_be_walked_late_and_says_so() -> None:
    patrol = reported_missed(R0900)
    late = NINE + timedelta(minutes=40)
    patrol.start_late("G02", late)
    assert (patrol.status, patrol.guard_id, patrol.started_at, patrol.late) == ("in_progress", "G02", late, True)
    for checkpoint_id in patrol.route:
        patrol.scan(checkpoint_id, late)
    patrol.finish(late + timedelta(minutes=10))
    assert types(patrol) == ["patrol.missed", "patrol.completed"]
    completed = patrol.pending_events[-1].data
    assert isinstance(completed, PatrolCompleted)
    assert (completed.late, completed.complete, completed.guard_id) == (True, True, "G02")


@pytest.mark.parametrize("finished", [False, True], ids=["in progress", "completed"])
def test_only_a_missed_round_can_be_started_late(finished: bool) -> None:
    patrol = walked(R0900, NINE)
    if finished:
        patrol.finish(NINE + timedelta(minutes=10))
    state = "completed" if finished else "in progress"
    with pytest.raises(Conflict, match=f"round 2026-11-25-R0900 is {state}: it was started at"):
        patrol.start_late("G02", NINE + timedelta(minutes=30))
    assert patrol.guard_id == "G01"


def test_a_round_outside_the_schedule_walks_every_checkpoint() -> None:
    patrol = Patrol.start(patrol_id="p-extra", day=DAY, route=SCHEDULE.route(None), guard_id="G01", at=T0)
    assert (patrol.round_id, patrol.scheduled_at, patrol.route) == (None, None, ["GATE", "EV", "EXIT"])
    patrol.finish(T0 + timedelta(minutes=3))
    completed = patrol.pending_events[-1].data
    assert isinstance(completed, PatrolCompleted)
    assert (completed.round_id, completed.missing_checkpoints) == (None, ["GATE", "EV", "EXIT"])


# --- incidents -------------------------------------------------------------------------------------

STATUSES: tuple[IncidentStatus, ...] = get_args(IncidentStatus)
ALL_STEPS: tuple[Step, ...] = get_args(Step)
ALLOWED: dict[str, set[str]] = {
    "reported": {"notify", "escalate", "acknowledge", "resolve"},
    "escalated": {"notify", "acknowledge", "resolve"},
    "owner_notified": {"acknowledge", "resolve"},
    "acknowledged": {"resolve"},
    "resolved": set(),
}
"""The lifecycle, written out again by hand: the table in the rules must say the same."""
H1, H2 = pii.plate_hash("test-key", "陕A12345"), pii.plate_hash("test-key", "陕A12346")


def report(
    kind: IncidentKind = "lights_on", *, ticket: str | None = None, plate: bool = True, space: str | None = "B-017"
) -> Incident:
    return Incident.report(
        incident_id="inc-1",
        kind=kind,
        guard_id="G01",
        at=T0,
        plate="陕A12345" if plate else None,
        plate_hash=H1 if plate else None,
        plate_masked="陕A***45" if plate else None,
        space=space,
        visit_id="v-1" if plate else None,
        ticket_id=ticket,
    )


def page(incident: Incident, at: datetime, ticket: str = "t-1") -> bool:
    paged = TicketPaged(ticket_id=ticket, message="请到停车场", window_id="W03", incident_id=incident.id)
    cause = envelope_for(paged, time=at)
    return incident.owner_paged(ticket_id=ticket, window_id="W03", at=at, cause=cause)


def incident_in(status: IncidentStatus) -> Incident:
    """An incident brought to `status` the way the hall brings it there."""
    incident = report()
    if status == "escalated":
        assert incident.escalate_if_overdue(T0 + NOTIFY_WITHIN)
    elif status in ("owner_notified", "acknowledged", "resolved"):
        assert page(incident, T0 + timedelta(minutes=1))
        if status in ("acknowledged", "resolved"):
            incident.acknowledge(T0 + timedelta(minutes=2), guard_id="G01", by_ops=False, note=None)
        if status == "resolved":
            incident.resolve(T0 + timedelta(minutes=3), "the owner turned the lights off")
    assert incident.status == status
    return incident


def test_the_lifecycle_table_covers_every_status() -> None:
    assert set(STEPS) == set(STATUSES) == set(ALLOWED)


def take(incident: Incident, step: Step, at: datetime) -> bool:
    """Take a step the way the hall does; whether it was taken."""
    if step == "notify":
        return page(incident, at)
    if step == "escalate":
        return incident.escalate_if_overdue(at)
    if step == "acknowledge":
        incident.acknowledge(at, guard_id=None, by_ops=True, note=None)
    else:
        incident.resolve(at, "dealt with")
    return True


AFTER: dict[str, IncidentStatus] = {
    "notify": "owner_notified",
    "escalate": "escalated",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}


@pytest.mark.parametrize(("status", "step"), [(s, p) for s in STATUSES for p in ALL_STEPS])
def test_every_step_from_every_status_is_taken_or_refused_as_the_lifecycle_says(
    status: IncidentStatus, step: Step
) -> None:
    allowed = step in ALLOWED[status]
    assert may(status, step) is allowed
    incident = incident_in(status)
    before = len(incident.pending_events)
    at = T0 + timedelta(minutes=10)  # overdue, for the escalation
    if step in ("notify", "escalate"):
        # The queue's page and the escalation timer come when they come: one that is no longer
        # news answers False instead of failing.
        assert take(incident, step, at) is allowed
    elif allowed:
        assert take(incident, step, at)
    else:
        words = {"acknowledge": "be acknowledged", "resolve": "be resolved"}[step]
        state = status.replace("_", " ")
        with pytest.raises(Conflict, match=f"^incident inc-1 is {state}: it cannot {words}$") as refused:
            take(incident, step, at)
        assert refused.value.status == 409
    assert incident.status == (AFTER[step] if allowed else status)
    assert len(incident.pending_events) == before + (1 if allowed else 0)


def test_a_flat_tyre_is_announced_as_a_tyre_alert_carrying_the_ticket() -> None:
    incident = report("flat_tyre", ticket="t-1")
    [alert] = incident.pending_events
    assert isinstance(alert.data, TyreAlert)
    assert (alert.data.ticket_id, alert.data.plate_masked, alert.data.space) == ("t-1", "陕A***45", "B-017")
    assert alert.correlation_id == "t-1"
    assert "陕A12345" not in alert.data.model_dump_json()


@pytest.mark.parametrize("kind", [k for k in get_args(IncidentKind) if k != "flat_tyre"])
def test_any_other_problem_is_announced_as_an_incident_carrying_the_ticket(kind: IncidentKind) -> None:
    incident = report(kind, ticket="t-1")
    assert types(incident) == ["incident.reported"]
    reported = incident.pending_events[0].data
    assert isinstance(reported, IncidentReported)
    assert (reported.kind, reported.ticket_id, reported.visit_id, reported.reported_at) == (kind, "t-1", "v-1", T0)


def test_an_incident_on_a_car_without_a_ticket_is_correlated_by_its_own_id() -> None:
    incident = report(ticket=None)
    assert incident.pending_events[0].correlation_id == "inc-1"


def test_an_incident_names_the_cars_plate_or_its_space() -> None:
    report(plate=False, space="B-017")
    report(plate=True, space=None)
    with pytest.raises(Invalid, match="names the car's plate, or the space"):
        report(plate=False, space=None)


def test_paging_the_owner_links_the_ticket_and_measures_how_long_it_took() -> None:
    incident = report(ticket=None)
    assert page(incident, T0 + timedelta(minutes=2), ticket="t-9")
    notified = incident.pending_events[-1]
    assert notified.data == OwnerNotified(incident_id="inc-1", ticket_id="t-9", window_id="W03", notify_s=120.0)
    assert notified.causation is not None
    assert notified.causation.type == "ticket.paged"
    assert (incident.status, incident.ticket_id, incident.window_id, incident.notify_s) == (
        "owner_notified",
        "t-9",
        "W03",
        120.0,
    )


def test_an_escalated_incident_may_still_have_its_owner_paged() -> None:
    incident = incident_in("escalated")
    assert page(incident, T0 + timedelta(minutes=7))
    assert types(incident) == ["incident.reported", "incident.escalated", "owner.notified"]


@pytest.mark.parametrize("status", ["owner_notified", "acknowledged", "resolved"])
def test_a_page_after_someone_took_the_incident_in_hand_changes_nothing(status: IncidentStatus) -> None:
    incident = incident_in(status)
    before = incident.model_copy(deep=True)
    events = len(incident.pending_events)
    assert page(incident, T0 + timedelta(minutes=20), ticket="t-2") is False
    assert len(incident.pending_events) == events
    assert incident.model_dump() == before.model_dump()


@pytest.mark.parametrize(("ticket", "reason"), [(None, "no_ticket"), ("t-1", "not_paged")])
def test_an_owner_not_paged_within_five_minutes_is_escalated_once(ticket: str | None, reason: str) -> None:
    clock = ManualClock(T0)
    incident = report(ticket=ticket)
    assert not incident.escalate_if_overdue(clock.advance(timedelta(minutes=4, seconds=59)))
    assert types(incident) == ["incident.reported"]
    assert incident.escalate_if_overdue(clock.advance(timedelta(seconds=1)))
    assert not incident.escalate_if_overdue(clock.advance(timedelta(minutes=5)))
    assert types(incident) == ["incident.reported", "incident.escalated"]
    escalated = incident.pending_events[-1]
    assert escalated.data == IncidentEscalated(
        incident_id="inc-1", kind="lights_on", waited_s=300.0, ticket_id=ticket, reason=reason
    )
    assert escalated.at == T0 + NOTIFY_WITHIN
    assert (incident.status, incident.escalated_at) == ("escalated", T0 + NOTIFY_WITHIN)


def test_an_owner_paged_in_time_is_never_escalated() -> None:
    incident = report(ticket="t-1")
    page(incident, T0 + timedelta(minutes=4))
    assert not incident.escalate_if_overdue(T0 + timedelta(hours=1))
    assert "incident.escalated" not in types(incident)


def test_an_incident_is_acknowledged_by_a_guard_or_by_ops() -> None:
    by_guard = report()
    by_guard.acknowledge(T0 + timedelta(minutes=1), guard_id="G02", by_ops=False, note="owner on the way")
    assert by_guard.acknowledged_by == "G02"
    by_ops = incident_in("escalated")
    by_ops.acknowledge(T0 + timedelta(minutes=6), guard_id=None, by_ops=True, note=None)
    assert by_ops.acknowledged_by == "ops"
    assert types(by_ops)[-1] == "incident.acknowledged"


def test_a_resolution_records_how_long_it_took() -> None:
    incident = report("flat_tyre", ticket="t-1")
    incident.resolve(T0 + timedelta(minutes=12, seconds=30), "pumped up", guard_id="G01", assistance_id="a-1")
    assert incident.pending_events[-1].data == IncidentResolved(
        incident_id="inc-1",
        resolution="pumped up",
        ticket_id="t-1",
        kind="flat_tyre",
        assistance_id="a-1",
        resolve_s=750.0,
        guard_id="G01",
    )
    assert (incident.status, incident.resolve_s, incident.resolved_by) == ("resolved", 750.0, "G01")


def test_a_second_report_of_an_open_problem_on_the_same_car_is_the_same_problem() -> None:
    incident = report("lights_on")
    assert same_problem(incident, "lights_on", H1, None)
    assert same_problem(incident, "lights_on", H1, "A-3"), "the plate decides, not the space"
    assert not same_problem(incident, "lights_on", H2, "B-017")
    assert not same_problem(incident, "window_open", H1, None)
    assert not same_problem(incident, "lights_on", None, "B-017"), "a report by space is not one by plate"


def test_a_report_by_space_is_the_same_problem_as_one_on_that_space_without_a_plate() -> None:
    incident = report("blocking", plate=False, space="B-017")
    assert same_problem(incident, "blocking", None, "B-017")
    assert not same_problem(incident, "blocking", None, "B-018")
    assert not same_problem(incident, "blocking", H1, "B-017")


@pytest.mark.parametrize("status", STATUSES)
def test_only_an_open_incident_is_the_same_problem(status: IncidentStatus) -> None:
    assert same_problem(incident_in(status), "lights_on", H1, None) is (status != "resolved")


def test_a_guard_s_own_handset_scans_and_finishes_only_their_own_round() -> None:
    patrol = Patrol.start(patrol_id="p-1", day=DAY, route=["GATE", "A-NORTH"], guard_id="G1", at=T0)
    patrol.must_be_walked_by("G1")
    with pytest.raises(Forbidden, match="walked by G1"):
        patrol.must_be_walked_by("G2")
