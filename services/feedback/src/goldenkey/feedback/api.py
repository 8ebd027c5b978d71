"""The feedback service's HTTP API: thin — validate, authorise, call the use case, answer.

Who may do what: the feedback kiosk and the windows' rating devices read invitations, rate and
post in the message book; ops read everything, appeal ratings and work complaint cases; admin
decides appeals and edits the rules. A rating is anonymous: nothing of the caller is stored with it.
A window's rating device (a token bound to the window) rates its own window's services; the kiosk
sees no staff id (docs/access.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from goldenkey.contracts.vocabulary import (
    AppealGround,
    AppealVerdict,
    ComplaintComplexity,
    ComplaintOrigin,
    MessageKind,
    RatingReason,
    SubjectType,
)
from goldenkey.feedback.domain import (
    LEVELS,
    CaseStep,
    Complaint,
    ComplaintStatus,
    Figures,
    GroupBy,
    Invitation,
    Message,
    Ranking,
    Rating,
    Rules,
    mask_contact,
)
from goldenkey.feedback.service import FeedbackService
from goldenkey.kit import Invalid, NewId, Principal, error_responses, require
from goldenkey.kit.inputs import PAGE, Limit, Line, Lines, Offset, Strict, matching

router = APIRouter()
DEVICES = ("kiosk", "window")
READERS = ("ops",)
SEES_STAFF = {"window", "ops", "admin"}
"""Who sees which member of staff a rating is about (not the public kiosk)."""
ItemId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[\w.:-]+$", description="An id a service of the hall gave out.")
]
Ref = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
Note = Annotated[Lines, Field(max_length=1000)]
Who = Annotated[Line, Field(max_length=64, description="Who did it: a staff id or name.")]
Contact = Annotated[Line, Field(max_length=100, description="A phone number or e-mail, for the follow-up call.")]
Day = Annotated[str, Query(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description="A local date, `YYYY-MM-DD`.")]
STEP = error_responses(404, 409, 422)


def own_window(who: Principal) -> Callable[[Invitation], None]:
    """A window's rating device (a token bound to the window) is asked about its window's services."""
    if who.role == "window" and who.bound_to is not None:
        window_id = who.bound_to
        return lambda invitation: invitation.must_be_at_window(window_id)
    return lambda _: None


def service(request: Request) -> FeedbackService:
    return request.app.state.feedback  # type: ignore[no-any-return]


Feedback = Annotated[FeedbackService, Depends(service)]


def a_date(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{name} {text!r} is not a date like 2026-11-25") from None


# --- bodies ------------------------------------------------------------------------------------------


class Rate(Strict):
    subject_type: SubjectType
    subject_id: Ref
    score: Annotated[StrictInt, Field(ge=1, le=5, description="5 非常满意 … 1 非常不满意.")]
    reasons: Annotated[list[RatingReason], Field(max_length=10)] = Field(default_factory=list)
    """attitude, quality, efficiency, environment…"""
    comment: Note | None = None
    contact: Contact | None = None
    """Only with a bad review, for the follow-up call: kept in the complaint case, not the rating."""


class AppealBody(Strict):
    ground: AppealGround
    reason: Note


class Decision(Strict):
    verdict: AppealVerdict
    note: Note | None = None


class Post(Strict):
    text: Annotated[Lines, Field(max_length=1000)]
    kind: MessageKind | None = None
    window_id: Ref | None = None
    staff_id: Ref | None = None
    contact: Contact | None = None


class StepBody(Strict):
    note: Note
    by: Who


class Verify(StepBody):
    complexity: ComplaintComplexity
    """`simple`: put right at once; `complex`: entered in the ledger, with the long deadline."""


class FollowUp(StepBody):
    satisfied: StrictBool | None = None


# --- views -------------------------------------------------------------------------------------------


class Level(BaseModel):
    score: int
    zh: str
    en: str


class PublicInvitationView(BaseModel):
    """What the feedback kiosk shows: the service, not the member of staff (docs/access.md)."""

    model_config = ConfigDict(extra="forbid")

    subject_type: SubjectType
    subject_id: str
    unit: str
    window_id: str | None
    category: str | None
    kind: str | None
    invited_at: datetime
    rated: bool
    levels: list[Level]
    """What the rating device shows, best first."""

    @classmethod
    def of(cls, i: Invitation) -> PublicInvitationView:
        return cls(
            subject_type=i.subject_type,
            subject_id=i.id,
            unit=i.unit,
            window_id=i.window_id,
            category=i.category,
            kind=i.kind,
            invited_at=i.invited_at,
            rated=i.rating_id is not None,
            levels=[Level(score=s, zh=zh, en=en) for s, (zh, en) in LEVELS.items()],
        )


class InvitationView(PublicInvitationView):
    """What the rating device at the window shows: who served the citizen, too."""

    model_config = ConfigDict(extra="ignore")

    staff_id: str | None

    @classmethod
    def of(cls, i: Invitation) -> InvitationView:
        return cls(**PublicInvitationView.of(i).model_dump(), staff_id=i.staff_id)


class AppealView(BaseModel):
    ground: AppealGround
    reason: str
    at: datetime
    verdict: AppealVerdict | None
    decided_at: datetime | None
    note: str | None


class RatingView(BaseModel):
    rating_id: str
    subject_type: SubjectType
    subject_id: str
    score: int
    bad_review: bool
    reasons: list[str]
    comment: str | None
    rated_at: datetime
    unit: str
    window_id: str | None
    staff_id: str | None
    category: str | None
    counted: bool
    """In the figures (an upheld appeal takes it out; it stays on record)."""
    appeal: AppealView | None

    @classmethod
    def of(cls, r: Rating) -> RatingView:
        return cls(
            rating_id=r.id,
            subject_type=r.subject_type,
            subject_id=r.subject_id,
            score=r.score,
            bad_review=r.bad,
            reasons=r.reasons,
            comment=r.comment,
            rated_at=r.rated_at,
            unit=r.unit,
            window_id=r.window_id,
            staff_id=r.staff_id,
            category=r.category,
            counted=r.counted,
            appeal=AppealView(**r.appeal.model_dump()) if r.appeal else None,
        )


class RatedView(BaseModel):
    """What the rating device hears back: no comment, nothing to read over the citizen's shoulder."""

    rating_id: str
    subject_id: str
    score: int
    bad_review: bool


