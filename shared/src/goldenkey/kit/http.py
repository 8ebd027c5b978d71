"""HTTP middleware of the kit: `Idempotency-Key` replay for creating POSTs (DESIGN §7.8) and the
correlation id of a request."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pymongo.errors import DuplicateKeyError, PyMongoError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goldenkey.contracts.envelope import ID_NAMESPACE
from goldenkey.kit.auth import principal_of
from goldenkey.kit.logs import correlation_id, get_logger
from goldenkey.kit.mongo import UNAVAILABLE

log = get_logger(__name__)

IDEMPOTENCY = "idempotency"
STALE_AFTER = timedelta(seconds=15)
"""A pending key whose attempt has not renewed it for this long belongs to a request that died (its
process crashed): a retry may take it over. A running attempt renews it every `KEEP_ALIVE_S`, so a
kiosk retrying after a crash waits seconds for its key, not a minute, however long requests run."""
KEEP_ALIVE_S = 5.0
"""How often a running attempt renews its pending key (requests that end sooner write nothing more)."""


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class IdempotencyKeys:
    """ASGI middleware that replays `Idempotency-Key` POSTs.

    A POST with an `Idempotency-Key` header that succeeded (2xx) is stored with its response; the
    same key from the same caller (the same token, as `Authentication` found it) on the same path
    gets that response again, with `Idempotency-Replayed: true`, and the command does not run twice.
    The same key with a different body is a 422; while the first request is still running, a 409.
    An attempt that fails lets the key go, so a retry runs afresh. Runs after `Authentication`:
    a request without a valid token never reaches it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        key = _header(scope, b"idempotency-key") if principal is not None else None
        if principal is None or key is None:  # a public path has no POST to replay
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # FastAPI's max_body_size has bounded it already
        if not 1 <= len(key) <= 200:
            await _send_json(send, 400, {"detail": "Idempotency-Key must be 1 to 200 characters"})
            return
        store = scope["app"].state.db[IDEMPOTENCY]
        record_id = hashlib.sha256(f"{principal.token_hash}|{scope['path']}|{key}".encode()).hexdigest()
        attempt = uuid.uuid4().hex
        try:
            claim = await _claim(store, record_id, hashlib.sha256(body).hexdigest(), attempt)
        except UNAVAILABLE:
            await _send_json(send, 503, {"detail": "database unavailable; retry with the same Idempotency-Key"})
            return
        if claim.reply is not None:
            await claim.reply(send)
            return

        scope.setdefault("state", {}).update(idempotency_key=record_id, idempotency_retry=claim.retry)
        answer = _Answer()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = {
                    k.decode(): v.decode()
                    for k, v in message.get("headers", [])
                    if k.lower() in (b"content-type", b"location")
                }
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                if not message.get("more_body", False):  # settled before the caller has its answer, so
                    await _settle(store, record_id, attempt, answer)  # that a retry finds the key settled
            await send(message)

        alive = asyncio.create_task(_keep_alive(store, record_id, attempt))
        try:
            await self.app(scope, _replay(body), capture)
        finally:
            alive.cancel()
            if not answer.settled:  # the app failed before it had answered: let the key go
                answer.status = 500
                await _settle(store, record_id, attempt, answer)


