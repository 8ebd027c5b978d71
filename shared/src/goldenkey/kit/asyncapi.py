"""The AsyncAPI document of a service: the Kafka records it really publishes and consumes.

FastStream generates the document's frame — the AsyncAPI version, `info`, the Kafka servers and
their security schemes — from the broker. Its channels cannot say what is on the wire here: the
value of every record is a whole structured-mode CloudEvent (not the bare `data`), the
`content-type` header is `application/cloudevents+json`, the key is the event's subject, and the
correlation id is the event's `correlationid` attribute. So the channels, operations and messages
are written here from the contracts registry (`goldenkey.contracts`), the same source as the JSON
Schemas in docs/events/:

- one channel per topic the service writes or reads, listing every event type registered on
  that topic (AsyncAPI: every message on a channel matches exactly one of its messages; the
  pinned `type` makes them exclusive), plus the service's dead-letter topic;
- a `send` operation per topic it publishes to, with the types it emits, and a `receive`
  operation per topic it reads, with the types its consumer handles;
- one message per event type: the envelope schema (`CloudEvent`) with `type` and `source`
  pinned and `data` the payload's schema, the headers, the key (Kafka message binding) and
  `correlationId` at `$message.payload#/correlationid`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from io import StringIO
from typing import Any

from goldenkey.contracts import CONTENT_TYPE, EVENTS, EventSpec
from goldenkey.contracts.schemas import envelope_schema, event_schema

KAFKA_BINDING = "0.4.0"
ENVELOPE = "CloudEvent"
HEADERS = "CloudEventHeaders"
DEAD_LETTER_HEADERS = "DeadLetterHeaders"
DEAD_LETTER = "dead-letter"
CORRELATION = "correlationid"

Schema = dict[str, Any]

SEQUENCE = (
    "Golden Key Hall's extension: how many events the producing aggregate has emitted, this one "
    "included (1 for its first), a JSON integer (CloudEvents type Integer). It is not the string of "
    "the CloudEvents Sequence extension, and it orders the events of one `source` and `subject`, "
    "not a whole source. For two events with the same `source` and `subject`, the one with the "
    "larger `sequence` was recorded later. Compare numbers, never strings (`10` > `9`); numbers may "
    "be skipped, so a gap is no missed event; events of different subjects are not comparable. "
    "Deduplicate on `id`, not on `sequence`."
)


class AsyncAPIDocument:
    """A finished AsyncAPI document, in the shape FastStream's `Specification` has (so its HTML
    page can render it)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def to_jsonable(self) -> dict[str, Any]:
        return self.document

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False)

    def to_yaml(self) -> str:
        import yaml  # type: ignore[import-untyped]  # PyYAML, present wherever FastStream's to_yaml works

        out = StringIO()
        yaml.safe_dump(self.document, out, sort_keys=False, allow_unicode=True)
        return out.getvalue()


