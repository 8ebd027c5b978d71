"""How an Idempotency-Key attempt claims its key while other attempts of the same key race it.

Each interleaving is played on an in-memory store whose `rival` moves the record on between this
attempt's own steps, as another attempt would; the real race over HTTP and the database server is
in tests/integration/test_http.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from goldenkey.kit.http import CLAIM_ROUNDS, STALE_AFTER, _claim

KEY, REQUEST, ME = "record", "fingerprint", "my-attempt"
Rival = Callable[[dict[str, dict[str, Any]]], None]


class Replaced:
    def __init__(self, matched: int) -> None:
        self.matched_count = matched


class RacedStore:
    """The few calls `_claim` makes, on a dict; before each call the next `rivals` entry (if any)
    changes the records, as the other attempts would have between two of this one's steps."""

    def __init__(self, records: dict[str, dict[str, Any]], *rivals: Rival | None) -> None:
        self.records = records
        self.rivals = list(rivals)
        self.calls: list[str] = []

    def _turn(self, call: str) -> None:
        self.calls.append(call)
        if self.rivals and (rival := self.rivals.pop(0)) is not None:
            rival(self.records)

    async def insert_one(self, document: dict[str, Any]) -> None:
        self._turn("insert")
        if document["_id"] in self.records:
            raise DuplicateKeyError("E11000 duplicate key error")
        self.records[document["_id"]] = dict(document)

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        self._turn("find")
        found = self.records.get(query["_id"])
        return dict(found) if found else None

    async def replace_one(self, query: dict[str, Any], document: dict[str, Any]) -> Replaced:
        self._turn("replace")
        found = self.records.get(query["_id"])
        if found is None or found.get("attempt") != query["attempt"]:
            return Replaced(0)
        self.records[query["_id"]] = {"_id": query["_id"], **document}
        return Replaced(1)


def pending(attempt: str, age: timedelta = timedelta(0), request: str = REQUEST) -> dict[str, Any]:
    return {"_id": KEY, "state": "pending", "request": request, "at": datetime.now(UTC) - age, "attempt": attempt}


def done(request: str = REQUEST) -> dict[str, Any]:
    return {**pending("first", request=request), "state": "done", "status": 201, "headers": {}, "body": "{}"}


def lets_go(records: dict[str, dict[str, Any]]) -> None:
    """The attempt holding the key failed and deleted its record."""
    records.pop(KEY, None)


def takes(attempt: str) -> Rival:
    def take(records: dict[str, dict[str, Any]]) -> None:
        records[KEY] = pending(attempt)

    return take


async def status_of(store: RacedStore) -> int | None:
    """What the attempt answers: None if it runs the request, else the status it sends."""
    claim = await _claim(store, KEY, REQUEST, ME)
    if claim.reply is None:
        return None
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await claim.reply(send)
    return int(sent[0]["status"])


async def test_a_first_attempt_runs_and_is_not_a_retry() -> None:
    store = RacedStore({})
    claim = await _claim(store, KEY, REQUEST, ME)
    assert (claim.reply, claim.retry) == (None, False)
    assert store.records[KEY]["attempt"] == ME


async def test_an_attempt_whose_rival_failed_between_its_insert_and_its_read_runs_afresh_as_a_retry() -> None:
    store = RacedStore({KEY: pending("first")}, None, lets_go)  # insert fails; before the read, the first lets go
    claim = await _claim(store, KEY, REQUEST, ME)
    assert (claim.reply, claim.retry) == (None, True), "it may have run before: the service looks first"
    assert store.records[KEY]["attempt"] == ME
    assert store.calls == ["insert", "find", "insert"]


async def test_an_attempt_that_loses_the_key_again_after_its_rival_let_go_answers_409_in_progress() -> None:
    # The first lets go before the read, a third attempt takes the key before this one's second insert.
    store = RacedStore({KEY: pending("first")}, None, lets_go, takes("third"))
    assert await status_of(store) == 409
    assert store.records[KEY]["attempt"] == "third"


async def test_a_key_that_keeps_changing_hands_ends_in_409_never_an_error() -> None:
    rivals: list[Rival | None] = []
    for n in range(CLAIM_ROUNDS):  # every round: the holder lets go before the read, another takes it after
        rivals += [takes(f"rival-{n}"), lets_go]
    store = RacedStore({KEY: pending("first")}, *rivals)
    assert await status_of(store) == 409
    assert store.calls == ["insert", "find"] * CLAIM_ROUNDS


async def test_a_settled_key_replays_the_first_answer() -> None:
    assert await status_of(RacedStore({KEY: done()})) == 201


async def test_the_same_key_with_another_body_is_422() -> None:
    assert await status_of(RacedStore({KEY: done(request="another body")})) == 422
    assert await status_of(RacedStore({KEY: pending("first", request="another body")})) == 422


async def test_a_key_whose_attempt_is_running_is_409() -> None:
    store = RacedStore({KEY: pending("first")})
    assert await status_of(store) == 409
    assert store.records[KEY]["attempt"] == "first"


async def test_a_key_whose_attempt_died_is_taken_over_as_a_retry() -> None:
    store = RacedStore({KEY: pending("dead", age=STALE_AFTER * 2)})
    claim = await _claim(store, KEY, REQUEST, ME)
    assert (claim.reply, claim.retry) == (None, True)
    assert store.records[KEY]["attempt"] == ME


async def test_of_two_retries_taking_over_a_dead_attempt_the_slower_answers_409() -> None:
    stale = pending("dead", age=STALE_AFTER * 2)
    store = RacedStore({KEY: stale}, None, None, takes("quicker"))  # it takes the key just before our replace
    assert await status_of(store) == 409
    assert store.records[KEY]["attempt"] == "quicker"
    assert store.calls == ["insert", "find", "replace", "insert", "find"]


async def test_a_duplicate_key_error_from_the_take_over_is_one_more_round_not_an_error() -> None:
    class Refusing(RacedStore):
        async def replace_one(self, query: dict[str, Any], document: dict[str, Any]) -> Replaced:
            self._turn("replace")
            self.records[KEY] = pending("quicker")
            raise DuplicateKeyError("E11000 duplicate key error")

    store = Refusing({KEY: pending("dead", age=STALE_AFTER * 2)})
    assert await status_of(store) == 409
