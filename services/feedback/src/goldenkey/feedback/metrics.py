"""The feedback service's metrics (DESIGN §9). Counters are counted where things happen; state
gauges are read from MongoDB before each scrape, so several instances agree.

Every label set a counter can have is created at 0 before anything is counted: a series that
appears only at its first use has no value on a dashboard until then (a stage overdue may not
happen for days), and Prometheus sees no increase in its first value."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, get_args

from prometheus_client import Counter, Gauge

from goldenkey.contracts.vocabulary import ComplaintOrigin, ComplaintStage, MessageKind, SubjectType
from goldenkey.feedback.domain import LEVELS, figures
from goldenkey.kit.metrics import Metrics

if TYPE_CHECKING:
    from goldenkey.feedback.service import FeedbackService

SATISFACTION_WINDOW = timedelta(hours=24)
"""The satisfaction gauges look at the ratings of the last 24 hours."""


class FeedbackMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.ratings = Counter(
            "goldenkey_ratings_total",
            "Ratings submitted, by score (5 very satisfied … 1 very unsatisfied)",
            ["score"],
            registry=registry,
        )
        for score in LEVELS:
            self.ratings.labels(str(score))
        self.invitations = Counter(
            "goldenkey_invitations_total",
            "Services offered for rating, by what they are",
            ["subject_type"],
            registry=registry,
        )
        self.messages = Counter(
            "goldenkey_messages_total",
            "Message-book entries, by kind (none when not given)",
            ["kind"],
            registry=registry,
        )
        self.complaints_opened = Counter(
            "goldenkey_complaints_opened_total", "Complaint cases opened, by origin", ["origin"], registry=registry
        )
        self.overdue_stages = Counter(
            "goldenkey_complaint_stages_overdue_total",
            "Complaint stages that missed their deadline",
            ["stage"],
            registry=registry,
        )
        for counter, values in (
            (self.invitations, get_args(SubjectType)),
            (self.messages, (*get_args(MessageKind), "none")),
            (self.complaints_opened, get_args(ComplaintOrigin)),
            (self.overdue_stages, get_args(ComplaintStage)),
        ):
            for value in values:
                counter.labels(value)
        self.complaints_open = Gauge("goldenkey_complaints_open", "Complaint cases not closed", registry=registry)
        self.complaints_overdue = Gauge(
            "goldenkey_complaints_overdue",
            "Open complaint cases past the deadline of the stage they wait for",
            registry=registry,
        )
        self.satisfaction = Gauge(
            "goldenkey_satisfaction_rate",
            "Share of the last 24 hours' counted ratings that are satisfied or very satisfied, by category",
            ["category"],
            registry=registry,
        )
        self.rated = Gauge(
            "goldenkey_satisfaction_ratings",
            "Counted ratings of the last 24 hours, by category (the sample behind the rate)",
            ["category"],
            registry=registry,
        )

    async def refresh(self, feedback: FeedbackService) -> None:
        """Set the state gauges from the database."""
        now = feedback.clock.now()
        open_cases = await feedback.store.open_complaints()
        self.complaints_open.set(len(open_cases))
        self.complaints_overdue.set(
            sum(1 for c in open_cases if c.stage is not None and (due := c.due.get(c.stage)) is not None and due < now)
        )
        recent = await feedback.store.ratings_since(now - SATISFACTION_WINDOW)
        self.satisfaction.clear()
        self.rated.clear()
        for group in figures(recent, [], "category"):
            self.rated.labels(group.group).set(group.rated)
            if group.satisfaction_rate is not None:
                self.satisfaction.labels(group.group).set(group.satisfaction_rate)
