"""The feedback service's rules, without Kafka or MongoDB: the five-level scale, deadlines in working
days, one rating per service and its appeal, the message book, complaint cases and the figures."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from goldenkey.contracts import (
    ComplaintOpened,
    ComplaintOverdue,
    MessagePosted,
    PraiseReceived,
    RatingAppealDecided,
    RatingAppealed,
    RatingSubmitted,
    spec_for,
)
from goldenkey.contracts.vocabulary import ComplaintComplexity, MessageKind, SubjectType
from goldenkey.feedback.domain import (
    CAR_PARK,
    CONCIERGE_DESK,
    LEVELS,
    Complaint,
    Deadline,
    Deadlines,
    Figures,
    GroupBy,
    Invitation,
    Message,
    Rating,
    Rules,
    deadline,
    figures,
    is_bad_review,
    is_satisfied,
    mask_contact,
    month_bounds,
    month_ranking,
    previous_month,
    ranks,
    rectify_deadline_days,
)
from goldenkey.feedback.workdays import OfficialYear, WorkingDays
from goldenkey.kit import Aggregate, Conflict, Invalid
from goldenkey.kit.errors import Forbidden

HALL = ZoneInfo("Asia/Shanghai")
CLOSES = time(17, 0)
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Xi'an
DAY = date(2026, 11, 23)
RULES = Rules()
DEADLINES = RULES.deadlines
CONTACT = "13912345678"


def types(aggregate: Aggregate) -> list[str]:
    """The CloudEvents types of what an aggregate recorded, in order."""
    return [spec_for(type(p.data)).type for p in aggregate.pending_events]


def at_close(day: date) -> datetime:
    """The hall's closing time on `day`."""
    return datetime.combine(day, CLOSES, HALL)


def hall_time(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), HALL).astimezone(UTC)


def due(start: datetime, working_days: int, rules: Rules = RULES) -> Deadline:
    return deadline(start, working_days, rules.working_days(), HALL, CLOSES)


# --- the scale -------------------------------------------------------------------------------------


def test_the_scale_has_five_levels_best_first() -> None:
    assert list(LEVELS) == [5, 4, 3, 2, 1]
    assert LEVELS[5] == ("非常满意", "very satisfied")
    assert LEVELS[3] == ("基本满意", "basically satisfied")
    assert LEVELS[1] == ("非常不满意", "very unsatisfied")


def test_only_levels_one_and_two_are_a_bad_review() -> None:
    assert [score for score in LEVELS if is_bad_review(score)] == [2, 1]


def test_only_levels_four_and_five_are_satisfied_and_three_is_neither() -> None:
    assert [score for score in LEVELS if is_satisfied(score)] == [5, 4]
    assert not is_satisfied(3)
    assert not is_bad_review(3)


# --- the rules -------------------------------------------------------------------------------------


def shipped_rules() -> Any:
    return json.loads(files("goldenkey.feedback.data").joinpath("rules.json").read_text(encoding="utf-8"))


def test_the_shipped_rules_validate_with_the_default_deadlines() -> None:
    rules = Rules.model_validate(shipped_rules())
    assert rules.deadlines == Deadlines(verify=1, rectify_simple=2, rectify_complex=15, follow_up=2)
    assert (rules.hall_closed, rules.hall_opened, rules.official) == ([], [], {})
    assert rules == Rules(), "the shipped file says what the defaults say"


@pytest.mark.parametrize(
    "document",
    [
        {"hall_closed": ["2026-02-30"]},
        {"hall_opened": ["2026-10-1"]},
        {"hall_closed": ["2026/10/01"]},
        {"hall_closed": ["2026-10-01T09:00"]},
        {"official": {"2027": {"holidays": ["2027-13-01"]}}},
        {"official": {"2027": {"workdays": ["2027-02-29"]}}},
        {"official": {"27": {}}},
        {"official": {"2027": {"holidays": [], "weekends": []}}},
        {"deadlines": {"verify": 0}},
        {"deadlines": {"rectify_complex": 61}},
        {"deadlines": {"follow_up": 1, "call_back": 2}},
        {"closing_days": ["2026-10-01"]},
    ],
)
def test_rules_refuse_a_date_that_does_not_exist_or_a_field_or_deadline_that_does_not_fit(
    document: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        Rules.model_validate(document)


def test_rules_give_the_working_days_with_the_halls_days_and_the_official_years() -> None:
    rules = Rules.model_validate(
        {
            "hall_closed": ["2026-11-30"],
            "hall_opened": ["2026-11-28"],
            "official": {"2027": {"holidays": ["2027-01-01"], "workdays": ["2027-01-09"]}},
        }
    )
    assert rules.working_days() == WorkingDays.of(
        closed=[date(2026, 11, 30)],
        opened=[date(2026, 11, 28)],
        official={2027: OfficialYear(frozenset({date(2027, 1, 1)}), frozenset({date(2027, 1, 9)}))},
    )


# --- deadlines -------------------------------------------------------------------------------------


def test_a_deadline_is_the_halls_closing_time_on_the_due_day_as_an_aware_datetime() -> None:
    found = due(hall_time(date(2026, 11, 27), 10), 1)  # a Friday
    assert found == Deadline(at_close(date(2026, 11, 30)), estimated=False)
    assert found.due_at.tzinfo is not None
    assert found.due_at.utcoffset() == timedelta(0), "in the start's zone"
    assert found.due_at.astimezone(HALL).time() == CLOSES
    assert found.due_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_a_deadline_counts_from_the_halls_day_not_the_utc_one() -> None:
    start = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)  # Thursday in UTC, Friday 01:30 in the hall
    assert due(start, 1).due_at == at_close(date(2026, 11, 30))


