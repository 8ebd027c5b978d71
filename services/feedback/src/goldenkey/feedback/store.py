"""The feedback service's MongoDB side: its repositories, the rules loaded at start, and the reads
the figures need."""

from __future__ import annotations

import json
from datetime import date, datetime
from importlib import resources
from typing import Any

from goldenkey.feedback.domain import OPEN_COMPLAINT, RULES_ID, Complaint, Invitation, Message, Rating, Rules, RuleSet
from goldenkey.kit import AlreadyExists, Index, Repository

INDEXES = [
    Index("ratings", [("day", 1)]),
    Index("ratings", [("rated_at", 1)]),
    Index("complaints", [("status", 1)]),
    Index("complaints", [("day", 1)]),
    Index("complaints", [("unit", 1)]),
    Index("messages", [("day", 1)]),
    Index("invitations", [("invited_at", 1)]),
]


def shipped(name: str) -> Any:
    """One of the data files shipped with the service (rules)."""
    return json.loads(resources.files("goldenkey.feedback.data").joinpath(f"{name}.json").read_text("utf-8"))


class FeedbackStore:
    def __init__(
        self,
        invitations: Repository[Invitation],
        ratings: Repository[Rating],
        complaints: Repository[Complaint],
        messages: Repository[Message],
        rule_sets: Repository[RuleSet],
        *,
        rules: Rules | None = None,
    ) -> None:
        self.invitations = invitations
        self.ratings = ratings
        self.complaints = complaints
        self.messages = messages
        self.rule_sets = rule_sets
        self.shipped_rules = rules or Rules.model_validate(shipped("rules"))

    async def seed(self) -> None:
        """Load the shipped rules (or the hall's own file) unless rules are there already."""
        if await self.rule_sets.get(RULES_ID) is None:
            try:
                await self.rule_sets.add(RuleSet(id=RULES_ID, rules=self.shipped_rules))
            except AlreadyExists:  # another instance seeded them meanwhile
                pass

    async def rules(self) -> Rules:
        found = await self.rule_sets.get(RULES_ID)
        return found.rules if found is not None else self.shipped_rules

    async def open_complaints(self) -> list[Complaint]:
        return await self.complaints.find({"status": {"$in": list(OPEN_COMPLAINT)}}, sort=[("opened_at", 1)])

    async def ratings_between(self, first: date, last: date) -> list[Rating]:
        return await self.ratings.find({"day": {"$gte": first.isoformat(), "$lte": last.isoformat()}})

    async def ratings_since(self, since: datetime) -> list[Rating]:
        return await self.ratings.find({"rated_at": {"$gte": since}})

    async def complaints_between(self, first: date, last: date) -> list[Complaint]:
        return await self.complaints.find({"day": {"$gte": first.isoformat(), "$lte": last.isoformat()}})