class MessageView(BaseModel):
    message_id: str
    text: str
    kind: MessageKind | None
    window_id: str | None
    staff_id: str | None
    contact_masked: str | None
    posted_at: datetime

    @classmethod
    def of(cls, m: Message) -> MessageView:
        return cls(
            message_id=m.id,
            text=m.text,
            kind=m.kind,
            window_id=m.window_id,
            staff_id=m.staff_id,
            contact_masked=mask_contact(m.contact) if m.contact else None,
            posted_at=m.posted_at,
        )


class PostedView(BaseModel):
    message_id: str
    posted_at: datetime
    thanks: str = "我们不是无所不能，但是我们会竭尽所能。 We cannot do everything, but we will do all we can."


class ComplaintView(BaseModel):
    complaint_id: str
    origin: ComplaintOrigin
    status: ComplaintStatus
    unit: str | None
    window_id: str | None
    staff_id: str | None
    category: str | None
    rating_id: str | None
    message_id: str | None
    score: int | None
    real_name: bool
    contact_masked: str | None
    complexity: ComplaintComplexity | None
    opened_at: datetime
    waiting_for: str | None
    """The stage it waits for: verify, rectify, follow_up; none once done."""
    due: dict[str, datetime]
    done: dict[str, datetime]
    overdue: list[str]
    estimated: bool
    """A deadline was counted Monday to Friday: its year's official calendar is not known yet."""
    steps: list[CaseStep]

    @classmethod
    def of(cls, c: Complaint) -> ComplaintView:
        return cls(
            complaint_id=c.id,
            origin=c.origin,
            status=c.status,
            unit=c.unit,
            window_id=c.window_id,
            staff_id=c.staff_id,
            category=c.category,
            rating_id=c.rating_id,
            message_id=c.message_id,
            score=c.score,
            real_name=c.real_name,
            contact_masked=mask_contact(c.contact) if c.contact else None,
            complexity=c.complexity,
            opened_at=c.opened_at,
            waiting_for=c.stage,
            due=c.due,
            done=c.done,
            overdue=c.overdue,
            estimated=c.estimated,
            steps=c.steps,
        )