def test_a_deadline_skips_the_national_day_week_and_counts_its_make_up_saturday() -> None:
    opened = hall_time(date(2026, 9, 30), 15)
    assert due(opened, 1).due_at == at_close(date(2026, 10, 8))
    assert due(opened, 3).due_at == at_close(date(2026, 10, 10)), "Saturday 10 October is worked"
    assert due(opened, 4).due_at == at_close(date(2026, 10, 12))
    for n in range(1, 5):
        assert not (date(2026, 10, 1) <= due(opened, n).due_at.astimezone(HALL).date() <= date(2026, 10, 7))


def test_a_deadline_falls_on_a_make_up_saturday() -> None:
    assert due(hall_time(date(2026, 2, 13), 10), 1).due_at == at_close(date(2026, 2, 14))


def test_a_deadline_skips_the_halls_own_closing_day_and_counts_a_day_it_opens() -> None:
    friday = hall_time(date(2026, 11, 27), 10)
    closed = Rules.model_validate({"hall_closed": ["2026-11-30"]})
    assert due(friday, 1, closed).due_at == at_close(date(2026, 12, 1))
    opened = Rules.model_validate({"hall_opened": ["2026-11-28"]})
    assert due(friday, 1, opened).due_at == at_close(date(2026, 11, 28))


def test_a_deadline_into_a_year_given_in_the_rules_uses_its_holidays_and_make_up_days() -> None:
    rules = Rules.model_validate(
        {"official": {"2027": {"holidays": ["2027-01-01", "2027-01-02", "2027-01-03"], "workdays": ["2027-01-09"]}}}
    )
    new_years_eve = hall_time(date(2026, 12, 31), 10)
    assert due(new_years_eve, 1, rules) == Deadline(at_close(date(2027, 1, 4)), estimated=False)
    assert due(hall_time(date(2027, 1, 8), 10), 1, rules) == Deadline(at_close(date(2027, 1, 9)), estimated=False)


def test_a_deadline_into_a_year_without_the_calendar_is_counted_monday_to_friday_and_flagged() -> None:
    new_years_eve = hall_time(date(2026, 12, 31), 10)
    assert due(new_years_eve, 1) == Deadline(at_close(date(2027, 1, 1)), estimated=True)
    assert due(hall_time(date(2027, 1, 8), 10), 1) == Deadline(at_close(date(2027, 1, 11)), estimated=True)
    assert not due(hall_time(date(2026, 12, 30), 10), 1).estimated, "due on 31 December: official"


# --- invitations and ratings -----------------------------------------------------------------------


def invitation(
    subject_id: str = "T-0001",
    *,
    subject_type: SubjectType = "ticket",
    unit: str = "W01",
    window_id: str | None = "W01",
    staff_id: str | None = "S01",
    category: str | None = "C1",
    ticket_id: str | None = "T-0001",
    rating_id: str | None = None,
) -> Invitation:
    return Invitation(
        id=subject_id,
        subject_type=subject_type,
        unit=unit,
        window_id=window_id,
        staff_id=staff_id,
        category=category,
        ticket_id=ticket_id,
        invited_at=T0,
        rating_id=rating_id,
    )


def rate(score: int, invited: Invitation | None = None, *, day: date = DAY, comment: str | None = None) -> Rating:
    invited = invited or invitation()
    return Rating.submit(
        rating_id=f"R-{invited.id}",
        invitation=invited,
        score=score,
        reasons=["attitude"] if score <= 2 else [],
        comment=comment,
        at=T0,
        day=day,
    )


def test_a_rating_takes_what_it_rates_from_its_invitation() -> None:
    rating = rate(4)
    assert (rating.subject_type, rating.subject_id, rating.unit) == ("ticket", "T-0001", "W01")
    assert (rating.window_id, rating.staff_id, rating.category, rating.ticket_id) == ("W01", "S01", "C1", "T-0001")
    assert (rating.rated_at, rating.day, rating.appeal) == (T0, "2026-11-23", None)
    assert rating.counted
    [submitted] = rating.pending_events
    assert submitted.data == RatingSubmitted(
        rating_id="R-T-0001",
        subject_type="ticket",
        subject_id="T-0001",
        score=4,
        reasons=[],
        bad_review=False,
        window_id="W01",
        category="C1",
        staff_id="S01",
        unit="W01",
        ticket_id="T-0001",
    )
    assert (submitted.at, submitted.correlation_id) == (T0, "T-0001")


@pytest.mark.parametrize(("score", "bad"), [(1, True), (2, True), (3, False), (4, False), (5, False)])
def test_the_rating_event_says_whether_it_is_a_bad_review(score: int, bad: bool) -> None:
    rating = rate(score)
    assert rating.bad is bad
    [submitted] = rating.pending_events
    assert isinstance(submitted.data, RatingSubmitted)
    assert submitted.data.bad_review is bad


def test_the_rating_event_carries_no_comment_or_other_free_text() -> None:
    comment = "王先生 13912345678：窗口态度很差"
    rating = rate(1, comment=comment)
    assert rating.comment == comment, "kept in the rating, for ops"
    [submitted] = rating.pending_events
    assert "comment" not in RatingSubmitted.model_fields
    dumped = submitted.data.model_dump_json()
    assert "王先生" not in dumped
    assert CONTACT not in dumped
    assert "态度" not in dumped