def describe_events(
    generated: dict[str, Any],
    *,
    service: str,
    published: Iterable[EventSpec],
    consumed: Iterable[EventSpec],
    dlq_topic: str,
) -> AsyncAPIDocument:
    """The service's document: FastStream's frame (`generated`, AsyncAPI 3.0) with the channels,
    operations and messages of the events `published` and `consumed`."""
    version = str(generated.get("asyncapi", ""))
    if not version.startswith("3."):
        raise ValueError(f"expected an AsyncAPI 3 document from FastStream, got {version!r}")
    sent = _by_topic(published)
    received = _by_topic(consumed)
    servers = [{"$ref": _pointer("servers", name)} for name in generated.get("servers", {})]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Schema] = {ENVELOPE: _envelope(), HEADERS: _headers()}

    for topic in sorted({*sent, *received}):
        on_topic = sorted((s for s in EVENTS.values() if s.topic == topic), key=lambda s: s.type)
        for spec in on_topic:
            messages[spec.type] = _message(spec)
            _add_schemas(schemas, spec)
        channels[topic] = _channel(topic, on_topic, servers)
        if topic in sent:
            operations[f"{topic}.send"] = _operation(
                "send",
                topic,
                sent[topic],
                title=f"Publish to {topic}",
                description=(
                    f"The {service} service publishes these events from its outbox, in the order each "
                    "subject recorded them, at least once (a redelivery has the same `id`)."
                ),
            )
        if topic in received:
            operations[f"{topic}.receive"] = _operation(
                "receive",
                topic,
                received[topic],
                title=f"Consume from {topic}",
                description=(
                    f"Consumer group `{service}`; an offset is committed once the message is handled or "
                    f"dead-lettered to `{dlq_topic}`. Other event types on the topic are skipped."
                ),
                bindings={"kafka": {"groupId": {"type": "string", "enum": [service]}, "bindingVersion": KAFKA_BINDING}},
            )

    if received:  # only a consumer dead-letters
        messages[DEAD_LETTER] = _dead_letter_message()
        schemas[DEAD_LETTER_HEADERS] = _dead_letter_headers()
        channels[dlq_topic] = {
            "address": dlq_topic,
            "title": dlq_topic,
            "description": (
                f"Messages the {service} service could not process, copied unchanged (value, key, "
                "`content-type`) with headers saying where they came from and why."
            ),
            **({"servers": servers} if servers else {}),
            "messages": {DEAD_LETTER: {"$ref": _pointer("components", "messages", DEAD_LETTER)}},
            "bindings": {"kafka": {"topic": dlq_topic, "bindingVersion": KAFKA_BINDING}},
        }
        operations[f"{dlq_topic}.send"] = _operation(
            "send",
            dlq_topic,
            [],
            title=f"Dead-letter to {dlq_topic}",
            description="A poison message at once; a message whose handler keeps failing after its retries.",
            message_ids=[DEAD_LETTER],
        )

    components = dict(generated.get("components") or {})
    components.pop("messages", None)
    components["schemas"] = schemas
    components["messages"] = messages
    document = {
        **generated,
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": components,
    }
    return AsyncAPIDocument(document)


# --- parts ---------------------------------------------------------------------------------------


def _by_topic(specs: Iterable[EventSpec]) -> dict[str, list[EventSpec]]:
    topics: dict[str, list[EventSpec]] = {}
    for spec in specs:
        topics.setdefault(spec.topic, []).append(spec)
    return {topic: sorted(found, key=lambda s: s.type) for topic, found in topics.items()}


def _pointer(*parts: str) -> str:
    """A JSON Pointer into the document (RFC 6901 escapes)."""
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _channel(topic: str, specs: list[EventSpec], servers: list[dict[str, str]]) -> dict[str, Any]:
    keys = sorted({s.key for s in specs})
    producers = sorted({s.producer for s in specs})
    return {
        "address": topic,
        "title": topic,
        "description": (
            f"Produced by {', '.join(producers)}. Each record's value is one CloudEvent (structured mode, "
            f"`{CONTENT_TYPE}`); its key is the event's `subject` ({', '.join(f'`data.{k}`' for k in keys)}), "
            "so one subject's events stay on one partition, in order."
        ),
        **({"servers": servers} if servers else {}),
        "messages": {s.type: {"$ref": _pointer("components", "messages", s.type)} for s in specs},
        "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
    }


def _operation(
    action: str,
    topic: str,
    specs: list[EventSpec],
    *,
    title: str,
    description: str,
    bindings: dict[str, Any] | None = None,
    message_ids: list[str] | None = None,
) -> dict[str, Any]:
    ids = message_ids if message_ids is not None else [s.type for s in specs]
    return {
        "action": action,
        "channel": {"$ref": _pointer("channels", topic)},
        "title": title,
        "description": description,
        "messages": [{"$ref": _pointer("channels", topic, "messages", i)} for i in ids],
        **({"bindings": bindings} if bindings else {}),
    }


