"""The feedback service's use cases: what the rating devices, the message-book kiosk, ops, admin
or an event asks of it, on the rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from goldenkey.contracts import AssistanceCompleted, CloudEvent, IncidentResolved, TicketCompleted, derived_id
from goldenkey.contracts.vocabulary import AppealGround, AppealVerdict, ComplaintComplexity, MessageKind, SubjectType
from goldenkey.feedback.domain import (
    CAR_PARK,
    CONCIERGE_DESK,
    RULES_ID,
    Complaint,
    Deadline,
    Figures,
    GroupBy,
    Invitation,
    Message,
    Ranking,
    Rating,
    Rules,
    RuleSet,
    deadline,
    figures,
    month_bounds,
    month_ranking,
    previous_month,
    rectify_deadline_days,
)
from goldenkey.feedback.metrics import FeedbackMetrics
from goldenkey.feedback.store import FeedbackStore
from goldenkey.kit import AlreadyExists, BusinessCalendar, Clock, Conflict, Invalid, Missing
from goldenkey.kit.logs import get_logger

log = get_logger(__name__)
MEND_LOOKBACK = timedelta(days=2)
"""How far back the watchdog looks for a bad review or a complaint message whose case a crash
left unopened."""
LONGEST_PERIOD = timedelta(days=366)
"""The longest period `GET /satisfaction` adds up."""


class FeedbackService:
    def __init__(
        self, store: FeedbackStore, clock: Clock, calendar: BusinessCalendar, metrics: FeedbackMetrics
    ) -> None:
        self.store = store
        self.clock = clock
        self.calendar = calendar
        self.metrics = metrics

    def today(self) -> date:
        return self.calendar.business_day(self.clock.now())

    async def _deadline(self, start: datetime, working_days: int) -> Deadline:
        rules = await self.store.rules()
        minutes = self.calendar.hours.closes_minutes
        closes = time(23, 59) if minutes >= 1440 else time(minutes // 60, minutes % 60)
        due = deadline(start, working_days, rules.working_days(), self.calendar.zone, closes)
        if due.estimated:
            log.warning(
                "deadline counted Monday to Friday: no official calendar for its year; add it to the rules",
                due_at=due.due_at.isoformat(),
            )
        return due

    # --- invitations -------------------------------------------------------------------------------

    async def _invite(self, invitation: Invitation) -> None:
        try:
            await self.store.invitations.add(invitation)
        except AlreadyExists:  # a redelivered event: the first invitation stands
            return
        self.metrics.invitations.labels(invitation.subject_type).inc()

    async def ticket_completed(self, envelope: CloudEvent, done: TicketCompleted) -> None:
        """A visit at a window ended: the citizen may rate it, and the window owns the rating."""
        await self._invite(
            Invitation(
                id=done.ticket_id,
                subject_type="ticket",
                unit=done.window_id,
                window_id=done.window_id,
                staff_id=done.staff_id,
                category=done.category,
                kind=done.outcome,
                ticket_id=done.ticket_id,
                invited_at=envelope.time or self.clock.now(),
            )
        )

    async def assistance_completed(self, envelope: CloudEvent, done: AssistanceCompleted) -> None:
        """A Golden Key concierge finished helping: the concierge desk owns the rating."""
        await self._invite(
            Invitation(
                id=done.assistance_id,
                subject_type="assistance",
                unit=CONCIERGE_DESK,
                staff_id=done.concierge_id,
                kind=done.kind,
                ticket_id=done.ticket_id,
                invited_at=envelope.time or self.clock.now(),
            )
        )

    async def incident_resolved(self, envelope: CloudEvent, done: IncidentResolved) -> None:
        """A problem on a parked car was dealt with: the car park owns the rating."""
        await self._invite(
            Invitation(
                id=done.incident_id,
                subject_type="incident",
                unit=CAR_PARK,
                staff_id=done.guard_id,
                kind=done.kind,
                ticket_id=done.ticket_id,
                invited_at=envelope.time or self.clock.now(),
            )
        )

    async def invitation(self, subject_id: str) -> Invitation:
        found = await self.store.invitations.get(subject_id)
        if found is None:
            raise Missing(f"nothing to rate for {subject_id}: no invitation (the service may not be over yet)")
        return found

    # --- ratings -----------------------------------------------------------------------------------

    async def rate(
        self,
        *,
        subject_type: SubjectType,
        subject_id: str,
        score: int,
        reasons: list[str],
        comment: str | None,
        contact: str | None,
        check: Callable[[Invitation], None] = lambda _: None,
    ) -> Rating:
        """One rating per invited service. Its id derives from the subject, so of two ratings of one
        subject exactly one is stored; the other is a 409 and the first stands. A bad review opens
        a complaint case; the contact, if the citizen left one, goes to that case only. `check`
        says whether the caller may rate it, before anything is written."""
        invitation = await self.invitation(subject_id)
        check(invitation)
        if invitation.subject_type != subject_type:
            raise Invalid(f"{subject_id} is a {invitation.subject_type}, not a {subject_type}")
        now = self.clock.now()
        rating = Rating.submit(
            rating_id=derived_id(subject_id, "rating"),
            invitation=invitation,
            score=score,
            reasons=reasons,
            comment=comment,
            at=now,
            day=self.calendar.business_day(now),
        )
        try:
            await self.store.ratings.add(rating)
        except AlreadyExists:
            raise Conflict(f"{subject_type} {subject_id} is rated already: one rating per service") from None
        self.metrics.ratings.labels(str(score)).inc()

        def rated(i: Invitation) -> None:
            i.rating_id = rating.id

        await self.store.invitations.update(subject_id, rated)
        if rating.bad:
            await self._case_of_bad_review(rating, contact)
        return rating

    async def _case_of_bad_review(self, rating: Rating, contact: str | None) -> Complaint:
        case = Complaint.open(
            complaint_id=derived_id(rating.id, "complaint"),
            origin="bad_review",
            at=rating.rated_at,
            day=date.fromisoformat(rating.day),
            verify_by=await self._deadline(rating.rated_at, (await self.store.rules()).deadlines.verify),
            contact=contact,
            rating=rating,
        )
        return await self._open(case)

    async def _open(self, case: Complaint) -> Complaint:
        try:
            await self.store.complaints.add(case)
        except AlreadyExists:  # the watchdog (or a retry) opened it first
            return await self.store.complaints.require(case.id)
        self.metrics.complaints_opened.labels(case.origin).inc()
        return case

    async def rating(self, rating_id: str) -> Rating:
        found = await self.store.ratings.get(rating_id)
        if found is None:
            raise Missing(f"no rating {rating_id}")
        return found

    async def appeal(self, rating_id: str, ground: AppealGround, reason: str) -> Rating:
        await self.rating(rating_id)
        return await self.store.ratings.update(rating_id, lambda r: r.appeal_as(ground, reason, self.clock.now()))

    async def decide(self, rating_id: str, verdict: AppealVerdict, note: str | None) -> Rating:
        await self.rating(rating_id)
        return await self.store.ratings.update(rating_id, lambda r: r.decide(verdict, note, self.clock.now()))

    # --- the message book --------------------------------------------------------------------------

    async def post(
        self,
        message_id: str,
        *,
        text: str,
        kind: MessageKind | None,
        window_id: str | None,
        staff_id: str | None,
        contact: str | None,
    ) -> Message:
        """A message-book entry; a complaint opens a case like a bad review does."""
        existing = await self.store.messages.get(message_id)
        if existing is not None:
            return existing
        now = self.clock.now()
        message = Message.post(
            message_id=message_id,
            text=text,
            kind=kind,
            window_id=window_id,
            staff_id=staff_id,
            contact=contact,
            at=now,
            day=self.calendar.business_day(now),
        )
        try:
            await self.store.messages.add(message)
        except AlreadyExists:
            return await self.store.messages.require(message_id)
        self.metrics.messages.labels(kind or "none").inc()
        if kind == "complaint":
            await self._case_of_message(message)
        return message

    async def _case_of_message(self, message: Message) -> Complaint:
        case = Complaint.open(
            complaint_id=derived_id(message.id, "complaint"),
            origin="message",
            at=message.posted_at,
            day=date.fromisoformat(message.day),
            verify_by=await self._deadline(message.posted_at, (await self.store.rules()).deadlines.verify),
            contact=message.contact,
            message=message,
        )
        return await self._open(case)

    # --- complaint cases ---------------------------------------------------------------------------

    async def complaint(self, complaint_id: str) -> Complaint:
        found = await self.store.complaints.get(complaint_id)
        if found is None:
            raise Missing(f"no complaint {complaint_id}")
        return found

    async def verify(self, complaint_id: str, note: str, by: str, complexity: ComplaintComplexity) -> Complaint:
        await self.complaint(complaint_id)
        now = self.clock.now()
        days = rectify_deadline_days((await self.store.rules()).deadlines, complexity)
        rectify_by = await self._deadline(now, days)
        return await self.store.complaints.update(
            complaint_id, lambda c: c.verify(note, by, complexity, now, rectify_by)
        )

    async def rectify(self, complaint_id: str, note: str, by: str) -> Complaint:
        await self.complaint(complaint_id)
        now = self.clock.now()
        follow_up_by = await self._deadline(now, (await self.store.rules()).deadlines.follow_up)
        return await self.store.complaints.update(complaint_id, lambda c: c.rectify(note, by, now, follow_up_by))

    async def follow_up(self, complaint_id: str, note: str, by: str, satisfied: bool | None) -> Complaint:
        await self.complaint(complaint_id)
        now = self.clock.now()
        return await self.store.complaints.update(complaint_id, lambda c: c.follow_up(note, by, now, satisfied))

    async def close(self, complaint_id: str, note: str, by: str) -> Complaint:
        await self.complaint(complaint_id)
        now = self.clock.now()
        return await self.store.complaints.update(complaint_id, lambda c: c.close(note, by, now))

    # --- figures -----------------------------------------------------------------------------------

    def _period(self, first: date | None, last: date | None) -> tuple[date, date]:
        last = last or self.today()
        first = first or last.replace(day=1)
        if first > last:
            raise Invalid(f"from {first} is after to {last}")
        if last - first > LONGEST_PERIOD:
            raise Invalid(f"a period is at most {LONGEST_PERIOD.days} days")
        return first, last

    async def satisfaction(
        self, group_by: GroupBy, first: date | None, last: date | None
    ) -> tuple[date, date, list[Figures]]:
        first, last = self._period(first, last)
        ratings = await self.store.ratings_between(first, last)
        cases = await self.store.complaints_between(first, last)
        return first, last, figures(ratings, cases, group_by)

    async def rankings(self, month: str | None) -> tuple[str, list[Ranking]]:
        today = self.today()
        month = month or f"{today.year:04d}-{today.month:02d}"
        this_first, this_last = month_bounds(month)
        before_first, before_last = month_bounds(previous_month(month))
        this = figures(await self.store.ratings_between(this_first, this_last), [], "window")
        before = figures(await self.store.ratings_between(before_first, before_last), [], "window")
        return month, month_ranking(this, before)

    # --- rules -------------------------------------------------------------------------------------

    async def rules(self) -> Rules:
        return await self.store.rules()

    async def replace_rules(self, rules: Rules) -> Rules:
        """An admin changed the rules: deadlines already set keep their date; new ones follow these."""
        if await self.store.rule_sets.get(RULES_ID) is None:
            await self.store.seed()

        def replace(rule_set: RuleSet) -> None:
            rule_set.rules = rules

        return (await self.store.rule_sets.update(RULES_ID, replace)).rules

    # --- the watchdog ------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """What time alone triggers: stages past their deadline (`complaint.overdue`, once each),
        and cases a crash left unopened after their bad review or complaint message."""
        now = self.clock.now()
        for case in await self.store.open_complaints():
            stage = case.stage
            if stage is None or stage in case.overdue or case.due.get(stage, now) >= now:
                continue
            await self._report_overdue(case.id, now)
        await self.mend(now)

    async def _report_overdue(self, complaint_id: str, now: datetime) -> None:
        reported: list[str] = []

        def overdue(case: Complaint) -> None:
            if (stage := case.report_overdue(now)) is not None:
                reported.append(stage)

        await self.store.complaints.update(complaint_id, overdue)
        for stage in reported:
            self.metrics.overdue_stages.labels(stage).inc()

    async def mend(self, now: datetime) -> int:
        """Open the cases of recent bad reviews and complaint messages that have none."""
        since = (now - MEND_LOOKBACK).isoformat()[:10]
        opened = 0
        for rating in await self.store.ratings.find({"day": {"$gte": since}, "score": {"$lte": 2}}):
            if await self.store.complaints.get(derived_id(rating.id, "complaint")) is None:
                await self._case_of_bad_review(rating, None)
                opened += 1
        for message in await self.store.messages.find({"day": {"$gte": since}, "kind": "complaint"}):
            if await self.store.complaints.get(derived_id(message.id, "complaint")) is None:
                await self._case_of_message(message)
                opened += 1
        return opened