def test_an_assistance_without_a_ticket_is_correlated_by_its_own_id() -> None:
    assisted = invitation(
        "A-0001", subject_type="assistance", unit=CONCIERGE_DESK, window_id=None, staff_id="CG01", ticket_id=None
    )
    [submitted] = rate(5, assisted).pending_events
    assert submitted.correlation_id == "A-0001"


def test_a_service_is_rated_only_once() -> None:
    with pytest.raises(Conflict, match=re.escape("ticket T-0001 is rated already: one rating per service")) as refused:
        rate(5, invitation(rating_id="R-earlier"))
    assert refused.value.status == 409


@pytest.mark.parametrize("score", [0, 6, -1])
def test_a_score_off_the_five_levels_is_refused(score: int) -> None:
    with pytest.raises(ValidationError):
        rate(score)


def test_a_rating_is_appealed_once() -> None:
    rating = rate(1)
    rating.appeal_as("mistaken", "rated the wrong window", T0 + timedelta(hours=1))
    assert rating.appeal is not None
    assert (rating.appeal.ground, rating.appeal.verdict) == ("mistaken", None)
    assert rating.counted, "still counted while the appeal is pending"
    assert types(rating) == ["rating.submitted", "rating.appealed"]
    assert rating.pending_events[-1].data == RatingAppealed(
        rating_id="R-T-0001",
        subject_type="ticket",
        subject_id="T-0001",
        ground="mistaken",
        note="rated the wrong window",
    )
    with pytest.raises(Conflict, match=re.escape("rating R-T-0001 has been appealed already (the appeal is pending)")):
        rating.appeal_as("malicious", "again", T0 + timedelta(hours=2))
    rating.decide("rejected", None, T0 + timedelta(hours=3))
    with pytest.raises(Conflict, match=re.escape("(the appeal is rejected)")):
        rating.appeal_as("malicious", "once more", T0 + timedelta(hours=4))
    assert types(rating) == ["rating.submitted", "rating.appealed", "rating.appeal_decided"]


def test_only_a_pending_appeal_is_decided() -> None:
    rating = rate(2)
    with pytest.raises(Conflict, match=re.escape("rating R-T-0001 has no appeal to decide")) as refused:
        rating.decide("upheld", None, T0)
    assert refused.value.status == 409
    rating.appeal_as("malicious", "the same person rated every window 1", T0)
    rating.decide("upheld", "confirmed on the camera", T0 + timedelta(days=1))
    with pytest.raises(Conflict, match=re.escape("the appeal of rating R-T-0001 was upheld already")):
        rating.decide("rejected", None, T0 + timedelta(days=2))
    assert rating.appeal is not None
    assert rating.appeal.verdict == "upheld"


def test_an_upheld_appeal_takes_the_rating_out_of_the_figures_and_keeps_it_on_record() -> None:
    rating = rate(1)
    rating.appeal_as("mistaken", "the wrong window", T0)
    decided_at = T0 + timedelta(days=1)
    rating.decide("upheld", "it was W02", decided_at)
    assert not rating.counted
    assert rating.score == 1, "on record, unchanged"
    assert rating.appeal is not None
    assert (rating.appeal.decided_at, rating.appeal.note) == (decided_at, "it was W02")
    assert rating.pending_events[-1].data == RatingAppealDecided(
        rating_id="R-T-0001", subject_type="ticket", subject_id="T-0001", verdict="upheld", note="it was W02"
    )


def test_a_rejected_appeal_keeps_the_rating_counted() -> None:
    rating = rate(1)
    rating.appeal_as("malicious", "seems spiteful", T0)
    rating.decide("rejected", "a real complaint", T0 + timedelta(days=1))
    assert rating.counted


# --- the message book ------------------------------------------------------------------------------


def post(
    kind: MessageKind | None = "praise",
    window_id: str | None = None,
    staff_id: str | None = None,
    contact: str | None = None,
) -> Message:
    return Message.post(
        message_id="M-1",
        text="谢谢三号窗口的耐心帮助",
        kind=kind,
        window_id=window_id,
        staff_id=staff_id,
        contact=contact,
        at=T0,
        day=DAY,
    )


@pytest.mark.parametrize(("window_id", "staff_id"), [("W03", None), (None, "S07"), ("W03", "S07")])
def test_praise_for_a_window_or_a_member_of_staff_is_received_as_praise_too(
    window_id: str | None, staff_id: str | None
) -> None:
    message = post("praise", window_id, staff_id)
    assert types(message) == ["message.posted", "praise.received"]
    assert message.pending_events[1].data == PraiseReceived(
        message_id="M-1", text="谢谢三号窗口的耐心帮助", window_id=window_id, staff_id=staff_id
    )


@pytest.mark.parametrize(
    ("kind", "window_id", "staff_id"),
    [("praise", None, None), ("suggestion", "W03", None), ("complaint", "W03", "S07"), (None, "W03", "S07")],
)
def test_a_message_that_praises_nobody_in_particular_or_is_no_praise_is_only_posted(
    kind: MessageKind | None, window_id: str | None, staff_id: str | None
) -> None:
    assert types(post(kind, window_id, staff_id)) == ["message.posted"]


def test_the_contact_is_masked_in_the_event_and_kept_raw_in_the_message() -> None:
    message = post("complaint", "W03", contact=CONTACT)
    assert message.contact == CONTACT
    [posted] = message.pending_events
    assert posted.data == MessagePosted(
        message_id="M-1",
        text="谢谢三号窗口的耐心帮助",
        kind="complaint",
        window_id="W03",
        has_contact=True,
        contact_masked="139****5678",
    )
    assert CONTACT not in posted.data.model_dump_json()