def _message(spec: EventSpec) -> dict[str, Any]:
    more = "\n".join((spec.model.__doc__ or "").strip().splitlines()[1:]).strip()
    return {
        "name": spec.type,
        "title": spec.type,
        "summary": spec.description,
        "description": (
            (f"{more}\n\n" if more else "")
            + f"The whole CloudEvent (`type` `{spec.type}`, `source` `{spec.source}`) on `{spec.topic}`; "
            f"`data` is its payload. It validates as docs/events/{spec.type}.json does."
        ),
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": _pointer("components", "schemas", HEADERS)},
        "payload": {"$ref": _pointer("components", "schemas", spec.type)},
        "correlationId": {
            "description": "The visit or case the event belongs to: the CloudEvent's `correlationid` attribute.",
            "location": f"$message.payload#/{CORRELATION}",
        },
        "tags": [{"name": spec.producer}],
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": f"The event's `subject`, equal to `data.{spec.key}` (UTF-8).",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _envelope() -> Schema:
    schema = envelope_schema()
    schema.pop("$schema", None)
    properties = schema["properties"]
    properties["sequence"] = {**properties["sequence"], "description": SEQUENCE}
    properties["id"] = {
        **properties["id"],
        "description": (
            "Unique per event; a redelivery has the same id, so deduplicate on it. An event caused by "
            "another has an id derived from its cause's."
        ),
    }
    properties["subject"] = {
        **properties["subject"],
        "description": "The aggregate the event is about (a payload field, named by each message); also the Kafka key.",
    }
    properties["data"] = {**properties["data"], "description": "The payload; its schema depends on `type`."}
    schema["description"] = (
        "A CloudEvents 1.0 event in structured mode (the whole Kafka record value, "
        f"`content-type: {CONTENT_TYPE}`), with Golden Key Hall's extension attributes `correlationid`, "
        "`causationid` and `sequence`. `sequence` is an integer that orders the events of one `source` "
        "and `subject`: compare it as a number (see the attribute)."
    )
    return schema


def _headers() -> Schema:
    return {
        "type": "object",
        "description": "Kafka record headers (UTF-8 values).",
        "properties": {
            "content-type": {
                "type": "string",
                "const": CONTENT_TYPE,
                "description": "Structured-mode CloudEvent: the whole event is the value.",
            },
            "correlation_id": {
                "type": "string",
                "description": (
                    "Written by the producer's Kafka library (FastStream), a new value per record. Not "
                    "the event's correlation id (that is `correlationid` in the value): ignore it."
                ),
            },
        },
        "required": ["content-type"],
    }


def _dead_letter_headers() -> Schema:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "Why and from where a message was dead-lettered (UTF-8 values).",
        "properties": {
            "x-original-topic": {**text, "description": "The topic it was read from."},
            "x-original-partition": {**text, "pattern": "^[0-9]+$"},
            "x-original-offset": {**text, "pattern": "^[0-9]+$"},
            "x-error-kind": {
                **text,
                "description": (
                    "`malformed`, `unknown_type` or `schema_violation` (a poison message), or "
                    "`handler_error` (the handler kept failing)."
                ),
            },
            "x-error": {**text, "maxLength": 1000, "description": "What went wrong, for a person."},
            "x-service": {**text, "description": "The service that gave up on it."},
            "x-failed-at": {**text, "format": "date-time"},
            "content-type": {**text, "description": "The original record's, when it had one."},
        },
        "required": [
            "x-original-topic",
            "x-original-partition",
            "x-original-offset",
            "x-error-kind",
            "x-error",
            "x-service",
            "x-failed-at",
        ],
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A message this service could not process, unchanged.",
        "description": (
            "The value is the original record's bytes, whatever they were (usually a CloudEvent, "
            "possibly not JSON at all), and the key is the original key."
        ),
        "contentType": "application/octet-stream",
        "headers": {"$ref": _pointer("components", "schemas", DEAD_LETTER_HEADERS)},
        "payload": {"description": "The original record's value, unchanged."},
    }


def _add_schemas(schemas: dict[str, Schema], spec: EventSpec) -> None:
    """The schema of one event type's whole CloudEvent, nested definitions moved to components."""
    full = event_schema(spec)
    for name, definition in (full.pop("$defs", None) or {}).items():
        definition = _rebase(definition)
        if schemas.get(name, definition) != definition:
            raise ValueError(f"two payload models define {name!r} differently; rename one")
        schemas[name] = definition
    # Self-contained rather than `allOf` the envelope: viewers then show this type's `data`.
    envelope = _envelope()
    pinned = full["properties"]
    schemas[spec.type] = {
        **envelope,
        "title": spec.type,
        "description": f"{spec.description} The whole CloudEvent: the `{ENVELOPE}` envelope with this type's `data`.",
        "properties": {
            **envelope["properties"],
            "type": pinned["type"],
            "source": pinned["source"],
            "subject": {**envelope["properties"]["subject"], "description": pinned["subject"]["description"]},
            "data": _rebase(pinned["data"]),
        },
    }


def _rebase(schema: Any) -> Any:
    """Point pydantic's `#/$defs/...` references at `#/components/schemas/...`."""
    if isinstance(schema, dict):
        return {
            k: (
                _pointer("components", "schemas", v.removeprefix("#/$defs/"))
                if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                else _rebase(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema
