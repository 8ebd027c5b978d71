"""HTTP middleware of the kit: `Idempotency-Key` replay for creating POSTs (DESIGN §7.8) and the
correlation id of a request."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pymongo.errors import DuplicateKeyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goldenkey.contracts.envelope import ID_NAMESPACE
from goldenkey.kit.auth import token_hash
from goldenkey.kit.logs import correlation_id
from goldenkey.kit.mongo import UNAVAILABLE

IDEMPOTENCY = "idempotency"
STALE_AFTER = timedelta(seconds=60)
"""A pending key older than this belongs to a request that died: a retry may take it over."""


async def _send_json(send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
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
    same key from the same caller on the same path gets that response again, with
    `Idempotency-Replayed: true`, and the command does not run twice. The same key with a
    different body is a 422; while the first request is still running, a 409.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # FastAPI's max_body_size has bounded it already
        if not 1 <= len(key) <= 200:
            await _send_json(send, 400, {"detail": "Idempotency-Key must be 1 to 200 characters"})
            return
        try:
            await self._idempotent(scope, body, key, headers.get("authorization", ""), send)
        except UNAVAILABLE:
            await _send_json(send, 503, {"detail": "database unavailable; retry with the same Idempotency-Key"})

    async def _idempotent(self, scope: Scope, body: bytes, key: str, authorization: str, send: Send) -> None:
        store = scope["app"].state.db[IDEMPOTENCY]
        record_id = hashlib.sha256(f"{token_hash(authorization)}|{scope['path']}|{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(body).hexdigest()
        now = datetime.now(UTC)
        attempt = uuid.uuid4().hex
        pending = {"state": "pending", "request": fingerprint, "at": now, "attempt": attempt}
        retry = False
        try:
            await store.insert_one({"_id": record_id, **pending})
        except DuplicateKeyError:
            retry = True
            found = await store.find_one({"_id": record_id})
            if found is not None:
                if found["request"] != fingerprint:
                    await _send_json(send, 422, {"detail": "this Idempotency-Key was used with a different request"})
                    return
                if found["state"] == "done":
                    await _send_json_raw(send, found)
                    return
            # Its first attempt died (a stale pending record) or failed meanwhile (no record): take
            # the key over, unless another retry is quicker.
            in_progress = found is not None and now - found["at"] < STALE_AFTER
            if in_progress or not await _take_over(store, record_id, found, pending):
                await _send_json(send, 409, {"detail": "a request with this Idempotency-Key is in progress"})
                return

        scope.setdefault("state", {}).update(idempotency_key=record_id, idempotency_retry=retry)
        captured: dict[str, Any] = {"status": 500, "headers": {}, "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = {
                    k.decode(): v.decode()
                    for k, v in message.get("headers", [])
                    if k.lower() in (b"content-type", b"location")
                }
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, _replay(body), capture)
        finally:
            if 200 <= captured["status"] < 300:
                await store.update_one(
                    {"_id": record_id, "attempt": attempt},  # not if a twin took the key over meanwhile
                    {
                        "$set": {
                            "state": "done",
                            "status": captured["status"],
                            "headers": captured["headers"],
                            "body": captured["body"].decode(errors="replace"),
                        }
                    },
                )
            else:  # errors write nothing, so a retry may run the command afresh
                await store.delete_one({"_id": record_id, "attempt": attempt, "state": "pending"})


async def _take_over(store: Any, record_id: str, found: dict[str, Any] | None, pending: dict[str, Any]) -> bool:
    """Make a key's record this attempt's: whether it did (another retry may have been quicker)."""
    if found is None:
        try:
            await store.insert_one({"_id": record_id, **pending})
        except DuplicateKeyError:
            return False
        return True
    taken = await store.replace_one({"_id": record_id, "attempt": found.get("attempt")}, pending)
    return bool(taken.matched_count == 1)


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