def test_a_message_without_a_contact_says_so() -> None:
    [posted] = post("suggestion").pending_events
    assert isinstance(posted.data, MessagePosted)
    assert (posted.data.has_contact, posted.data.contact_masked) == (False, None)


@pytest.mark.parametrize(
    ("contact", "masked"),
    [
        ("13912345678", "139****5678"),
        ("王先生 13912345678", "王**********5678"),
        ("029-88886666", "029*****6666"),
        ("1234", "****"),
        ("王", "*"),
    ],
)
def test_a_contact_is_masked_keeping_its_start_and_last_four_characters(contact: str, masked: str) -> None:
    assert mask_contact(contact) == masked
    assert len(mask_contact(contact)) == len(contact)


@pytest.mark.parametrize("contact", ["8765432", "123456", "12345", "abcde"])
def test_a_short_contact_is_never_shown_in_clear(contact: str) -> None:
    masked = mask_contact(contact)
    assert "*" in masked
    assert len(masked) == len(contact)


# --- complaint cases -------------------------------------------------------------------------------


def open_case(
    *, contact: str | None = CONTACT, at: datetime = T0, rating: Rating | None = None, complaint_id: str = "C-1"
) -> Complaint:
    rating = rating or rate(1)
    return Complaint.open(
        complaint_id=complaint_id,
        origin="bad_review",
        at=at,
        day=at.astimezone(HALL).date(),
        verify_by=due(at, DEADLINES.verify),
        contact=contact,
        rating=rating,
    )


def verify(case: Complaint, at: datetime, complexity: ComplaintComplexity = "simple") -> None:
    case.verify("called the citizen", "ops-1", complexity, at, due(at, rectify_deadline_days(DEADLINES, complexity)))


def rectify(case: Complaint, at: datetime) -> None:
    case.rectify("apologised and retrained", "W01-lead", at, due(at, DEADLINES.follow_up))


def follow_up(case: Complaint, at: datetime, satisfied: bool | None = True) -> None:
    case.follow_up("called back", "ops-1", at, satisfied)


def close(case: Complaint, at: datetime) -> None:
    case.close("done", "ops-1", at)


STEPS: dict[str, Callable[[Complaint, datetime], None]] = {
    "verify": verify,
    "rectify": rectify,
    "follow_up": follow_up,
    "close": close,
}


def test_a_real_name_case_goes_through_every_stage_in_order_with_its_deadlines() -> None:
    case = open_case()
    assert (case.status, case.stage, case.real_name) == ("opened", "verify", True)
    [opened] = case.pending_events
    assert opened.data == ComplaintOpened(
        complaint_id="C-1",
        origin="bad_review",
        due_at=at_close(date(2026, 11, 24)),
        rating_id="R-T-0001",
        subject_type="ticket",
        subject_id="T-0001",
        window_id="W01",
        unit="W01",
        category="C1",
        staff_id="S01",
        score=1,
        real_name=True,
    )
    assert CONTACT not in opened.data.model_dump_json()

    verified_at = hall_time(date(2026, 11, 24), 9)  # Tuesday
    verify(case, verified_at)
    assert (case.status, case.stage, case.complexity) == ("verified", "rectify", "simple")
    assert case.pending_events[-1].data.model_dump() == {
        "complaint_id": "C-1",
        "note": "called the citizen",
        "complexity": "simple",
        "due_at": at_close(date(2026, 11, 26)),
    }

    rectified_at = hall_time(date(2026, 11, 25), 16)  # Wednesday
    rectify(case, rectified_at)
    assert (case.status, case.stage) == ("rectified", "follow_up")
    assert case.pending_events[-1].data.model_dump() == {
        "complaint_id": "C-1",
        "note": "apologised and retrained",
        "follow_up_required": True,
        "due_at": at_close(date(2026, 11, 27)),
    }

    followed_up_at = hall_time(date(2026, 11, 27), 11)  # Friday
    follow_up(case, followed_up_at, satisfied=True)
    assert (case.status, case.stage, case.satisfied) == ("followed_up", None, True)

    case.close("done", "ops-1", followed_up_at + timedelta(minutes=5))
    assert (case.status, case.stage) == ("closed", None)
    assert types(case) == [
        "complaint.opened",
        "complaint.verified",
        "complaint.rectified",
        "complaint.followed_up",
        "complaint.closed",
    ]
    assert {p.correlation_id for p in case.pending_events} == {"R-T-0001"}
    assert [s.step for s in case.steps] == ["verified", "rectified", "followed up", "closed"]
    assert case.due == {
        "verify": at_close(date(2026, 11, 24)),
        "rectify": at_close(date(2026, 11, 26)),
        "follow_up": at_close(date(2026, 11, 27)),
    }
    assert case.done == {"verify": verified_at, "rectify": rectified_at, "follow_up": followed_up_at}
    assert [case.on_time(s) for s in ("verify", "rectify", "follow_up")] == [True, True, True]
    assert case.all_on_time
    assert not case.estimated


