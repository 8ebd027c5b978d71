"""Which event types exist, which payload model each has and on which topic it travels."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from goldenkey.contracts.envelope import CloudEvent, EventData, derived_event_id, new_event_id, utcnow


@dataclass(frozen=True)
class EventSpec:
    type: str
    topic: str
    # builtins.type: inside this class `type` is the field above.
    model: builtins.type[EventData]
    producer: str
    """The service that emits it (`source` is `goldenkey/<producer>`)."""
    key: str = ""
    """The payload field whose value is the event's `subject` and so its Kafka key."""

    @property
    def source(self) -> str:
        return f"goldenkey/{self.producer}"

    @property
    def description(self) -> str:
        """When the event is emitted: the first line of its model's docstring."""
        return (self.model.__doc__ or "").strip().splitlines()[0]


EVENTS: dict[str, EventSpec] = {}
TOPICS: dict[str, str] = {}
"""topic -> what its Kafka key is."""

M = TypeVar("M", bound=type[EventData])


def topic(name: str, key: str) -> str:
    TOPICS[name] = key
    return name


def event(type_: str, *, topic: str, producer: str, key: str | None = None) -> Callable[[M], M]:
    """Register a payload model as the `data` of event type `type_` on `topic`.

    `key` names the payload field that becomes the subject (and Kafka key); it defaults to the
    topic's key, which must then be a field name.
    """

    def register(model: M) -> M:
        if type_ in EVENTS:
            raise ValueError(f"event type {type_!r} registered twice")
        if topic not in TOPICS:
            raise ValueError(f"event type {type_!r} names unknown topic {topic!r}")
        if not (model.__doc__ or "").strip():
            raise ValueError(f"event type {type_!r}: {model.__name__} needs a docstring saying when it is emitted")
        key_field = key or TOPICS[topic]
        payload: type[EventData] = model
        field = payload.model_fields.get(key_field)
        # The subject must always be there, or one aggregate's events could land on two partitions.
        if field is None or not field.is_required():
            raise ValueError(f"event type {type_!r}: key {key_field!r} is not a required field of {model.__name__}")
        EVENTS[type_] = EventSpec(type_, topic, model, producer, key_field)
        model.__event_type__ = type_  # type: ignore[attr-defined]
        return model

    return register


def subject_of(data: EventData) -> str:
    """The subject (and Kafka key) of an event carrying `data`."""
    return str(getattr(data, spec_for(type(data)).key))


def envelope_for(
    data: EventData,
    *,
    time: datetime | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    sequence: int | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """Wrap a payload in its CloudEvent. Type, source and subject come from the registry.

    An event caused by another gets an id derived from its cause, so a redelivered cause never
    yields a second, different event; pass `event_id` only to override that.
    """
    spec = spec_for(type(data))
    subject = subject_of(data)
    if event_id is None:
        event_id = derived_event_id(causationid, spec.type, subject) if causationid else new_event_id()
    return CloudEvent(
        id=event_id,
        type=spec.type,
        source=spec.source,
        time=time or utcnow(),
        subject=subject,
        data=data.model_dump(mode="json"),
        correlationid=correlationid,
        causationid=causationid,
        sequence=sequence,
    )


def dlq_topic(service: str) -> str:
    return f"dlq.{service}"


def spec_for(model: type[EventData]) -> EventSpec:
    type_ = getattr(model, "__event_type__", None)
    if type_ is None:
        raise LookupError(f"{model.__name__} is not a registered event payload")
    return EVENTS[type_]


MAX_EVENT_BYTES = 256 * 1024
"""The largest event `parse_event` accepts by default; a bigger record is poison ("oversize")."""


class PoisonMessage(ValueError):
    """A message no retry can fix: it goes to the dead-letter topic."""

    kind = "poison"


class MalformedEvent(PoisonMessage):
    kind = "malformed"


class TooDeep(MalformedEvent):
    """JSON nested deeper than the decoder goes (`[[[[…`): Python's decoder gives up with a RecursionError."""

    kind = "too_deep"


class OversizeEvent(PoisonMessage):
    kind = "oversize"


class UnknownEventType(PoisonMessage):
    kind = "unknown_type"


class ForgedSource(PoisonMessage):
    """An event whose `source` is not the service that emits its type."""

    kind = "forged_source"


class SchemaViolation(PoisonMessage):
    kind = "schema_violation"


def parse_event(raw: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> tuple[CloudEvent, EventData]:
    """Decode a structured-mode CloudEvent and validate its `data` against its type's model.

    Raises a `PoisonMessage` — and nothing else — for anything that is not a well-formed event of
    a known type from the service that emits that type."""
    size = len(raw.encode(errors="surrogatepass") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise OversizeEvent(f"{size} bytes, more than the {max_bytes} an event may have")
    try:
        return _parse(raw)
    except RecursionError:
        raise TooDeep("JSON nested too deeply to decode") from None


def _parse(raw: bytes | str) -> tuple[CloudEvent, EventData]:
    try:
        document: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedEvent(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedEvent("a CloudEvent must be a JSON object")
    try:
        envelope = CloudEvent.model_validate(document)
    except ValidationError as error:
        raise MalformedEvent(f"not a valid CloudEvent: {_errors(error)}") from None
    spec = EVENTS.get(envelope.type)
    if spec is None:
        raise UnknownEventType(f"unknown event type {envelope.type!r}")
    if envelope.source != spec.source:
        # A type has one producer (DESIGN §3): the envelope's pattern alone would let anyone speak for it.
        raise ForgedSource(f"{envelope.type} is emitted by {spec.source}, not {envelope.source}")
    try:
        data = spec.model.model_validate(envelope.data)
    except ValidationError as error:
        raise SchemaViolation(f"{envelope.type} data: {_errors(error)}") from None
    return envelope, data


def _errors(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()[:5])