class FiguresView(BaseModel):
    group: str
    levels: dict[str, int]
    """Counted ratings per level, "5" (非常满意) … "1" (非常不满意)."""
    rated: int
    excluded: int
    """Ratings an upheld appeal took out of the figures."""
    satisfaction_rate: float | None
    """Levels 4–5 of the counted ratings."""
    bad: int
    bad_rate: float | None
    cases: int
    on_time_rate: float | None
    rectified_rate: float | None
    followed_up_rate: float | None
    """Of the real-name cases."""
    rank: int | None

    @classmethod
    def of(cls, f: Figures) -> FiguresView:
        return cls(**{**f.__dict__, "levels": {str(k): v for k, v in f.levels.items()}})


class SatisfactionView(BaseModel):
    group_by: GroupBy
    from_: date = Field(alias="from")
    to: date
    groups: list[FiguresView]

    model_config = {"populate_by_name": True}


class RankingView(BaseModel):
    window_id: str
    rank: int
    satisfaction_rate: float
    rated: int
    last: bool
    last_two_months_running: bool


class RankingsView(BaseModel):
    month: str
    windows: list[RankingView]

    @classmethod
    def of(cls, month: str, rankings: list[Ranking]) -> RankingsView:
        return cls(month=month, windows=[RankingView(**r.__dict__) for r in rankings])


# --- invitations and ratings -------------------------------------------------------------------------


@router.get("/invitations/{subject_id}", tags=["ratings"], responses=error_responses(404))
async def invitation(
    subject_id: ItemId, feedback: Feedback, who: Annotated[Principal, Depends(require(*DEVICES, *READERS))]
) -> InvitationView | PublicInvitationView:
    """What the rating device at the window asks about: the service just ended, and the levels.
    A window's device is asked about its own window's services; the kiosk sees no staff id."""
    found = await feedback.invitation(subject_id)
    own_window(who)(found)
    return InvitationView.of(found) if who.role in SEES_STAFF else PublicInvitationView.of(found)


@router.post("/ratings", status_code=201, tags=["ratings"], responses=error_responses(404, 409, 422))
async def rate(body: Rate, feedback: Feedback, who: Annotated[Principal, Depends(require(*DEVICES))]) -> RatedView:
    """Rate an invited service, once (409 on a second: the first stands). Scores 1–2 open a
    complaint case owned by whoever handled the visit. A window's rating device rates its own
    window's services; the feedback kiosk any."""
    rating = await feedback.rate(
        subject_type=body.subject_type,
        subject_id=body.subject_id,
        score=body.score,
        reasons=body.reasons,
        comment=body.comment,
        contact=body.contact if body.score <= 2 else None,
        check=own_window(who),
    )
    return RatedView(rating_id=rating.id, subject_id=rating.subject_id, score=rating.score, bad_review=rating.bad)