def test_a_case_from_the_message_book_is_owned_by_its_window() -> None:
    message = post("complaint", "W03", "S07", contact=CONTACT)
    case = Complaint.open(
        complaint_id="C-2",
        origin="message",
        at=T0,
        day=DAY,
        verify_by=due(T0, 1),
        contact=message.contact,
        message=message,
    )
    assert (case.unit, case.window_id, case.staff_id, case.message_id) == ("W03", "W03", "S07", "M-1")
    assert case.rating_id is None
    [opened] = case.pending_events
    assert isinstance(opened.data, ComplaintOpened)
    assert (opened.data.message_id, opened.data.real_name, opened.correlation_id) == ("M-1", True, "M-1")


def cases_in_every_state() -> dict[str, Complaint]:
    opened = open_case()
    verified = open_case()
    verify(verified, T0)
    rectified = open_case(contact=None)
    verify(rectified, T0)
    rectify(rectified, T0)
    followed_up = open_case()
    verify(followed_up, T0)
    rectify(followed_up, T0)
    follow_up(followed_up, T0)
    closed = open_case(contact=None)
    verify(closed, T0)
    rectify(closed, T0)
    closed.close("done", "ops-1", T0)
    return {
        "opened": opened,
        "verified": verified,
        "rectified": rectified,
        "followed_up": followed_up,
        "closed": closed,
    }


ILLEGAL = [
    ("opened", "rectify", "is opened: it cannot be rectified"),
    ("opened", "follow_up", "is opened: it cannot be followed up"),
    ("opened", "close", "is opened: it cannot be closed"),
    ("verified", "verify", "is verified: it cannot be verified"),
    ("verified", "follow_up", "is verified: it cannot be followed up"),
    ("verified", "close", "is verified: it cannot be closed"),
    ("rectified", "verify", "is rectified: it cannot be verified"),
    ("rectified", "rectify", "is rectified: it cannot be rectified"),
    ("followed_up", "rectify", "is followed up: it cannot be rectified"),
    ("followed_up", "follow_up", "is followed up: it cannot be followed up"),
    ("closed", "verify", "is closed: it cannot be verified"),
    ("closed", "close", "is closed: it cannot be closed"),
]


@pytest.mark.parametrize(("state", "step", "message"), ILLEGAL)
def test_an_illegal_step_is_a_conflict_naming_the_state(state: str, step: str, message: str) -> None:
    case = cases_in_every_state()[state]
    before = (case.status, len(case.pending_events), len(case.steps))
    later = T0 + timedelta(hours=1)
    with pytest.raises(Conflict, match=re.escape(f"complaint C-1 {message}")) as refused:
        STEPS[step](case, later)
    assert refused.value.status == 409
    assert (case.status, len(case.pending_events), len(case.steps)) == before


def test_the_complexity_chooses_the_rectify_deadline() -> None:
    assert rectify_deadline_days(Deadlines(), "simple") == 2
    assert rectify_deadline_days(Deadlines(), "complex") == 15
    assert rectify_deadline_days(Deadlines(rectify_simple=3, rectify_complex=10), "complex") == 10
    simple, complex_ = open_case(), open_case()
    verify(simple, T0, "simple")  # Monday
    verify(complex_, T0, "complex")
    assert simple.due["rectify"] == at_close(date(2026, 11, 25))
    assert complex_.due["rectify"] == at_close(date(2026, 12, 14)), "15 working days: three weeks"
    assert complex_.complexity == "complex"
    assert complex_.pending_events[-1].data.model_dump()["due_at"] == at_close(date(2026, 12, 14))


def test_a_real_name_case_cannot_close_before_its_follow_up_call() -> None:
    case = open_case()
    verify(case, T0)
    rectify(case, T0)
    with pytest.raises(Conflict, match=re.escape("C-1 is a real-name case: it closes only after its follow-up call")):
        case.close("done", "ops-1", T0)
    assert case.status == "rectified"
    follow_up(case, T0, satisfied=None)
    case.close("done", "ops-1", T0)
    assert (case.status, case.satisfied) == ("closed", None)


def test_an_anonymous_case_closes_once_rectified_and_cannot_be_followed_up() -> None:
    case = open_case(contact=None)
    assert not case.real_name
    assert case.pending_events[0].data.model_dump()["real_name"] is False
    verify(case, T0)
    rectify(case, T0)
    assert case.pending_events[-1].data.model_dump() == {
        "complaint_id": "C-1",
        "note": "apologised and retrained",
        "follow_up_required": False,
        "due_at": None,
    }
    assert case.stage is None, "waits for nothing"
    assert "follow_up" not in case.due
    with pytest.raises(Conflict, match=re.escape("complaint C-1 left no contact: there is nobody to call back")):
        follow_up(case, T0)
    assert (case.status, types(case)[-1]) == ("rectified", "complaint.rectified")
    case.close("put right", "ops-1", T0)
    assert (case.status, types(case)[-1]) == ("closed", "complaint.closed")
    assert "complaint.followed_up" not in types(case)


def test_a_refused_follow_up_leaves_no_step_on_the_case() -> None:
    case = open_case(contact=None)
    verify(case, T0)
    rectify(case, T0)
    with pytest.raises(Conflict):
        follow_up(case, T0)
    assert [s.step for s in case.steps] == ["verified", "rectified"]


def test_a_case_with_a_deadline_in_a_year_without_the_calendar_is_flagged_estimated() -> None:
    december = hall_time(date(2026, 12, 21), 10)  # Monday
    case = open_case(at=december)
    assert not case.estimated
    verify(case, december, "complex")
    assert case.estimated, "15 working days from 21 December reach 2027"
    late = open_case(at=hall_time(date(2026, 12, 31), 10))
    assert late.estimated


# --- overdue stages --------------------------------------------------------------------------------


VERIFY_DUE = at_close(date(2026, 11, 24))


def test_an_overdue_stage_is_reported_once_however_often_it_is_checked() -> None:
    case = open_case()
    assert case.report_overdue(VERIFY_DUE) is None, "at the deadline it is not late yet"
    assert case.report_overdue(VERIFY_DUE + timedelta(seconds=1)) == "verify"
    assert case.report_overdue(VERIFY_DUE + timedelta(hours=1)) is None
    assert case.report_overdue(VERIFY_DUE + timedelta(days=3)) is None
    assert types(case) == ["complaint.opened", "complaint.overdue"]
    overdue = case.pending_events[-1]
    assert overdue.data == ComplaintOverdue(complaint_id="C-1", stage="verify", due_at=VERIFY_DUE)
    assert (overdue.at, overdue.correlation_id) == (VERIFY_DUE + timedelta(seconds=1), "R-T-0001")
    assert case.overdue == ["verify"]


def test_the_next_stage_is_reported_again_when_it_is_missed_too() -> None:
    case = open_case()
    case.report_overdue(VERIFY_DUE + timedelta(minutes=1))
    verified_late = hall_time(date(2026, 11, 25), 10)  # Wednesday: rectify by Friday
    verify(case, verified_late)
    rectify_due = at_close(date(2026, 11, 27))
    assert case.report_overdue(rectify_due) is None
    assert case.report_overdue(rectify_due + timedelta(minutes=1)) == "rectify"
    assert case.report_overdue(rectify_due + timedelta(minutes=2)) is None
    rectify(case, hall_time(date(2026, 11, 30), 10))  # Monday: follow up by Wednesday
    follow_up_due = at_close(date(2026, 12, 2))
    assert case.report_overdue(follow_up_due + timedelta(minutes=1)) == "follow_up"
    assert case.overdue == ["verify", "rectify", "follow_up"]
    overdue = [p.data for p in case.pending_events if isinstance(p.data, ComplaintOverdue)]
    assert [(o.stage, o.due_at) for o in overdue] == [
        ("verify", VERIFY_DUE),
        ("rectify", rectify_due),
        ("follow_up", follow_up_due),
    ]
    assert [case.on_time(s) for s in ("verify", "rectify", "follow_up")] == [False, False, None]
    assert not case.all_on_time


def test_a_stage_done_on_time_is_never_reported_overdue() -> None:
    case = open_case()
    verify(case, T0 + timedelta(hours=1))
    assert case.report_overdue(VERIFY_DUE + timedelta(days=1)) is None, "verified: now it waits to be rectified"
    rectify(case, T0 + timedelta(hours=2))
    follow_up(case, T0 + timedelta(hours=3))
    assert case.report_overdue(T0 + timedelta(days=60)) is None, "followed up: waits for nothing"
    case.close("done", "ops-1", T0 + timedelta(hours=4))
    assert case.report_overdue(T0 + timedelta(days=90)) is None
    assert "complaint.overdue" not in types(case)
    assert case.overdue == []
    assert case.all_on_time


def test_an_anonymous_rectified_case_is_never_overdue() -> None:
    case = open_case(contact=None)
    verify(case, T0)
    rectify(case, T0)
    assert case.report_overdue(T0 + timedelta(days=60)) is None
    assert "complaint.overdue" not in types(case)


def test_on_time_says_whether_each_stage_was_done_by_its_deadline() -> None:
    case = open_case()
    assert case.on_time("verify") is None, "not done yet"
    assert case.on_time("rectify") is None, "no deadline yet"
    assert case.all_on_time, "nothing missed so far"
    verify(case, VERIFY_DUE)  # exactly at the deadline: on time
    assert case.on_time("verify") is True
    late = open_case()
    verify(late, VERIFY_DUE + timedelta(minutes=1))  # late, though nobody reported it overdue
    assert late.overdue == []
    assert late.on_time("verify") is False
    assert not late.all_on_time


# --- figures ---------------------------------------------------------------------------------------


def rated(
    n: int,
    score: int,
    *,
    window_id: str | None = "W01",
    staff_id: str | None = "S01",
    category: str | None = "C1",
    unit: str | None = None,
    day: date = DAY,
    subject_type: SubjectType = "ticket",
) -> Rating:
    """Rating number `n`, of a service with these details."""
    invited = invitation(
        f"X-{n}",
        subject_type=subject_type,
        unit=unit or window_id or "?",
        window_id=window_id,
        staff_id=staff_id,
        category=category,
        ticket_id=None,
    )
    return rate(score, invited, day=day)


def upheld(rating: Rating) -> Rating:
    rating.appeal_as("mistaken", "the wrong window", T0)
    rating.decide("upheld", None, T0)
    return rating


def test_the_satisfaction_rate_is_levels_four_and_five_over_the_counted_ratings() -> None:
    ratings = [rated(n, score) for n, score in enumerate([5, 5, 4, 3, 2, 1])]
    [w01] = figures(ratings, [], "window")
    assert w01.group == "W01"
    assert w01.levels == {5: 2, 4: 1, 3: 1, 2: 1, 1: 1}
    assert (w01.rated, w01.excluded) == (6, 0)
    assert w01.satisfaction_rate == 0.5
    assert (w01.bad, w01.bad_rate) == (2, 0.3333)
    assert w01.rank == 1


