"""The feedback service's rules, without I/O: China's good/bad review (好差评) rules for government
services — one rating per service on five levels, a bad review owned by whoever handled the visit,
verified, rectified within working days and followed up before it closes, appeals — the message
book, and the figures and monthly rankings."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from goldenkey.contracts import (
    ComplaintClosed,
    ComplaintFollowedUp,
    ComplaintOpened,
    ComplaintOverdue,
    ComplaintRectified,
    ComplaintVerified,
    MessagePosted,
    PraiseReceived,
    RatingAppealDecided,
    RatingAppealed,
    RatingSubmitted,
)
from goldenkey.contracts.vocabulary import (
    AppealGround,
    AppealVerdict,
    ComplaintComplexity,
    ComplaintOrigin,
    ComplaintStage,
    MessageKind,
    SubjectType,
)
from goldenkey.feedback.workdays import OfficialYear, WorkingDays
from goldenkey.kit import Aggregate, Conflict, Invalid
from goldenkey.kit.errors import Forbidden

LEVELS: Mapping[int, tuple[str, str]] = {
    5: ("非常满意", "very satisfied"),
    4: ("满意", "satisfied"),
    3: ("基本满意", "basically satisfied"),
    2: ("不满意", "unsatisfied"),
    1: ("非常不满意", "very unsatisfied"),
}
"""The five levels of the government-service scale, best first."""
CONCIERGE_DESK = "CONCIERGE"
CAR_PARK = "PARKING"
"""The units that own ratings of assistance and of incidents (a window owns its tickets')."""

ComplaintStatus = Literal["opened", "verified", "rectified", "followed_up", "closed"]
OPEN_COMPLAINT: tuple[ComplaintStatus, ...] = ("opened", "verified", "rectified", "followed_up")
GroupBy = Literal["window", "staff", "category", "concierge", "day"]
IsoDate = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]


def is_bad_review(score: int) -> bool:
    """不满意 or 非常不满意: a bad review, which opens a complaint case."""
    return score <= 2


def is_satisfied(score: int) -> bool:
    """满意 or 非常满意: what the satisfaction rate counts."""
    return score >= 4


# --- the rules ---------------------------------------------------------------------------------------


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Deadlines(Config):
    """Working days allowed for each stage of a complaint case."""

    verify: int = Field(default=1, ge=1, le=30)
    """Contact the citizen and verify."""
    rectify_simple: int = Field(default=2, ge=1, le=60)
    rectify_complex: int = Field(default=15, ge=1, le=60)
    follow_up: int = Field(default=2, ge=1, le=30)
    """The follow-up call (回访) after rectification, on a real-name case."""


class CalendarYear(Config):
    """A year of the official calendar the `chinesecalendar` package does not carry yet."""

    holidays: list[IsoDate] = Field(default_factory=list)
    workdays: list[IsoDate] = Field(default_factory=list)
    """Make-up working days (调休): weekend days worked."""


class Rules(Config):
    """The complaint rules in force (data/rules.json; `PUT /rules` edits them)."""

    deadlines: Deadlines = Field(default_factory=Deadlines)
    hall_closed: list[IsoDate] = Field(default_factory=list)
    """The hall's own closing days, on top of the public holidays."""
    hall_opened: list[IsoDate] = Field(default_factory=list)
    """Days the hall works although the official calendar says not."""
    official: dict[Annotated[str, Field(pattern=r"^[0-9]{4}$")], CalendarYear] = Field(default_factory=dict)
    """Years of the official calendar from the State Council's notice, until the package has them."""

    @model_validator(mode="after")
    def _dates(self) -> Rules:
        for listed in (self.hall_closed, self.hall_opened, *(y.holidays + y.workdays for y in self.official.values())):
            for text in listed:
                date.fromisoformat(text)  # a real date, not only the right shape
        for year, days in self.official.items():
            strays = [d for d in days.holidays + days.workdays if not d.startswith(f"{year}-")]
            if strays:
                raise ValueError(f"official year {year} lists days of another year: {strays}")
        return self

    def working_days(self) -> WorkingDays:
        return WorkingDays.of(
            closed=(date.fromisoformat(d) for d in self.hall_closed),
            opened=(date.fromisoformat(d) for d in self.hall_opened),
            official={
                int(year): OfficialYear(
                    frozenset(date.fromisoformat(d) for d in y.holidays),
                    frozenset(date.fromisoformat(d) for d in y.workdays),
                )
                for year, y in self.official.items()
            },
        )


