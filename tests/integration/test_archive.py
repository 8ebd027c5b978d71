"""Moving closed aggregates out of the working collection (`Repository.archive`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from goldenkey.kit import Repository, ServiceKit
from tests.widgets import Widget, new_contract, settings_for

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def test_archiving_moves_what_matches_and_keeps_what_still_has_events_to_publish(infra: Any) -> None:
    contract = new_contract()
    kit = ServiceKit(settings_for(infra))
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    await widgets.add(Widget(id="w1", colour="red"))
    pending = Widget(id="w2", colour="red")
    pending.record(contract.WidgetMade(widget_id="w2", colour="red"), at=NOW)  # not published: no relay
    await widgets.add(pending)
    await widgets.add(Widget(id="w3", colour="blue"))

    assert await widgets.archive({"colour": "red"}) == 1
    assert await widgets.get("w1") is None
    archived = await widgets.find_archived("w1")
    assert archived is not None
    assert archived.colour == "red"
    assert {w.id for w in await widgets.find({})} == {"w2", "w3"}, "w2's event is still to be published"


async def test_archiving_again_after_an_interrupted_run_keeps_the_latest_copy(infra: Any) -> None:
    kit = ServiceKit(settings_for(infra))
    widgets: Repository[Widget] = Repository(kit.db["widgets"], Widget)
    await widgets.add(Widget(id="w1", colour="red"))
    stale = await kit.db["widgets"].find_one({"_id": "w1"})
    assert stale is not None
    await widgets.archive_collection.insert_one(stale)  # a run copied it, then died before the delete
    await widgets.update("w1", lambda w: setattr(w, "coats", 3))

    assert await widgets.archive({"colour": "red"}) == 1
    archived = await widgets.find_archived("w1")
    assert archived is not None
    assert archived.coats == 3
    assert await kit.db["widgets"].count_documents({}) == 0