def test_a_rating_excluded_by_an_upheld_appeal_is_out_of_every_figure_but_counted_as_excluded() -> None:
    ratings = [rated(1, 5), rated(2, 1), upheld(rated(3, 1)), upheld(rated(4, 2))]
    rejected = rated(5, 2)
    rejected.appeal_as("malicious", "seems spiteful", T0)
    rejected.decide("rejected", None, T0)
    [w01] = figures([*ratings, rejected], [], "window")
    assert w01.levels == {5: 1, 4: 0, 3: 0, 2: 1, 1: 1}
    assert (w01.rated, w01.excluded) == (3, 2)
    assert w01.satisfaction_rate == 0.3333
    assert (w01.bad, w01.bad_rate) == (2, 0.6667)


def test_a_group_whose_every_rating_is_excluded_has_no_rates_and_no_rank() -> None:
    [w01] = figures([upheld(rated(1, 1))], [], "window")
    assert (w01.rated, w01.excluded, w01.satisfaction_rate, w01.bad, w01.bad_rate) == (0, 1, None, 0, None)
    assert w01.rank is None


def test_the_case_figures_count_on_time_rectified_and_followed_up_cases() -> None:
    done = open_case(rating=rated(1, 1), complaint_id="C-1")
    verify(done, T0)
    rectify(done, T0)
    follow_up(done, T0)
    done.close("done", "ops-1", T0)
    waiting_call = open_case(rating=rated(2, 2), complaint_id="C-2")
    verify(waiting_call, T0)
    rectify(waiting_call, T0)
    missed = open_case(rating=rated(3, 1), contact=None, complaint_id="C-3")
    missed.report_overdue(VERIFY_DUE + timedelta(hours=1))
    anonymous_done = open_case(rating=rated(4, 2), contact=None, complaint_id="C-4")
    verify(anonymous_done, T0)
    rectify(anonymous_done, T0)
    anonymous_done.close("done", "ops-1", T0)
    [w01] = figures([], [done, waiting_call, missed, anonymous_done], "window")
    assert w01.cases == 4
    assert w01.on_time_rate == 0.75, "three of four missed nothing"
    assert w01.rectified_rate == 0.75
    assert w01.followed_up_rate == 0.5, "of the two real-name cases only"
    assert (w01.rated, w01.satisfaction_rate, w01.rank) == (0, None, None), "no ratings were passed"


def test_a_group_with_only_anonymous_cases_has_no_followed_up_rate() -> None:
    case = open_case(contact=None)
    [w01] = figures([], [case], "window")
    assert (w01.cases, w01.followed_up_rate, w01.rectified_rate) == (1, None, 0.0)


def test_a_group_without_cases_has_no_case_rates() -> None:
    [w01] = figures([rated(1, 5)], [], "window")
    assert (w01.cases, w01.on_time_rate, w01.rectified_rate, w01.followed_up_rate) == (0, None, None, None)


def mixed_ratings() -> list[Rating]:
    return [
        rated(1, 5, window_id="W01", staff_id="S01", category="C1", day=date(2026, 11, 23)),
        rated(2, 2, window_id="W02", staff_id="S02", category="C1", day=date(2026, 11, 24)),
        rated(3, 4, window_id="W02", staff_id="S02", category="C2", day=date(2026, 11, 24)),
        rated(
            4,
            4,
            window_id=None,
            staff_id="CG01",
            category=None,
            unit=CONCIERGE_DESK,
            subject_type="assistance",
            day=date(2026, 11, 23),
        ),
        rated(
            5,
            1,
            window_id=None,
            staff_id="G01",
            category=None,
            unit=CAR_PARK,
            subject_type="incident",
            day=date(2026, 11, 25),
        ),
    ]


@pytest.mark.parametrize(
    ("group_by", "groups"),
    [
        ("window", {"W01": 1, "W02": 2}),
        ("staff", {"S01": 1, "S02": 2, "CG01": 1, "G01": 1}),
        ("category", {"C1": 2, "C2": 1}),
        ("concierge", {"CG01": 1}),
        ("day", {"2026-11-23": 2, "2026-11-24": 2, "2026-11-25": 1}),
    ],
)
def test_figures_are_grouped_and_a_rating_with_nothing_to_group_by_is_left_out(
    group_by: GroupBy, groups: dict[str, int]
) -> None:
    found = figures(mixed_ratings(), [], group_by)
    assert {f.group: f.rated for f in found} == groups


def test_cases_are_grouped_like_the_ratings_they_came_from() -> None:
    concierge_case = open_case(rating=mixed_ratings()[3])
    window_case = open_case(rating=mixed_ratings()[1], complaint_id="C-2")
    assert {f.group: f.cases for f in figures([], [concierge_case, window_case], "concierge")} == {"CG01": 1}
    assert {f.group: f.cases for f in figures([], [concierge_case, window_case], "window")} == {"W02": 1}
    assert {f.group: f.cases for f in figures([], [concierge_case, window_case], "day")} == {"2026-11-23": 2}


def test_ranks_are_competition_ranks_best_first_and_nothing_rated_is_unranked() -> None:
    assert ranks([0.9, 0.9, 0.8]) == [1, 1, 3]
    assert ranks([0.8, 0.9, None, 0.9, 0.5]) == [3, 1, None, 1, 4]
    assert ranks([None, None]) == [None, None]
    assert ranks([]) == []


def test_figures_are_listed_by_rank_with_ties_by_name_and_unrated_groups_last() -> None:
    only_cases = open_case(rating=rated(9, 1, window_id="W00"))
    ratings = [
        rated(1, 3, window_id="W01"),
        rated(2, 5, window_id="W04"),
        rated(3, 5, window_id="W02"),
        upheld(rated(4, 5, window_id="W03")),
    ]
    found = figures(ratings, [only_cases], "window")
    assert [(f.group, f.rank) for f in found] == [("W02", 1), ("W04", 1), ("W01", 3), ("W00", None), ("W03", None)]