class RuleSet(Aggregate):
    """The rules in force (one document, id `RULES_ID`)."""

    rules: Rules


RULES_ID = "complaints"


@dataclass(frozen=True)
class Deadline:
    due_at: datetime
    estimated: bool
    """Counted through a year without the official calendar (Monday to Friday)."""


def deadline(start: datetime, working_days: int, days: WorkingDays, zone: ZoneInfo, closes: time) -> Deadline:
    """The end of the hall's day on the `working_days`-th working day after `start`'s day."""
    day = start.astimezone(zone).date()
    due = days.after(day, working_days)
    due_at = datetime.combine(due, closes, zone).astimezone(start.tzinfo)
    return Deadline(due_at, days.estimated(day, due))


# --- invitations and ratings -------------------------------------------------------------------------


class Invitation(Aggregate):
    """A service that may be rated, once (id = the subject's id): what it rates, for the figures."""

    subject_type: SubjectType
    unit: str
    """Who handled it and owns its rating: the window, the concierge desk or the car park."""
    window_id: str | None = None
    staff_id: str | None = None
    """The person who handled it: window staff, the concierge, the guard."""
    category: str | None = None
    kind: str | None = None
    """What was done: the assistance or incident kind."""
    ticket_id: str | None = None
    invited_at: datetime
    rating_id: str | None = None

    def must_be_at_window(self, window_id: str) -> None:
        """A window's rating device asks about the services of its own window (the feedback kiosk
        about any): a visit served at another window is rated there, or at the kiosk."""
        if self.window_id != window_id:
            where = f"window {self.window_id}" if self.window_id else str(self.unit)
            raise Forbidden(f"{self.id} was served by {where}: the rating device of {window_id} may not rate it")


class Appeal(BaseModel):
    ground: AppealGround
    reason: str
    at: datetime
    verdict: AppealVerdict | None = None
    decided_at: datetime | None = None
    note: str | None = None


