"""The AsyncAPI documents against the wire: real records off Kafka match what `/asyncapi` documents.

The queue emits tickets and windows; the concierge consumes `ticket.issued` and answers with an
assistance request. Every record either produced is checked against the served document of each
service that writes or reads it: its channel, its message (exactly one of the channel's), the
payload schema (formats checked), the `content-type` header, the key and the correlation id.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from goldenkey.concierge.app import Settings as ConciergeSettings
from goldenkey.concierge.app import build_app as build_concierge
from goldenkey.contracts import CONTENT_TYPE
from goldenkey.kit import ManualClock
from goldenkey.queue.app import Settings as QueueSettings
from goldenkey.queue.app import build_app as build_queue
from tests.support import RunningApp, TopicReader, unique, wait_for
from tests.unit.test_asyncapi import matching_messages, resolve, validator

pytestmark = pytest.mark.integration
OPENING = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 on a Wednesday in Xi'an
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}
OPS = {"Authorization": "Bearer dev-ops"}


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with RunningApp(app) as served, httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        await wait_for(app.state.kit.kafka_ready.is_set, 60)
        yield app, client


def common(infra: Any, database: str) -> dict[str, Any]:
    return {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": unique(database),
        "dev_mode": True,
        "dev_tokens": True,
        "consumer_backoff_s": 0.05,
        "mongodb_timeout_ms": 2000,
    }


def value_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(record.value or b"")
    return value


def check_record(document: dict[str, Any], record: ConsumerRecord[bytes, bytes], action: str) -> str:
    """Check one Kafka record against a service's document; the id of the message it is."""
    value = value_of(record)
    channel = document["channels"][record.topic]
    assert channel["address"] == record.topic
    (message_id,) = matching_messages(document, record.topic, value)  # exactly one of the channel's
    assert message_id == value["type"]
    message = document["components"]["messages"][message_id]

    errors = [e.message for e in validator(document, message["payload"]).iter_errors(value)]
    assert errors == [], f"{record.topic} {message_id}: {errors}"

    headers = {name: raw.decode() for name, raw in record.headers}
    assert headers["content-type"] == message["contentType"] == CONTENT_TYPE
    header_errors = [e.message for e in validator(document, message["headers"]).iter_errors(headers)]
    assert header_errors == [], header_errors

    key = (record.key or b"").decode()
    assert key == value["subject"]
    assert validator(document, message["bindings"]["kafka"]["key"]).is_valid(key)

    location = message["correlationId"]["location"]
    assert location == "$message.payload#/correlationid"
    if "correlationid" in value:  # the runtime expression names the event's own attribute
        assert resolve(value, location.removeprefix("$message.payload")) == value["correlationid"]

    operations = [o for o in document["operations"].values() if o["channel"]["$ref"] == f"#/channels/{record.topic}"]
    listed = [m["$ref"].rsplit("/", 1)[1] for o in operations if o["action"] == action for m in o["messages"]]
    assert message_id in listed, f"{message_id} is not documented as {action} on {record.topic}"
    return message_id


async def test_real_records_match_the_documents_of_who_sends_and_who_receives_them(infra: Any) -> None:
    clock = ManualClock(OPENING)
    queue_app = build_queue(QueueSettings(**common(infra, "queue_")), clock=clock)
    concierge_app = build_concierge(ConciergeSettings(**common(infra, "concierge_"), watch_s=3600), clock=clock)
    topics = ("queue.tickets", "queue.windows", "concierge.assistance")
    started_ms = int(time.time() * 1000)
    async with (
        running(queue_app) as (_, queue),
        running(concierge_app) as (_, concierge),  # the apps create their topics, then the reader reads them
        TopicReader(infra.kafka_bootstrap, *topics) as reader,
    ):
        opened = await queue.post("/windows/W11/open", json={"staff_id": "s-11"}, headers=WINDOW)
        assert opened.status_code == 200, opened.text
        issued = await queue.post(
            "/tickets", json={"item_code": "B001", "channel": "kiosk", "needs": ["wheelchair"]}, headers=KIOSK
        )
        assert issued.status_code == 201, issued.text
        ticket = issued.json()["ticket_id"]
        await queue.post("/tickets", json={"item_code": "B002", "channel": "kiosk"}, headers=KIOSK)  # waits
        called = await queue.post("/windows/W11/call-next", headers=WINDOW)
        assert called.json()["ticket_id"] == ticket, called.text
        for step in ("start", "complete"):
            body = {"outcome": "done"} if step == "complete" else None
            done = await queue.post(f"/tickets/{ticket}/{step}", json=body, headers=WINDOW)
            assert done.status_code == 200, done.text
        paused = await queue.post("/windows/W11/pause", json={"reason": "lunch", "force": True}, headers=OPS)
        assert paused.status_code == 200, paused.text

        def produced() -> list[ConsumerRecord[bytes, bytes]]:
            """Every record written since the test began (other tests' are older)."""
            return [r for r in reader.records if r.timestamp >= started_ms]

        def types() -> set[str]:
            return {value_of(r)["type"] for r in produced()}

        await wait_for(lambda: {"window.paused", "assistance.requested"} <= types(), 60)
        queue_document = (await queue.get("/asyncapi")).json()
        concierge_document = (await concierge.get("/asyncapi")).json()

    records = produced()
    mine = [r for r in records if (r.key or b"").decode() == ticket]
    sent = [check_record(queue_document, r, "send") for r in records if r.topic.startswith("queue.")]
    assert {"ticket.issued", "ticket.called", "ticket.service_started", "ticket.completed"} <= set(sent)
    assert {"window.opened", "window.paused"} <= set(sent)
    assert len(set(sent)) >= 6, "several event types were checked"

    # The concierge consumed the ticket (its assistance request proves it), as its document says.
    (issued_record,) = [r for r in mine if value_of(r)["type"] == "ticket.issued"]
    assert check_record(concierge_document, issued_record, "receive") == "ticket.issued"
    answers = [r for r in records if r.topic == "concierge.assistance"]
    assert {check_record(concierge_document, r, "send") for r in answers} >= {"assistance.requested"}
    assert any(value_of(r)["causationid"] == value_of(issued_record)["id"] for r in answers)
