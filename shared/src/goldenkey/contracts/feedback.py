"""Events the feedback service emits: ratings, the message book and complaint cases.

The rater's identity is protected: no rating event says who rated. Contact details left in the
message book stay in the feedback service.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from goldenkey.contracts.envelope import EventData
from goldenkey.contracts.registry import event
from goldenkey.contracts.topics import FEEDBACK_COMPLAINTS, FEEDBACK_MESSAGES, FEEDBACK_RATINGS
from goldenkey.contracts.vocabulary import (
    AppealGround,
    AppealVerdict,
    ComplaintComplexity,
    ComplaintOrigin,
    ComplaintStage,
    Id,
    MessageKind,
    RatingReason,
    Score,
    SubjectType,
    Text,
)

# --- feedback.ratings (keyed by the rated subject: one rating per subject) -------------------------


@event("rating.submitted", topic=FEEDBACK_RATINGS, producer="feedback", key="subject_id")
class RatingSubmitted(EventData):
    """A citizen rated a visit, an assistance or an incident's handling (once per subject)."""

    rating_id: Id
    subject_type: SubjectType
    subject_id: Id
    score: Score
    reasons: list[RatingReason] = Field(default_factory=list)
    bad_review: bool
    """Score 1 or 2: opens a complaint case."""
    window_id: Id | None = None
    category: Id | None = None
    staff_id: Id | None = None
    """Whoever handled the visit: window staff, a concierge or a guard."""
    unit: Id | None = None
    """Who owns the visit's rating: the window (`W09`), the concierge desk or the car park."""
    ticket_id: Id | None = None
    """The visit the rated subject belongs to. The rating carries no free text: a comment could name
    the rater, so it stays in the feedback service."""


@event("rating.appealed", topic=FEEDBACK_RATINGS, producer="feedback", key="subject_id")
class RatingAppealed(EventData):
    """An ops user appealed a rating as mistaken or malicious."""

    rating_id: Id
    subject_type: SubjectType
    subject_id: Id
    ground: AppealGround
    note: Text | None = None


@event("rating.appeal_decided", topic=FEEDBACK_RATINGS, producer="feedback", key="subject_id")
class RatingAppealDecided(EventData):
    """An appeal was upheld (the rating leaves the figures but stays on record) or rejected."""

    rating_id: Id
    subject_type: SubjectType
    subject_id: Id
    verdict: AppealVerdict
    note: Text | None = None


# --- feedback.messages -----------------------------------------------------------------------------


@event("message.posted", topic=FEEDBACK_MESSAGES, producer="feedback")
class MessagePosted(EventData):
    """A citizen wrote in the message book."""

    message_id: Id
    text: Text
    kind: MessageKind | None = None
    window_id: Id | None = None
    staff_id: Id | None = None
    has_contact: bool = False
    """The citizen left contact details (kept by the feedback service, never in events)."""
    contact_masked: Text | None = None
    """Their contact details masked (`139****5678`)."""


@event("praise.received", topic=FEEDBACK_MESSAGES, producer="feedback")
class PraiseReceived(EventData):
    """A message-book entry praised the hall, a window or a member of staff."""

    message_id: Id
    text: Text
    window_id: Id | None = None
    staff_id: Id | None = None


# --- feedback.complaints ---------------------------------------------------------------------------


@event("complaint.opened", topic=FEEDBACK_COMPLAINTS, producer="feedback")
class ComplaintOpened(EventData):
    """A complaint case was opened (from a bad review or a message); verification is due by `due_at`."""

    complaint_id: Id
    origin: ComplaintOrigin
    due_at: AwareDatetime
    """Deadline to contact the citizen and verify."""
    rating_id: Id | None = None
    message_id: Id | None = None
    subject_type: SubjectType | None = None
    subject_id: Id | None = None
    window_id: Id | None = None
    unit: Id | None = None
    """The unit that handled the visit and owns the case ("谁办理、谁负责")."""
    category: Id | None = None
    staff_id: Id | None = None
    score: Score | None = None
    real_name: bool = False
    """The citizen gave their name, so a follow-up call is required before closing."""


@event("complaint.verified", topic=FEEDBACK_COMPLAINTS, producer="feedback")
class ComplaintVerified(EventData):
    """The citizen was contacted and the complaint verified; rectification is due by `due_at`."""

    complaint_id: Id
    note: Text
    complexity: ComplaintComplexity
    """`simple`: put right at once; `complex`: entered in the ledger, rectified by the deadline."""
    due_at: AwareDatetime
    """Deadline to rectify: 2 working days for a simple case, 15 for a complex one by default."""


@event("complaint.rectified", topic=FEEDBACK_COMPLAINTS, producer="feedback")
class ComplaintRectified(EventData):
    """The cause of the complaint was put right."""

    complaint_id: Id
    note: Text
    follow_up_required: bool
    due_at: AwareDatetime | None = None
    """Deadline for the follow-up call, when one is required."""


@event("complaint.followed_up", topic=FEEDBACK_COMPLAINTS, producer="feedback")
class ComplaintFollowedUp(EventData):
    """The follow-up call (回访) to the citizen was made."""

    complaint_id: Id
    note: Text
    satisfied: bool | None = None
    """Whether the citizen said they were satisfied, if they said."""


@event("complaint.closed", topic=FEEDBACK_COMPLAINTS, producer="feedback")
class ComplaintClosed(EventData):
    """A complaint case was closed."""

    complaint_id: Id
    note: Text


@event("complaint.overdue", topic=FEEDBACK_COMPLAINTS, producer="feedback")
class ComplaintOverdue(EventData):
    """A complaint stage missed its deadline (once per stage)."""

    complaint_id: Id
    stage: ComplaintStage
    due_at: AwareDatetime