class Rating(Aggregate):
    """One rating of one subject. Never edited; the rater's identity is not stored: no token, no
    name, no contact (a bad review's contact goes to its complaint case only)."""

    subject_type: SubjectType
    subject_id: str
    score: int = Field(ge=1, le=5)
    reasons: list[str] = Field(default_factory=list)
    comment: str | None = None
    """Kept here for ops to read; never in an event (it could name the rater)."""
    rated_at: datetime
    day: str
    unit: str
    window_id: str | None = None
    staff_id: str | None = None
    category: str | None = None
    ticket_id: str | None = None
    appeal: Appeal | None = None

    @property
    def counted(self) -> bool:
        """In the figures: not excluded by an upheld appeal."""
        return not (self.appeal is not None and self.appeal.verdict == "upheld")

    @property
    def bad(self) -> bool:
        return is_bad_review(self.score)

    @classmethod
    def submit(
        cls,
        *,
        rating_id: str,
        invitation: Invitation,
        score: int,
        reasons: list[str],
        comment: str | None,
        at: datetime,
        day: date,
    ) -> Rating:
        if invitation.rating_id is not None:
            raise Conflict(f"{invitation.subject_type} {invitation.id} is rated already: one rating per service")
        rating = cls(
            id=rating_id,
            subject_type=invitation.subject_type,
            subject_id=invitation.id,
            score=score,
            reasons=reasons,
            comment=comment,
            rated_at=at,
            day=day.isoformat(),
            unit=invitation.unit,
            window_id=invitation.window_id,
            staff_id=invitation.staff_id,
            category=invitation.category,
            ticket_id=invitation.ticket_id,
        )
        rating.record(
            RatingSubmitted(
                rating_id=rating_id,
                subject_type=invitation.subject_type,
                subject_id=invitation.id,
                score=score,
                reasons=reasons,
                bad_review=is_bad_review(score),
                window_id=invitation.window_id,
                category=invitation.category,
                staff_id=invitation.staff_id,
                unit=invitation.unit,
                ticket_id=invitation.ticket_id,
            ),
            at=at,
            correlation_id=invitation.ticket_id or invitation.id,
        )
        return rating

    def appeal_as(self, ground: AppealGround, reason: str, at: datetime) -> None:
        """Ops think the rating mistaken (the wrong window, say) or malicious: an admin decides."""
        if self.appeal is not None:
            state = "pending" if self.appeal.verdict is None else self.appeal.verdict
            raise Conflict(f"rating {self.id} has been appealed already (the appeal is {state})")
        self.appeal = Appeal(ground=ground, reason=reason, at=at)
        self.record(
            RatingAppealed(
                rating_id=self.id,
                subject_type=self.subject_type,
                subject_id=self.subject_id,
                ground=ground,
                note=reason,
            ),
            at=at,
        )

    def decide(self, verdict: AppealVerdict, note: str | None, at: datetime) -> None:
        """Upheld: the rating leaves every figure, and stays on record. Rejected: it counts."""
        if self.appeal is None:
            raise Conflict(f"rating {self.id} has no appeal to decide")
        if self.appeal.verdict is not None:
            raise Conflict(f"the appeal of rating {self.id} was {self.appeal.verdict} already")
        self.appeal.verdict, self.appeal.decided_at, self.appeal.note = verdict, at, note
        self.record(
            RatingAppealDecided(
                rating_id=self.id,
                subject_type=self.subject_type,
                subject_id=self.subject_id,
                verdict=verdict,
                note=note,
            ),
            at=at,
        )


# --- the message book --------------------------------------------------------------------------------


def mask_contact(contact: str) -> str:
    """'13912345678' → '139****5678'; '王先生 13912345678' → '王**********5678'; '8765432' → '8*****2'.
    At least half of it is always hidden."""
    n = len(contact)
    if n <= 4:
        return "*" * n
    head = 3 if n >= 11 and contact[:3].isdigit() else 1
    tail = 4 if n >= 10 else 1
    return contact[:head] + "*" * (n - head - tail) + contact[-tail:]


class Message(Aggregate):
    """A citizen's entry in the message book. Their contact stays here, raw; events mask it."""

    text: str
    kind: MessageKind | None = None
    window_id: str | None = None
    staff_id: str | None = None
    contact: str | None = None
    posted_at: datetime
    day: str
    complaint_id: str | None = None

    @classmethod
    def post(
        cls,
        *,
        message_id: str,
        text: str,
        kind: MessageKind | None,
        window_id: str | None,
        staff_id: str | None,
        contact: str | None,
        at: datetime,
        day: date,
    ) -> Message:
        message = cls(
            id=message_id,
            text=text,
            kind=kind,
            window_id=window_id,
            staff_id=staff_id,
            contact=contact,
            posted_at=at,
            day=day.isoformat(),
        )
        message.record(
            MessagePosted(
                message_id=message_id,
                text=text,
                kind=kind,
                window_id=window_id,
                staff_id=staff_id,
                has_contact=contact is not None,
                contact_masked=mask_contact(contact) if contact else None,
            ),
            at=at,
        )
        if kind == "praise" and (window_id or staff_id):
            message.record(
                PraiseReceived(message_id=message_id, text=text, window_id=window_id, staff_id=staff_id), at=at
            )
        return message


# --- complaint cases ---------------------------------------------------------------------------------


class CaseStep(BaseModel):
    step: str
    note: str
    by: str
    at: datetime


STAGE_OF: Mapping[ComplaintStatus, ComplaintStage | None] = {
    "opened": "verify",
    "verified": "rectify",
    "rectified": "follow_up",
    "followed_up": None,
    "closed": None,
}
"""The stage a case waits for in each status (a rectified anonymous case waits for nothing)."""