@router.get("/ratings", tags=["ratings"], responses=error_responses(422))
async def ratings(
    feedback: Feedback,
    _: Annotated[Principal, Depends(require(*READERS))],
    subject_type: Annotated[SubjectType | None, Query()] = None,
    window_id: Annotated[str | None, Query(max_length=64)] = None,
    day: Day | None = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[RatingView]:
    """Ratings, latest first, a page at a time."""
    a_date(day, "day")
    query = matching(subject_type=subject_type, window_id=window_id, day=day)
    found = await feedback.store.ratings.find(query, sort=[("rated_at", -1), ("_id", 1)], limit=limit, skip=offset)
    return [RatingView.of(r) for r in found]


@router.get("/ratings/{rating_id}", tags=["ratings"], responses=error_responses(404))
async def get_rating(
    rating_id: ItemId, feedback: Feedback, _: Annotated[Principal, Depends(require(*READERS))]
) -> RatingView:
    return RatingView.of(await feedback.rating(rating_id))


@router.post("/ratings/{rating_id}/appeal", tags=["ratings"], responses=STEP)
async def appeal(
    rating_id: ItemId, body: AppealBody, feedback: Feedback, _: Annotated[Principal, Depends(require("ops"))]
) -> RatingView:
    """Ops appeal a rating as mistaken or malicious, with a reason; an admin decides."""
    return RatingView.of(await feedback.appeal(rating_id, body.ground, body.reason))


@router.post("/ratings/{rating_id}/appeal/decision", tags=["ratings"], responses=STEP)
async def decide(
    rating_id: ItemId, body: Decision, feedback: Feedback, _: Annotated[Principal, Depends(require("admin"))]
) -> RatingView:
    """Upheld: the rating leaves every figure and stays on record. Rejected: it counts."""
    return RatingView.of(await feedback.decide(rating_id, body.verdict, body.note))


# --- the message book --------------------------------------------------------------------------------


@router.post("/messages", status_code=201, tags=["messages"], responses=error_responses(422))
async def post_message(
    body: Post, new_id: NewId, feedback: Feedback, _: Annotated[Principal, Depends(require(*DEVICES))]
) -> PostedView:
    """Write in the message book. A complaint opens a case; praise for a window or a person is
    passed on (`praise.received`). Contact details stay here."""
    message = await feedback.post(
        new_id, text=body.text, kind=body.kind, window_id=body.window_id, staff_id=body.staff_id, contact=body.contact
    )
    return PostedView(message_id=message.id, posted_at=message.posted_at)


@router.get("/messages", tags=["messages"], responses=error_responses(422))
async def messages(
    feedback: Feedback,
    _: Annotated[Principal, Depends(require(*READERS))],
    kind: Annotated[MessageKind | None, Query()] = None,
    from_: Annotated[Day | None, Query(alias="from")] = None,
    to: Day | None = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[MessageView]:
    """The message book, latest first, by kind and between two days, a page at a time."""
    query = matching(kind=kind)
    first, last = a_date(from_, "from"), a_date(to, "to")
    if first or last:
        query["day"] = {
            **({"$gte": first.isoformat()} if first else {}),
            **({"$lte": last.isoformat()} if last else {}),
        }
    found = await feedback.store.messages.find(query, sort=[("posted_at", -1), ("_id", 1)], limit=limit, skip=offset)
    return [MessageView.of(m) for m in found]


# --- complaint cases ---------------------------------------------------------------------------------


@router.get("/complaints", tags=["complaints"], responses=error_responses(422))
async def complaints(
    feedback: Feedback,
    _: Annotated[Principal, Depends(require(*READERS))],
    status: Annotated[ComplaintStatus | None, Query()] = None,
    unit: Annotated[str | None, Query(max_length=64, description="A window (`W09`), `CONCIERGE` or `PARKING`.")] = None,
    limit: Limit = PAGE,
    offset: Offset = 0,
) -> list[ComplaintView]:
    """Complaint cases by status and owning unit, oldest first, a page at a time."""
    found = await feedback.store.complaints.find(
        matching(status=status, unit=unit), sort=[("opened_at", 1), ("_id", 1)], limit=limit, skip=offset
    )
    return [ComplaintView.of(c) for c in found]


@router.get("/complaints/{complaint_id}", tags=["complaints"], responses=error_responses(404))
async def get_complaint(
    complaint_id: ItemId, feedback: Feedback, _: Annotated[Principal, Depends(require(*READERS))]
) -> ComplaintView:
    return ComplaintView.of(await feedback.complaint(complaint_id))


@router.post("/complaints/{complaint_id}/verify", tags=["complaints"], responses=STEP)
async def verify(
    complaint_id: ItemId, body: Verify, feedback: Feedback, _: Annotated[Principal, Depends(require("ops"))]
) -> ComplaintView:
    """The citizen was contacted and the complaint checked: simple or complex."""
    return ComplaintView.of(await feedback.verify(complaint_id, body.note, body.by, body.complexity))


@router.post("/complaints/{complaint_id}/rectify", tags=["complaints"], responses=STEP)
async def rectify(
    complaint_id: ItemId, body: StepBody, feedback: Feedback, _: Annotated[Principal, Depends(require("ops"))]
) -> ComplaintView:
    return ComplaintView.of(await feedback.rectify(complaint_id, body.note, body.by))


@router.post("/complaints/{complaint_id}/follow-up", tags=["complaints"], responses=STEP)
async def follow_up(
    complaint_id: ItemId, body: FollowUp, feedback: Feedback, _: Annotated[Principal, Depends(require("ops"))]
) -> ComplaintView:
    """The follow-up call (回访), required on a real-name case before it closes."""
    return ComplaintView.of(await feedback.follow_up(complaint_id, body.note, body.by, body.satisfied))


@router.post("/complaints/{complaint_id}/close", tags=["complaints"], responses=STEP)
async def close(
    complaint_id: ItemId, body: StepBody, feedback: Feedback, _: Annotated[Principal, Depends(require("ops"))]
) -> ComplaintView:
    return ComplaintView.of(await feedback.close(complaint_id, body.note, body.by))


# --- figures and rules -------------------------------------------------------------------------------


@router.get("/satisfaction", tags=["figures"], responses=error_responses(422))
async def satisfaction(
    feedback: Feedback,
    _: Annotated[Principal, Depends(require(*READERS))],
    group_by: Annotated[GroupBy, Query()] = "window",
    from_: Annotated[Day | None, Query(alias="from")] = None,
    to: Day | None = None,
) -> SatisfactionView:
    """Per group: ratings per level, the satisfaction rate (levels 4–5 of the counted ratings),
    bad reviews, and the cases' on-time, rectified and followed-up rates; ranked. Default period:
    this month so far."""
    first, last, groups = await feedback.satisfaction(group_by, a_date(from_, "from"), a_date(to, "to"))
    return SatisfactionView(group_by=group_by, from_=first, to=last, groups=[FiguresView.of(g) for g in groups])


@router.get("/rankings", tags=["figures"], responses=error_responses(422))
async def rankings(
    feedback: Feedback,
    _: Annotated[Principal, Depends(require(*READERS))],
    month: Annotated[
        str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$", description="`YYYY-MM`; default this month.")
    ] = None,
) -> RankingsView:
    """The windows of a month ranked by satisfaction; one ranked last two months running is flagged."""
    found_month, found = await feedback.rankings(month)
    return RankingsView.of(found_month, found)


@router.get("/rules", tags=["rules"])
async def rules(feedback: Feedback, _: Annotated[Principal, Depends(require(*READERS))]) -> Rules:
    """The complaint deadlines in working days, the hall's own closing and opening days, and
    official calendar years given ahead of the calendar package."""
    return await feedback.rules()


@router.put("/rules", tags=["rules"], responses=error_responses(422))
async def replace_rules(body: Rules, feedback: Feedback, _: Annotated[Principal, Depends(require("admin"))]) -> Rules:
    return await feedback.replace_rules(body)