@dataclass
class _Answer:
    """What the app answered an attempt, as far as it got."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    settled: bool = False


@dataclass(frozen=True)
class _Claim:
    """What an attempt found when it claimed its key: run the request, or send `reply` instead."""

    reply: Callable[[Send], Awaitable[None]] | None = None
    retry: bool = False
    """A record of the key was met: an earlier attempt may have created the thing (`may_have_run_before`)."""


CLAIM_ROUNDS = 3
"""How many times an attempt tries to make its key's record its own while rivals move the record on
(a failed attempt letting the key go, another retry taking it); then it answers as to a request in progress."""


def _reply(status: int, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> _Claim:
    return _Claim(reply=functools.partial(_send_json, status=status, payload={"detail": detail}, extra=extra))


IN_PROGRESS = _reply(409, "a request with this Idempotency-Key is in progress", [(b"retry-after", b"1")])


async def _claim(store: Any, record_id: str, fingerprint: str, attempt: str) -> _Claim:
    """Make the key's record this attempt's, or say what to answer instead. Every way a race with
    other attempts of the same key can go ends in a defined answer: the first response replayed,
    409 while another attempt runs, or this one running (afresh, or taking over a dead one's key)."""
    met = False
    for _ in range(CLAIM_ROUNDS):
        now = datetime.now(UTC)
        pending = {"state": "pending", "request": fingerprint, "at": now, "attempt": attempt}
        try:
            await store.insert_one({"_id": record_id, **pending})
            return _Claim(retry=met)
        except DuplicateKeyError:
            met = True
        found = await store.find_one({"_id": record_id})
        if found is None:
            continue  # its attempt failed and let the key go since: claim it again
        if found["request"] != fingerprint:
            return _reply(422, "this Idempotency-Key was used with a different request")
        if found["state"] == "done":
            return _Claim(reply=functools.partial(_send_json_raw, record=found))
        if now - found["at"] < STALE_AFTER:
            return IN_PROGRESS
        try:  # its attempt died: take the key over, unless another retry is quicker
            taken = await store.replace_one({"_id": record_id, "attempt": found.get("attempt")}, pending)
        except DuplicateKeyError:
            continue
        if taken.matched_count == 1:
            return _Claim(retry=True)
    return IN_PROGRESS


async def _keep_alive(store: Any, record_id: str, attempt: str) -> None:
    """Renew this attempt's pending key now and then, while the request runs."""
    while True:
        await asyncio.sleep(KEEP_ALIVE_S)
        try:
            await store.update_one(
                {"_id": record_id, "attempt": attempt, "state": "pending"}, {"$set": {"at": datetime.now(UTC)}}
            )
        except PyMongoError as error:  # the database away: the request meets it too
            log.warning("pending Idempotency-Key not renewed", error=repr(error))


async def _settle(store: Any, record_id: str, attempt: str, answer: _Answer) -> None:
    """Keep a 2xx answer for the key's retries; after an error, let the key go (errors write
    nothing, so a retry may run the command afresh). The command has run: a database error here
    is logged, not answered, and the pending record frees itself after `STALE_AFTER`."""
    answer.settled = True
    try:
        if 200 <= answer.status < 300:
            await store.update_one(
                {"_id": record_id, "attempt": attempt},  # not if a twin took the key over meanwhile
                {
                    "$set": {
                        "state": "done",
                        "status": answer.status,
                        "headers": answer.headers,
                        "body": answer.body.decode(errors="replace"),
                    }
                },
            )
        else:
            await store.delete_one({"_id": record_id, "attempt": attempt, "state": "pending"})
    except PyMongoError as error:
        log.warning("Idempotency-Key answer not recorded", status=answer.status, error=repr(error))


def _header(scope: Scope, name: bytes) -> str | None:
    value = next((v for k, v in scope["headers"] if k.lower() == name), None)
    return None if value is None else value.decode(errors="replace")


async def _send_json_raw(send: Send, record: dict[str, Any]) -> None:
    body = record["body"].encode()
    headers = [(k.encode(), v.encode()) for k, v in record.get("headers", {}).items()]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotency-replayed", b"true")]
    await send({"type": "http.response.start", "status": record["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})


def creation_id(request: Request) -> str:
    """The id for a thing a POST creates: derived from its Idempotency-Key when there is one, so a
    retry that runs again after a crash finds the first one instead of creating a second."""
    key = getattr(request.state, "idempotency_key", None)
    return str(uuid.uuid5(ID_NAMESPACE, key)) if key else str(uuid.uuid4())


async def _new_id(
    request: Request,
    _: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Any unique string (a UUID, say). A retry with the same key and body gets the "
            "first answer again, with `Idempotency-Replayed: true`, and creates nothing new.",
        ),
    ] = None,
) -> str:
    return creation_id(request)


NewId = Annotated[str, Depends(_new_id)]
"""A parameter of a POST that creates something: its id (`creation_id`), and the `Idempotency-Key`
header documented in the OpenAPI document."""


def may_have_run_before(request: Request) -> bool:
    """Whether an earlier attempt of this request may have created its thing already: its
    Idempotency-Key was taken over from an attempt that died. A first key, or none, is a fresh
    request; its `creation_id` is new, unless an earlier attempt failed after creating it (then
    the insert finds it)."""
    return bool(getattr(request.state, "idempotency_retry", False))


class CorrelationIds:
    """Binds `X-Correlation-ID` (a visit or case id a device sends, or a fresh one) to the logs of the
    request, and echoes it in the response."""

    header = b"x-correlation-id"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(self.header, b"").decode(errors="replace")[:200]
        value = sent or uuid.uuid4().hex

        async def echo(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (self.header, value.encode())]
            await send(message)

        token = correlation_id.set(value)
        try:
            await self.app(scope, receive, echo)
        finally:
            correlation_id.reset(token)