class Complaint(Aggregate):
    """A complaint case: from a bad review or the message book, owned by the unit that handled the
    visit, through verification, rectification and, on a real-name case, the follow-up call."""

    origin: ComplaintOrigin
    status: ComplaintStatus = "opened"
    unit: str | None = None
    window_id: str | None = None
    staff_id: str | None = None
    category: str | None = None
    rating_id: str | None = None
    message_id: str | None = None
    subject_type: SubjectType | None = None
    subject_id: str | None = None
    score: int | None = None
    contact: str | None = None
    """The citizen's contact for the follow-up call: raw, here only."""
    opened_at: datetime
    day: str
    complexity: ComplaintComplexity | None = None
    due: dict[str, datetime] = Field(default_factory=dict)
    """Deadline of each stage, set when the stage begins."""
    done: dict[str, datetime] = Field(default_factory=dict)
    """When each stage was done."""
    overdue: list[str] = Field(default_factory=list)
    """Stages that missed their deadline (each reported once)."""
    estimated: bool = False
    """A deadline was counted through a year without the official calendar."""
    steps: list[CaseStep] = Field(default_factory=list)
    satisfied: bool | None = None

    @property
    def real_name(self) -> bool:
        """The citizen left contact details: the case gets a follow-up call before it closes."""
        return self.contact is not None

    @property
    def correlation(self) -> str:
        return self.rating_id or self.message_id or self.id

    @classmethod
    def open(
        cls,
        *,
        complaint_id: str,
        origin: ComplaintOrigin,
        at: datetime,
        day: date,
        verify_by: Deadline,
        contact: str | None = None,
        rating: Rating | None = None,
        message: Message | None = None,
    ) -> Complaint:
        case = cls(
            id=complaint_id,
            origin=origin,
            opened_at=at,
            day=day.isoformat(),
            contact=contact,
            due={"verify": verify_by.due_at},
            estimated=verify_by.estimated,
        )
        if rating is not None:
            case.unit, case.window_id, case.staff_id, case.category = (
                rating.unit,
                rating.window_id,
                rating.staff_id,
                rating.category,
            )
            case.rating_id, case.subject_type, case.subject_id, case.score = (
                rating.id,
                rating.subject_type,
                rating.subject_id,
                rating.score,
            )
        if message is not None:
            case.message_id, case.window_id, case.staff_id = message.id, message.window_id, message.staff_id
            case.unit = message.window_id
        case.record(
            ComplaintOpened(
                complaint_id=complaint_id,
                origin=origin,
                due_at=verify_by.due_at,
                rating_id=case.rating_id,
                message_id=case.message_id,
                subject_type=case.subject_type,
                subject_id=case.subject_id,
                window_id=case.window_id,
                unit=case.unit,
                category=case.category,
                staff_id=case.staff_id,
                score=case.score,
                real_name=case.real_name,
            ),
            at=at,
            correlation_id=case.correlation,
        )
        return case

    @property
    def stage(self) -> ComplaintStage | None:
        """The stage the case waits for now."""
        stage = STAGE_OF[self.status]
        return None if stage == "follow_up" and not self.real_name else stage

    def _step(self, expected: tuple[ComplaintStatus, ...], step: str, note: str, by: str, at: datetime) -> None:
        if self.status not in expected:
            state = self.status.replace("_", " ")
            raise Conflict(f"complaint {self.id} is {state}: it cannot be {step}")
        self.steps.append(CaseStep(step=step, note=note, by=by, at=at))

    def verify(self, note: str, by: str, complexity: ComplaintComplexity, at: datetime, rectify_by: Deadline) -> None:
        """The citizen was contacted and the complaint checked: simple (put right at once, within
        the short deadline) or complex (entered in the ledger, the long one)."""
        self._step(("opened",), "verified", note, by, at)
        self.status, self.complexity = "verified", complexity
        self.done["verify"] = at
        self.due["rectify"] = rectify_by.due_at
        self.estimated = self.estimated or rectify_by.estimated
        self.record(
            ComplaintVerified(complaint_id=self.id, note=note, complexity=complexity, due_at=rectify_by.due_at),
            at=at,
            correlation_id=self.correlation,
        )

    def rectify(self, note: str, by: str, at: datetime, follow_up_by: Deadline) -> None:
        self._step(("verified",), "rectified", note, by, at)
        self.status = "rectified"
        self.done["rectify"] = at
        if self.real_name:
            self.due["follow_up"] = follow_up_by.due_at
            self.estimated = self.estimated or follow_up_by.estimated
        self.record(
            ComplaintRectified(
                complaint_id=self.id,
                note=note,
                follow_up_required=self.real_name,
                due_at=follow_up_by.due_at if self.real_name else None,
            ),
            at=at,
            correlation_id=self.correlation,
        )

    def follow_up(self, note: str, by: str, at: datetime, satisfied: bool | None) -> None:
        """The follow-up call (回访): the citizen is asked whether it was put right."""
        if self.status == "rectified" and not self.real_name:
            raise Conflict(f"complaint {self.id} left no contact: there is nobody to call back")
        self._step(("rectified",), "followed up", note, by, at)
        self.status, self.satisfied = "followed_up", satisfied
        self.done["follow_up"] = at
        self.record(
            ComplaintFollowedUp(complaint_id=self.id, note=note, satisfied=satisfied),
            at=at,
            correlation_id=self.correlation,
        )

    def close(self, note: str, by: str, at: datetime) -> None:
        """A real-name case closes only after its follow-up call; an anonymous one once rectified."""
        if self.status == "rectified" and self.real_name:
            raise Conflict(f"complaint {self.id} is a real-name case: it closes only after its follow-up call")
        self._step(("rectified", "followed_up"), "closed", note, by, at)
        self.status = "closed"
        self.record(ComplaintClosed(complaint_id=self.id, note=note), at=at, correlation_id=self.correlation)

    def report_overdue(self, at: datetime) -> ComplaintStage | None:
        """The stage waited for is past its deadline: `complaint.overdue`, once per stage."""
        stage = self.stage
        if stage is None or stage in self.overdue:
            return None
        due = self.due.get(stage)
        if due is None or at <= due:
            return None
        self.overdue.append(stage)
        self.record(
            ComplaintOverdue(complaint_id=self.id, stage=stage, due_at=due), at=at, correlation_id=self.correlation
        )
        return stage

    def on_time(self, stage: ComplaintStage) -> bool | None:
        """Whether a stage was done by its deadline (None while it has none, or is not done)."""
        due, done = self.due.get(stage), self.done.get(stage)
        return None if due is None or done is None else done <= due

    @property
    def all_on_time(self) -> bool:
        return not self.overdue and all(self.on_time(s) is not False for s in ("verify", "rectify", "follow_up"))


def rectify_deadline_days(deadlines: Deadlines, complexity: ComplaintComplexity) -> int:
    return deadlines.rectify_simple if complexity == "simple" else deadlines.rectify_complex


# --- figures -----------------------------------------------------------------------------------------


@dataclass
class Figures:
    """A group's figures over a period: counted ratings only (an upheld appeal excludes one)."""

    group: str
    levels: dict[int, int]
    rated: int
    excluded: int
    satisfaction_rate: float | None
    bad: int
    bad_rate: float | None
    cases: int
    on_time_rate: float | None
    rectified_rate: float | None
    followed_up_rate: float | None
    """Of the real-name cases."""
    rank: int | None = None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def group_of(
    group_by: GroupBy, *, window_id: str | None, staff_id: str | None, category: str | None, unit: str | None, day: str
) -> str | None:
    """The group a rating or case belongs to; None when it has nothing to group by (a concierge's
    rating has no window)."""
    if group_by == "window":
        return window_id
    if group_by == "staff":
        return staff_id
    if group_by == "category":
        return category
    if group_by == "concierge":
        return staff_id if unit == CONCIERGE_DESK else None
    return day


G = TypeVar("G", Rating, Complaint)


def grouped(items: Iterable[G], group_by: GroupBy) -> defaultdict[str, list[G]]:
    """Ratings or cases by the group each belongs to (those with nothing to group by left out)."""
    groups: defaultdict[str, list[G]] = defaultdict(list)
    for item in items:
        key = group_of(
            group_by,
            window_id=item.window_id,
            staff_id=item.staff_id,
            category=item.category,
            unit=item.unit,
            day=item.day,
        )
        if key is not None:
            groups[key].append(item)
    return groups


def figures(ratings: Iterable[Rating], cases: Iterable[Complaint], group_by: GroupBy) -> list[Figures]:
    """Each group's figures, ranked by satisfaction rate (see `ranks`)."""
    by_group, cases_by_group = grouped(ratings, group_by), grouped(cases, group_by)
    found = []
    for group in sorted(set(by_group) | set(cases_by_group)):
        counted = [r for r in by_group[group] if r.counted]
        levels = Counter(r.score for r in counted)
        group_cases = cases_by_group[group]
        real_name = [c for c in group_cases if c.real_name]
        found.append(
            Figures(
                group=group,
                levels={score: levels.get(score, 0) for score in LEVELS},
                rated=len(counted),
                excluded=len(by_group[group]) - len(counted),
                satisfaction_rate=_rate(sum(1 for r in counted if is_satisfied(r.score)), len(counted)),
                bad=sum(1 for r in counted if r.bad),
                bad_rate=_rate(sum(1 for r in counted if r.bad), len(counted)),
                cases=len(group_cases),
                on_time_rate=_rate(sum(1 for c in group_cases if c.all_on_time), len(group_cases)),
                rectified_rate=_rate(sum(1 for c in group_cases if "rectify" in c.done), len(group_cases)),
                followed_up_rate=_rate(sum(1 for c in real_name if "follow_up" in c.done), len(real_name)),
            )
        )
    for entry, rank in zip(found, ranks([f.satisfaction_rate for f in found]), strict=True):
        entry.rank = rank
    return sorted(found, key=lambda f: (f.rank is None, f.rank, f.group))


def ranks(rates: list[float | None]) -> list[int | None]:
    """Competition ranking, best rate first: equal rates share a rank and the next rank skips
    (0.9, 0.9, 0.8 → 1, 1, 3). A group with nothing rated is not ranked."""
    ranked = sorted((r for r in rates if r is not None), reverse=True)
    return [None if r is None else ranked.index(r) + 1 for r in rates]


@dataclass
class Ranking:
    window_id: str
    rank: int
    satisfaction_rate: float
    rated: int
    last: bool
    last_two_months_running: bool
    """Ranked last this month and the month before: flagged."""


def month_ranking(this_month: list[Figures], last_month: list[Figures]) -> list[Ranking]:
    """The windows of a month, ranked; the last (every window sharing the last rank) flagged when
    it was last the month before too."""
    ranked = [f for f in this_month if f.rank is not None and f.satisfaction_rate is not None]
    worst = max((f.rank for f in ranked if f.rank is not None), default=None)
    before = [f for f in last_month if f.rank is not None]
    worst_before = max((f.rank for f in before if f.rank is not None), default=None)
    last_before = {f.group for f in before if f.rank == worst_before and worst_before is not None and worst_before > 1}
    rankings = []
    for f in ranked:
        assert f.rank is not None
        assert f.satisfaction_rate is not None
        last = f.rank == worst and worst is not None and worst > 1  # when all tie, nobody is last
        rankings.append(
            Ranking(
                window_id=f.group,
                rank=f.rank,
                satisfaction_rate=f.satisfaction_rate,
                rated=f.rated,
                last=last,
                last_two_months_running=last and f.group in last_before and len(before) > 1,
            )
        )
    return rankings


def month_bounds(month: str) -> tuple[date, date]:
    """'2026-11' → (2026-11-01, 2026-11-30)."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise Invalid(f"month {month!r} is not like 2026-11") from None
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def previous_month(month: str) -> str:
    first, _ = month_bounds(month)
    before = first - timedelta(days=1)
    return f"{before.year:04d}-{before.month:02d}"
