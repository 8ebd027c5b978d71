"""The concierge's MongoDB side: the inventory and roster loaded at start, and the reads the rules need."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from importlib import resources
from typing import Any

from goldenkey.concierge.domain import OPEN_ASSISTANCE, Assistance, Concierge, Consumable, Lendable, Loan, Unit
from goldenkey.kit import AlreadyExists, Index, Repository
from goldenkey.kit.mongo import Document

INDEXES = [
    Index("loans", [("status", 1), ("due_at", 1)]),
    Index("loans", [("ticket_id", 1)]),
    Index("assistance", [("status", 1)]),
    Index("assistance", [("ticket_id", 1)]),
]


def shipped(name: str) -> Any:
    """One of the data files shipped with the service (inventory, concierges)."""
    return json.loads(resources.files("goldenkey.concierge.data").joinpath(f"{name}.json").read_text("utf-8"))


class ConciergeStore:
    def __init__(
        self,
        lendables: Repository[Lendable],
        consumables: Repository[Consumable],
        loans: Repository[Loan],
        assistance: Repository[Assistance],
        concierges: Repository[Concierge],
    ) -> None:
        self.lendables = lendables
        self.consumables = consumables
        self.loans = loans
        self.assistance = assistance
        self.concierges = concierges

    async def seed(self, at: datetime) -> None:
        """Load the shipped inventory and roster, idempotently: what is there already (and perhaps
        edited since) stays as it is; only what is missing is added."""
        inventory = shipped("inventory")
        new: list[tuple[Repository[Any], Any]] = [
            (
                self.lendables,
                Lendable(
                    id=row["sku"],
                    name_zh=row["name_zh"],
                    name_en=row["name_en"],
                    units=[Unit(unit_id=u, since=at) for u in row["units"]],
                ),
            )
            for row in inventory["lendables"]
        ]
        new += [
            (
                self.consumables,
                Consumable(
                    id=row["sku"],
                    name_zh=row["name_zh"],
                    name_en=row["name_en"],
                    stock=row["stock"],
                    minimum=row["minimum"],
                ),
            )
            for row in inventory["consumables"]
        ]
        new += [
            (
                self.concierges,
                Concierge(
                    id=row["id"],
                    name_zh=row["name_zh"],
                    name_en=row["name_en"],
                    on_duty=row["on_duty"],
                    duty_since=at if row["on_duty"] else None,
                ),
            )
            for row in shipped("concierges")
        ]
        existing = {
            repository.collection.name: {d["_id"] async for d in repository.collection.find({}, {"_id": 1})}
            for repository in (self.lendables, self.consumables, self.concierges)
        }
        for repository, aggregate in new:
            if aggregate.id in existing[repository.collection.name]:
                continue
            try:
                await repository.add(aggregate)
            except AlreadyExists:  # another instance seeded it meanwhile
                pass

    async def open_assistance(self) -> list[Assistance]:
        return await self.assistance.find({"status": {"$in": list(OPEN_ASSISTANCE)}}, sort=[("requested_at", 1)])

    async def open_load(self) -> Counter[str]:
        """How many open requests each concierge holds (assigned or accepted), counted by the database."""
        pipeline: list[Document] = [
            {"$match": {"status": {"$in": ["assigned", "accepted"]}}},
            {"$group": {"_id": "$concierge_id", "n": {"$sum": 1}}},
        ]
        cursor = await self.assistance.collection.aggregate(pipeline)
        return Counter({row["_id"]: row["n"] async for row in cursor if row["_id"]})

    async def on_duty(self) -> list[Concierge]:
        return [c for c in await self.concierges.find({}, sort=[("_id", 1)]) if c.on_duty]

    async def loans_out(self) -> list[Loan]:
        return await self.loans.find({"status": "out"}, sort=[("due_at", 1)])

    async def loans_of_ticket(self, ticket_id: str) -> list[Loan]:
        return await self.loans.find({"ticket_id": ticket_id}, sort=[("lent_at", 1)])