# --- the monthly ranking ---------------------------------------------------------------------------


def month(rates: dict[str, tuple[int, int]]) -> list[Figures]:
    """Window figures from (satisfied, rated) per window."""
    ratings, n = [], 0
    for window, (satisfied, total) in rates.items():
        for k in range(total):
            n += 1
            ratings.append(rated(n, 5 if k < satisfied else 2, window_id=window))
    return figures(ratings, [], "window")


def test_a_window_last_two_months_running_is_flagged() -> None:
    october = month({"W01": (9, 10), "W02": (5, 10), "W03": (8, 10)})
    november = month({"W01": (10, 10), "W02": (6, 10), "W03": (9, 10)})
    ranking = {r.window_id: r for r in month_ranking(november, october)}
    assert (ranking["W02"].rank, ranking["W02"].last, ranking["W02"].last_two_months_running) == (3, True, True)
    assert (ranking["W02"].satisfaction_rate, ranking["W02"].rated) == (0.6, 10)
    assert not any(r.last for w, r in ranking.items() if w != "W02")


def test_a_window_last_only_this_month_is_not_flagged() -> None:
    october = month({"W01": (9, 10), "W02": (5, 10), "W03": (8, 10)})
    november = month({"W01": (4, 10), "W02": (9, 10), "W03": (8, 10)})
    ranking = {r.window_id: r for r in month_ranking(november, october)}
    assert (ranking["W01"].last, ranking["W01"].last_two_months_running) == (True, False)
    assert (ranking["W02"].last, ranking["W02"].last_two_months_running) == (False, False)


def test_every_window_sharing_the_last_rank_is_last_and_flagged_if_it_was_last_before() -> None:
    october = month({"W01": (9, 10), "W02": (5, 10), "W03": (5, 10), "W04": (8, 10)})
    november = month({"W01": (10, 10), "W02": (6, 10), "W03": (6, 10), "W04": (6, 10)})
    ranking = {r.window_id: r for r in month_ranking(november, october)}
    assert {w: (r.rank, r.last, r.last_two_months_running) for w, r in ranking.items()} == {
        "W01": (1, False, False),
        "W02": (2, True, True),
        "W03": (2, True, True),
        "W04": (2, True, False),
    }


def test_a_window_ranked_alone_is_neither_last_nor_flagged() -> None:
    october = month({"W01": (1, 10)})
    november = month({"W01": (1, 10), "W02": (9, 10)})
    [w01, w02] = sorted(month_ranking(november, october), key=lambda r: r.window_id)
    assert (w01.last, w01.last_two_months_running) == (True, False), "alone last month: it was not last among others"
    assert not w02.last
    [alone] = month_ranking(month({"W01": (1, 10)}), november)
    assert (alone.last, alone.last_two_months_running) == (False, False)


def test_unrated_windows_are_not_in_the_monthly_ranking() -> None:
    november = month({"W01": (9, 10), "W02": (5, 10)})
    november += figures([upheld(rated(99, 1, window_id="W09"))], [], "window")
    assert [r.window_id for r in month_ranking(november, [])] == ["W01", "W02"]
    assert all(not r.last_two_months_running for r in month_ranking(november, []))


def test_windows_that_all_tie_are_not_last() -> None:
    perfect = month({"W01": (10, 10), "W02": (10, 10)})
    assert not any(r.last or r.last_two_months_running for r in month_ranking(perfect, perfect))


# --- months ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month_", "first", "last", "before"),
    [
        ("2026-11", date(2026, 11, 1), date(2026, 11, 30), "2026-10"),
        ("2026-12", date(2026, 12, 1), date(2026, 12, 31), "2026-11"),
        ("2026-01", date(2026, 1, 1), date(2026, 1, 31), "2025-12"),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28), "2026-01"),
        ("2028-02", date(2028, 2, 1), date(2028, 2, 29), "2028-01"),
        ("2026-03", date(2026, 3, 1), date(2026, 3, 31), "2026-02"),
    ],
)
def test_a_month_has_its_first_and_last_day_and_the_month_before(
    month_: str, first: date, last: date, before: str
) -> None:
    assert month_bounds(month_) == (first, last)
    assert previous_month(month_) == before


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "2026-11-05", "202611", "Nov 2026", "", "2026"])
def test_a_month_not_written_like_2026_11_is_refused(text: str) -> None:
    with pytest.raises(Invalid, match=re.escape(f"month {text!r} is not like 2026-11")) as refused:
        month_bounds(text)
    assert refused.value.status == 422
    with pytest.raises(Invalid):
        previous_month(text)


def test_an_official_year_listing_a_day_of_another_year_is_refused() -> None:
    with pytest.raises(ValidationError, match="official year 2027 lists days of another year"):
        Rules.model_validate({"official": {"2027": {"holidays": ["2028-01-03"]}}})


def test_a_window_s_rating_device_is_asked_about_its_own_window_s_services() -> None:
    invitation().must_be_at_window("W01")
    with pytest.raises(Forbidden, match="served by window W01"):
        invitation().must_be_at_window("W02")
    with pytest.raises(Forbidden, match="CONCIERGE"):
        invitation(subject_type="assistance", unit="CONCIERGE", window_id=None).must_be_at_window("W01")
