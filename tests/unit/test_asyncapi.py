"""Each service's AsyncAPI document describes the Kafka records it really writes and reads, and the
API documents' pages load nothing from the internet.

No PyPI package ships the official AsyncAPI JSON Schema, so the document's structure is checked
here by assertions taken from the AsyncAPI 3.0 specification: every reference resolves, operations
name messages of their own channel, names match the component-name pattern, and every payload is a
valid (draft-07) schema that accepts a real serialized event of its type and no other type.
"""

from __future__ import annotations

import importlib
import json
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.specification import AsyncAPI
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT7

from goldenkey.contracts import CONTENT_TYPE, EVENTS, envelope_for
from goldenkey.kit import KitSettings, ServiceKit
from tests.unit.test_contracts import example

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["queue", "concierge", "parking", "feedback"]
DOCUMENT_URI = "urn:goldenkey:asyncapi"
COMPONENT_NAME = re.compile(r"^[\w\d.\-_]+$")  # AsyncAPI 3.0, components.*
RUNTIME_EXPRESSION = re.compile(r"^\$message\.(header|payload)#(/(([^/~])|(~[01]))*)*")  # correlationId.location
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def service_app(service: str) -> Any:
    module = importlib.import_module(f"goldenkey.{service}.app")
    return module.build_app(module.Settings(dev_mode=True))


def document_of(service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(service_app(service).state.kit.asyncapi().to_json())
    return document


@pytest.fixture(scope="module", params=SERVICES)
def service_document(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, document_of(request.param)


# --- helpers the integration test shares -----------------------------------------------------------


def format_checker() -> FormatChecker:
    """jsonschema's formats, with `date-time` checked as RFC 3339 (its own needs an extra package)."""
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def is_rfc3339(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return bool(RFC3339.match(value)) and datetime.fromisoformat(value.upper()).tzinfo is not None

    return checker


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validator(document: dict[str, Any], schema_or_ref: dict[str, Any]) -> Draft7Validator:
    """A validator for a schema of the document (AsyncAPI Schema: a superset of draft-07), its
    `#/components/...` references resolved in the document."""
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, DRAFT7.create_resource(document))
    schema = {"$ref": DOCUMENT_URI + schema_or_ref["$ref"]} if "$ref" in schema_or_ref else schema_or_ref
    return Draft7Validator(schema, registry=registry, format_checker=format_checker())


def message_ids(document: dict[str, Any], channel: str) -> list[str]:
    return [ref["$ref"].rsplit("/", 1)[1] for ref in document["channels"][channel]["messages"].values()]


def matching_messages(document: dict[str, Any], channel: str, value: Any) -> list[str]:
    """The messages of `channel` whose payload schema `value` is valid against."""
    found = []
    for message_id in message_ids(document, channel):
        payload = document["components"]["messages"][message_id]["payload"]
        if validator(document, payload).is_valid(value):
            found.append(message_id)
    return found


def sample_event(event_type: str, *, full: bool = True) -> dict[str, Any]:
    data = example(EVENTS[event_type].model, full=full)
    envelope = envelope_for(data, correlationid="visit-1", causationid="cause-1", sequence=7)
    value: dict[str, Any] = json.loads(envelope.to_bytes())
    return value


# --- the document's structure ----------------------------------------------------------------------


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_the_document_keeps_the_asyncapi_version_faststream_generates(
    service_document: tuple[str, dict[str, Any]],
) -> None:
    service, document = service_document
    kit = service_app(service).state.kit
    generated = AsyncAPI(kit.broker, title=kit.title).to_specification().to_jsonable()
    assert document["asyncapi"] == generated["asyncapi"] == "3.0.0"
    assert document["servers"] == generated["servers"], "servers and security come from the broker"
    assert document["info"]["title"] == kit.title
    assert document["defaultContentType"] == CONTENT_TYPE


def test_every_reference_resolves_and_component_names_are_valid(service_document: tuple[str, dict[str, Any]]) -> None:
    _, document = service_document
    for ref in refs(document):
        resolve(document, ref)
    for kind, components in document["components"].items():
        for name in components:
            assert COMPONENT_NAME.match(name), f"components.{kind}.{name}"


def test_operations_send_and_receive_messages_of_their_own_channel(
    service_document: tuple[str, dict[str, Any]],
) -> None:
    _, document = service_document
    assert document["operations"]
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        channel = channel_ref.removeprefix("#/channels/")
        assert operation["messages"], name
        for message in operation["messages"]:
            prefix, _, message_id = message["$ref"].rpartition("/")
            assert prefix == f"{channel_ref}/messages", "an operation's messages are its channel's"
            assert message_id in document["channels"][channel]["messages"]


def test_channels_are_topics_with_every_type_registered_on_them(service_document: tuple[str, dict[str, Any]]) -> None:
    service, document = service_document
    for topic, channel in document["channels"].items():
        assert channel["address"] == topic
        assert channel["bindings"]["kafka"]["topic"] == topic
        if topic == f"dlq.{service}":
            continue
        registered = sorted(t for t, spec in EVENTS.items() if spec.topic == topic)
        assert sorted(message_ids(document, topic)) == registered


def test_it_sends_what_the_service_emits_and_receives_what_its_consumer_handles(
    service_document: tuple[str, dict[str, Any]],
) -> None:
    service, document = service_document
    kit = service_app(service).state.kit
    sent, received = (
        {
            m["$ref"].rsplit("/", 1)[1]
            for o in document["operations"].values()
            if o["action"] == action
            for m in o["messages"]
        }
        for action in ("send", "receive")
    )
    produced = {t for t, spec in EVENTS.items() if spec.producer == service}
    consumed = set(kit.consumer.handlers)
    assert sent - {"dead-letter"} == produced
    assert received == consumed
    assert ("dead-letter" in sent) == bool(consumed), "a consumer dead-letters to dlq.<service>"
    for operation in document["operations"].values():
        if operation["action"] == "receive":
            assert operation["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": [service]}


def test_each_message_is_the_whole_cloudevent_with_its_key_header_and_correlation_id(
    service_document: tuple[str, dict[str, Any]],
) -> None:
    _, document = service_document
    for message_id, message in document["components"]["messages"].items():
        if message_id == "dead-letter":
            continue
        spec = EVENTS[message_id]
        assert message["contentType"] == CONTENT_TYPE
        assert message["correlationId"]["location"] == "$message.payload#/correlationid"
        assert RUNTIME_EXPRESSION.match(message["correlationId"]["location"])
        key = message["bindings"]["kafka"]
        assert key["bindingVersion"] == "0.4.0"
        assert key["key"]["type"] == "string"
        assert f"data.{spec.key}" in key["key"]["description"]
        headers = resolve(document, message["headers"]["$ref"])
        assert headers["properties"]["content-type"]["const"] == CONTENT_TYPE
        assert "content-type" in headers["required"]
        payload = resolve(document, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == spec.type
        assert payload["properties"]["source"]["const"] == spec.source
        envelope = document["components"]["schemas"]["CloudEvent"]
        assert set(payload["properties"]) == set(envelope["properties"])
        assert payload["required"] == envelope["required"]
        assert payload["properties"]["sequence"] == envelope["properties"]["sequence"]


def test_every_schema_is_a_valid_draft_07_schema(service_document: tuple[str, dict[str, Any]]) -> None:
    _, document = service_document
    for name, schema in document["components"]["schemas"].items():
        try:
            Draft7Validator.check_schema(schema)
        except Exception as error:  # pragma: no cover - the message names the schema
            raise AssertionError(f"components.schemas.{name}: {error}") from error


@pytest.mark.parametrize("full", [True, False])
def test_a_real_event_matches_exactly_one_message_of_its_channel(
    service_document: tuple[str, dict[str, Any]], full: bool
) -> None:
    _, document = service_document
    for topic in document["channels"]:
        for message_id in message_ids(document, topic):
            if message_id == "dead-letter":
                continue
            assert matching_messages(document, topic, sample_event(message_id, full=full)) == [message_id]


def test_the_payload_schema_refuses_what_is_not_the_event() -> None:
    document = document_of("concierge")
    payload = document["components"]["messages"]["ticket.issued"]["payload"]
    event = sample_event("ticket.issued")
    check = validator(document, payload)
    assert check.is_valid(event)
    assert not check.is_valid(event["data"]), "the value is the whole CloudEvent, not its data"
    assert not check.is_valid({**event, "time": "yesterday"}), "formats are checked"
    assert not check.is_valid({**event, "sequence": "7"}), "sequence is a JSON integer"
    assert not check.is_valid({**event, "source": "goldenkey/parking"})
    assert not check.is_valid({**event, "data": {**event["data"], "channel": "fax"}})
    assert not check.is_valid({k: v for k, v in event.items() if k != "subject"})


def test_the_envelope_says_how_to_compare_sequence() -> None:
    envelope = document_of("queue")["components"]["schemas"]["CloudEvent"]
    sequence = envelope["properties"]["sequence"]
    assert {"type": "integer", "minimum": 0} in sequence["anyOf"]
    for words in ("integer", "not the string of the CloudEvents Sequence extension", "Compare numbers"):
        assert words in sequence["description"]
    assert "sequence" in envelope["description"]


def test_a_service_without_a_consumer_has_no_dead_letter_channel() -> None:
    kit = ServiceKit(KitSettings(service="widgets", dev_mode=True))
    kit.emits(EVENTS["ticket.issued"].model)
    kit.app()
    document: dict[str, Any] = json.loads(kit.asyncapi().to_json())
    assert "dlq.widgets" not in document["channels"]
    assert document["operations"]
    assert all(o["action"] == "send" for o in document["operations"].values())


# --- the documents' pages, offline -----------------------------------------------------------------


class Assets(HTMLParser):
    """The URLs a page loads: scripts, styles, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.urls.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.urls.append(values["href"] or "")


def assets_of(page: str) -> list[str]:
    parser = Assets()
    parser.feed(page)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "wanted"),
    [
        ("/docs", {"javascript", "css", "image/png"}),
        ("/redoc", {"javascript", "image/png"}),
        ("/asyncapi/view", {"javascript", "css", "image/png"}),
    ],
)
async def test_a_documents_page_loads_only_local_assets_without_a_token(page: str, wanted: set[str]) -> None:
    app = service_app("queue")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hall.test") as client:
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "http://" not in response.text, "nothing from the internet"
        assert "https://" not in response.text, "nothing from the internet"
        urls = assets_of(response.text)
        assert urls
        seen = set()
        for url in urls:
            assert url.startswith("/"), url
            assert not url.startswith("//"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 100, url
            seen |= {kind for kind in wanted if kind in asset.headers["content-type"]}
        assert seen == wanted


async def test_the_asyncapi_page_points_its_viewer_at_the_document() -> None:
    app = service_app("queue")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hall.test") as client:
        page = (await client.get("/asyncapi/view")).text
        document = await client.get("/asyncapi")
    assert '<asyncapi-viewer src="/asyncapi"' in page
    assert document.status_code == 200
    assert document.json()["defaultContentType"] == CONTENT_TYPE


async def test_the_swagger_page_loads_this_services_openapi_document() -> None:
    app = service_app("queue")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hall.test") as client:
        page = (await client.get("/docs")).text
        openapi = await client.get("/openapi.json")
    assert "url: '/openapi.json'" in page
    assert openapi.status_code == 200
    paths = openapi.json()["paths"]
    assert "/tickets" in paths
    assert not any(p.startswith(("/docs", "/redoc", "/asyncapi/")) for p in paths), "the pages are not API"


def without_annotations(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: without_annotations(v)
            for k, v in schema.items()
            if k not in ("title", "description", "$schema", "x-topic", "x-kafka-key")
        }
    if isinstance(schema, list):
        return [without_annotations(v) for v in schema]
    return schema


def test_a_message_payload_validates_as_the_committed_event_schema_does() -> None:
    document = document_of("concierge")
    for message_id in document["components"]["messages"]:
        if message_id == "dead-letter":
            continue
        committed = json.loads((ROOT / "docs" / "events" / f"{message_id}.json").read_text(encoding="utf-8"))
        payload = resolve(document, document["components"]["messages"][message_id]["payload"]["$ref"])
        assert without_annotations(payload) == without_annotations(committed), message_id
