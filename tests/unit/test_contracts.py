"""The event contracts: what DESIGN §3 promises other teams, and the schemas committed in docs/events."""

from __future__ import annotations

import contextlib
import json
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import AwareDatetime

import goldenkey.contracts as contracts
from goldenkey.contracts import (
    EVENTS,
    TOPICS,
    CloudEvent,
    EventData,
    MalformedEvent,
    PoisonMessage,
    SchemaViolation,
    UnknownEventType,
    derived_event_id,
    envelope_for,
    parse_event,
    schemas,
)
from goldenkey.contracts.__main__ import main as contracts_cli
from goldenkey.contracts.registry import MAX_EVENT_BYTES, ForgedSource, OversizeEvent, TooDeep

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "events"
REGENERATE = "PYTHONPATH=shared/src .venv/bin/python -m goldenkey.contracts export-schemas docs/events"

# DESIGN §3, copied by hand on purpose: the registry must match the contract, not the other way round.
DESIGNED_TOPICS: dict[str, list[str]] = {
    "queue.tickets": [
        "ticket.issued",
        "ticket.approaching",
        "ticket.called",
        "ticket.recalled",
        "ticket.service_started",
        "ticket.completed",
        "ticket.no_show",
        "ticket.transferred",
        "ticket.cancelled",
        "ticket.paged",
    ],
    "queue.windows": [
        "window.opened",
        "window.paused",
        "window.resumed",
        "window.closed",
        "coverage.gap_opened",
        "coverage.gap_closed",
    ],
    "concierge.loans": ["item.lent", "item.returned", "item.overdue", "item.lost", "item.return_requested"],
    "concierge.stock": ["consumable.dispensed", "stock.low", "stock.restocked"],
    "concierge.assistance": [
        "assistance.requested",
        "assistance.assigned",
        "assistance.accepted",
        "assistance.completed",
        "assistance.escalated",
        "assistance.cancelled",
    ],
    "parking.vehicles": [
        "vehicle.arrived",
        "vehicle.departed",
        "vehicle.plate_corrected",  # added with the parking service: docs/architecture.md §3
        "lot.full",
        "lot.available",
        "patrol.completed",
        "patrol.missed",
    ],
    "parking.incidents": [
        "tyre.alert",
        "incident.reported",
        "owner.notified",
        "incident.acknowledged",
        "incident.resolved",
        "incident.escalated",
    ],
    "feedback.ratings": ["rating.submitted", "rating.appealed", "rating.appeal_decided"],
    "feedback.messages": ["message.posted", "praise.received"],
    "feedback.complaints": [
        "complaint.opened",
        "complaint.verified",
        "complaint.rectified",
        "complaint.followed_up",
        "complaint.closed",
        "complaint.overdue",
    ],
}
DESIGNED_EVENTS = {event_type: topic for topic, types_ in DESIGNED_TOPICS.items() for event_type in types_}

# DESIGN §3's minimum payloads: these fields must exist (required unless marked optional there).
DESIGNED_FIELDS: dict[str, tuple[list[str], list[str]]] = {
    "ticket.issued": (
        ["ticket_id", "number", "category", "item_code", "channel", "issued_at"],
        ["priority", "needs", "plate_hash"],
    ),
    "ticket.completed": (["ticket_id", "outcome", "window_id", "wait_s", "service_s"], []),
    "ticket.paged": (["ticket_id", "message"], ["window_id", "incident_id"]),
    "tyre.alert": (
        ["incident_id"],
        ["kind", "space", "plate_masked", "plate_hash", "ticket_id", "guard_id", "reported_at"],
    ),
    "incident.reported": (
        ["incident_id", "kind"],
        ["space", "plate_masked", "plate_hash", "ticket_id", "guard_id", "reported_at"],
    ),
    "item.lent": (["loan_id", "sku", "unit_id", "due_at"], ["ticket_id"]),
    "assistance.requested": (["assistance_id", "kind"], ["ticket_id", "incident_id"]),
    "assistance.completed": (["assistance_id", "kind"], ["ticket_id", "incident_id"]),
    "incident.resolved": (["incident_id", "resolution"], ["ticket_id"]),
}

# --- building real examples from the models ------------------------------------------------------

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SAMPLE_STRINGS = {
    "number": "B023",
    "plate_hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "plate_masked": "陕A***45",
    "reasons": "attitude",
}


def _value(name: str, annotation: Any) -> Any:
    """A valid value for a field, from its type: enough to build an example of every payload."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _value(name, inner)
    if origin is Annotated:
        return _value(name, get_args(annotation)[0])
    if origin is Literal:
        return get_args(annotation)[-1]
    if origin is list:
        return [_value(name, get_args(annotation)[0])]
    if annotation is bool:
        return True
    if annotation is int:
        return 3  # inside every int range the contracts use (scores 1..5, counts, call_count >= 2)
    if annotation is float:
        return 12.5
    if annotation in (datetime, AwareDatetime):
        return NOW
    if annotation is str:  # previous_plate_hash is a plate_hash too
        return next((v for k, v in SAMPLE_STRINGS.items() if name == k or name.endswith(f"_{k}")), f"{name}-1")
    raise TypeError(f"no example value for {name}: {annotation!r}")


def example(model: type[EventData], *, full: bool) -> EventData:
    """A payload with every required field set, and with every optional one too when `full`."""
    values = {
        name: _value(name, field.annotation)
        for name, field in model.model_fields.items()
        if full or field.is_required()
    }
    return model.model_validate(values)


def serialized(data: EventData) -> dict[str, Any]:
    """The event as it travels on Kafka, decoded back to JSON."""
    envelope = envelope_for(data, time=NOW, correlationid="visit-1", causationid="cause-1", sequence=1)
    document: dict[str, Any] = json.loads(envelope.to_bytes())
    return document


def committed_schema(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((DOCS / schemas.schema_file(event_type)).read_text(encoding="utf-8"))
    return schema


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    checker = FormatChecker()

    # jsonschema's own date-time check needs an extra package; CloudEvents times are RFC 3339.
    @checker.checks("date-time", raises=ValueError)
    def is_aware_datetime(value: object) -> bool:
        return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None

    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=checker)


def raw(event_type: str, data: dict[str, Any]) -> bytes:
    spec = EVENTS[event_type]
    document = {
        "specversion": "1.0",
        "id": "e-1",
        "type": event_type,
        "source": spec.source,
        "time": NOW.isoformat(),
        "subject": "s-1",
        "data": data,
    }
    return json.dumps(document).encode()


def ticket_issued_data(**changes: Any) -> dict[str, Any]:
    return {
        "ticket_id": "t-1",
        "number": "B023",
        "category": "B",
        "item_code": "B-0012",
        "channel": "kiosk",
        "needs": ["wheelchair"],
        "issued_at": NOW.isoformat(),
        **changes,
    }


def rating_data(**changes: Any) -> dict[str, Any]:
    return {
        "rating_id": "r-1",
        "subject_type": "ticket",
        "subject_id": "t-1",
        "score": 5,
        "bad_review": False,
        **changes,
    }


# --- the committed schemas -----------------------------------------------------------------------


def test_committed_schemas_match_the_code() -> None:
    problems = schemas.differences(DOCS)
    assert not problems, f"docs/events is out of date ({', '.join(problems)}); regenerate with `{REGENERATE}`"


def test_exporting_twice_writes_identical_bytes(tmp_path: Path) -> None:
    schemas.export(tmp_path / "a")
    schemas.export(tmp_path / "b")
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert first == second
    assert len(first) == len(EVENTS) + 2  # one per type, the envelope, the index


def test_check_schemas_lists_files_that_differ_are_missing_or_are_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert contracts_cli(["export-schemas", str(tmp_path)]) == 0
    assert contracts_cli(["check-schemas", str(tmp_path)]) == 0

    (tmp_path / "ticket.issued.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "stock.low.json").unlink()
    (tmp_path / "ticket.teleported.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()

    assert contracts_cli(["check-schemas", str(tmp_path)]) == 1
    report = capsys.readouterr().err
    assert "differs: ticket.issued.json" in report
    assert "missing: stock.low.json" in report
    assert "extra: ticket.teleported.json" in report
    assert "export-schemas" in report


def test_export_removes_schemas_of_types_that_no_longer_exist(tmp_path: Path) -> None:
    (tmp_path / "ticket.teleported.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("kept\n", encoding="utf-8")
    assert schemas.export(tmp_path) == ["ticket.teleported.json"]
    assert (tmp_path / "README.md").exists()
    assert schemas.differences(tmp_path) == []


def test_the_index_names_every_event_with_its_topic_key_producer_and_schema() -> None:
    entries = json.loads((DOCS / "index.json").read_text(encoding="utf-8"))
    by_type = {entry["type"]: entry for entry in entries}
    assert by_type.keys() == DESIGNED_EVENTS.keys()
    for event_type, entry in by_type.items():
        assert entry["topic"] == DESIGNED_EVENTS[event_type]
        assert entry["producer"] == entry["topic"].split(".")[0]
        assert entry["key"]
        assert entry["description"]
        assert (DOCS / entry["schema"]).is_file()


def test_the_events_readme_mentions_every_event_type() -> None:
    readme = (DOCS / "README.md").read_text(encoding="utf-8")
    missing = [event_type for event_type in DESIGNED_EVENTS if f"`{event_type}`" not in readme]
    assert not missing, f"docs/events/README.md does not mention {missing}"


# --- the registry against DESIGN §3 --------------------------------------------------------------


def test_every_designed_topic_is_registered_and_no_other() -> None:
    assert set(TOPICS) == set(DESIGNED_TOPICS)
    assert not [name for name in TOPICS if name.startswith("dlq.")]


def test_every_designed_event_type_is_registered_on_its_designed_topic() -> None:
    registered = {event_type: spec.topic for event_type, spec in EVENTS.items()}
    assert registered == DESIGNED_EVENTS


def test_each_event_is_produced_by_the_service_that_owns_its_topic() -> None:
    wrong = {t: s.producer for t, s in EVENTS.items() if s.producer != s.topic.split(".")[0]}
    assert not wrong


def test_every_event_type_has_a_one_line_docstring_saying_when_it_is_emitted() -> None:
    for event_type, spec in EVENTS.items():
        doc = (spec.model.__doc__ or "").strip()
        assert doc, f"{event_type}: {spec.model.__name__} needs a docstring saying when it is emitted"
        assert "\n" not in doc, f"{event_type}: {spec.model.__name__}'s docstring should be one line"


def test_designed_payload_fields_are_there_and_required_only_where_design_requires_them() -> None:
    for event_type, (required, optional) in DESIGNED_FIELDS.items():
        fields = EVENTS[event_type].model.model_fields
        assert not [name for name in required + optional if name not in fields], f"{event_type} lacks fields"
        assert [name for name in required if not fields[name].is_required()] == [], f"{event_type}: required"
        assert [name for name in optional if fields[name].is_required()] == [], f"{event_type}: optional"


def test_every_event_is_keyed_by_a_required_field_of_its_payload() -> None:
    for event_type, spec in EVENTS.items():
        field = spec.model.model_fields.get(spec.key)
        assert field is not None, f"{event_type} key {spec.key!r} is not a field"
        assert field.is_required(), f"{event_type} key {spec.key!r} is optional"
        data = example(spec.model, full=False)
        assert envelope_for(data).subject == getattr(data, spec.key)


def test_no_event_carries_raw_personal_data() -> None:
    # Plates, phones and names travel only hashed or masked (DESIGN §8.2); a rater stays anonymous.
    raw_fields = {"plate", "phone", "name", "contact", "borrower", "rater_id", "user_id", "citizen_id"}
    allowed = ("plate_hash", "plate_masked", "phone_masked")  # previous_plate_hash too
    for event_type, spec in EVENTS.items():
        for name in spec.model.model_fields:
            personal = name in raw_fields or (("plate" in name or "phone" in name) and not name.endswith(allowed))
            assert not personal, f"{event_type} carries {name}"


@pytest.mark.parametrize(
    ("plate_hash", "plate_masked"),
    [(SAMPLE_STRINGS["plate_hash"], "陕A12345"), ("陕A12345", "陕A***45")],
    ids=["raw-plate-as-masked", "raw-plate-as-hash"],
)
def test_a_raw_plate_is_refused_where_a_masked_or_hashed_one_is_expected(plate_hash: str, plate_masked: str) -> None:
    data = {
        "visit_id": "v-1",
        "plate_hash": plate_hash,
        "plate_masked": plate_masked,
        "arrived_at": NOW.isoformat(),
    }
    with pytest.raises(SchemaViolation):
        parse_event(raw("vehicle.arrived", data))


# --- parse_event ---------------------------------------------------------------------------------


def test_parse_event_returns_the_envelope_and_the_typed_payload() -> None:
    envelope, data = parse_event(raw("ticket.issued", ticket_issued_data(priority="elderly")))
    assert isinstance(envelope, CloudEvent)
    assert envelope.type == "ticket.issued"
    assert isinstance(data, contracts.TicketIssued)
    assert (data.priority, data.needs, data.issued_at) == ("elderly", ["wheelchair"], NOW)


def test_parse_event_ignores_data_fields_it_does_not_know() -> None:
    _, data = parse_event(raw("ticket.issued", ticket_issued_data(favourite_colour="gold")))
    assert isinstance(data, contracts.TicketIssued)
    assert data.ticket_id == "t-1"
    assert "favourite_colour" not in data.model_dump()


def test_optional_fields_may_be_absent_or_null() -> None:
    _, absent = parse_event(raw("ticket.paged", {"ticket_id": "t-1", "message": "Your car's tyre is flat"}))
    _, null = parse_event(raw("ticket.paged", {"ticket_id": "t-1", "message": "Hi", "window_id": None}))
    assert isinstance(absent, contracts.TicketPaged)
    assert isinstance(null, contracts.TicketPaged)
    assert (absent.window_id, null.window_id) == (None, None)


@pytest.mark.parametrize(
    "message",
    [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'"ticket.issued"', b"null"],
    ids=["bad-json", "bad-encoding", "array", "string", "null"],
)
def test_parse_event_rejects_what_is_not_a_json_object_as_malformed(message: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(message)


@pytest.mark.parametrize("missing", ["id", "type", "source", "time", "subject", "data"])
def test_parse_event_rejects_an_envelope_missing_a_required_attribute_as_malformed(missing: str) -> None:
    document = json.loads(raw("ticket.issued", ticket_issued_data()))
    del document[missing]
    with pytest.raises(MalformedEvent):
        parse_event(json.dumps(document))


def test_parse_event_rejects_an_unknown_type() -> None:
    document = json.loads(raw("ticket.issued", ticket_issued_data()))
    document["type"] = "ticket.teleported"
    with pytest.raises(UnknownEventType):
        parse_event(json.dumps(document))


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("rating.submitted", rating_data(score=6)),
        ("rating.submitted", rating_data(score=0)),
        ("rating.submitted", rating_data(subject_type="window")),
        ("ticket.issued", ticket_issued_data(channel="fax")),
        ("ticket.issued", ticket_issued_data(needs=["jetpack"])),
        ("ticket.issued", ticket_issued_data(issued_at="2025-03-14T09:26:53")),
        ("ticket.issued", ticket_issued_data(ticket_id="t" * 65)),
        (
            "ticket.completed",
            {"ticket_id": "t-1", "outcome": "done", "window_id": "W01", "wait_s": -1, "service_s": 1},
        ),
        ("incident.reported", {"incident_id": "i-1", "kind": "alien_landing"}),
        ("message.posted", {"message_id": "m-1", "text": "x" * 1001}),
        ("item.lent", {"loan_id": "l-1", "sku": "umbrella", "unit_id": "u-1"}),
    ],
    ids=[
        "score-6",
        "score-0",
        "unknown-subject-type",
        "unknown-channel",
        "unknown-need",
        "naive-time",
        "id-too-long",
        "negative-wait",
        "unknown-incident-kind",
        "text-too-long",
        "required-field-missing",
    ],
)
def test_parse_event_rejects_bad_data_as_a_schema_violation_and_so_does_the_exported_schema(
    event_type: str, data: dict[str, Any]
) -> None:
    message = raw(event_type, data)
    with pytest.raises(SchemaViolation):
        parse_event(message)
    # The published schema must refuse what the code refuses, or producers of other teams drift.
    assert not validator(committed_schema(event_type)).is_valid(json.loads(message))


@pytest.mark.parametrize(
    "message",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 30_000 + b"1" + b"}" * 30_000],
    ids=["arrays", "objects"],
)
def test_parse_event_calls_json_nested_too_deep_to_decode_poison_not_a_recursion_error(message: bytes) -> None:
    with pytest.raises(TooDeep) as poison:
        parse_event(message)
    assert poison.value.kind == "too_deep"
    assert isinstance(poison.value, MalformedEvent)


def test_a_deeply_nested_payload_inside_a_valid_envelope_is_poison_too() -> None:
    document = json.loads(raw("ticket.issued", ticket_issued_data()))
    text = json.dumps(document).replace('"data": {', '"data": {"deep": ' + "[" * 50_000 + "]" * 50_000 + ", ", 1)
    with pytest.raises(TooDeep):
        parse_event(text)


def test_parse_event_refuses_an_event_larger_than_the_maximum_before_decoding_it() -> None:
    assert MAX_EVENT_BYTES == 256 * 1024
    small = raw("ticket.issued", ticket_issued_data())
    padded = json.loads(small)
    padded["data"]["padding"] = "x" * MAX_EVENT_BYTES  # valid but for its size: readers ignore unknown fields
    with pytest.raises(OversizeEvent) as poison:
        parse_event(json.dumps(padded))
    assert poison.value.kind == "oversize"
    with pytest.raises(OversizeEvent):
        parse_event(small, max_bytes=len(small) - 1)
    with pytest.raises(OversizeEvent):  # by its bytes, not its characters
        parse_event(b'"' + "陕".encode() * 400 + b'"', max_bytes=1000)
    assert parse_event(small, max_bytes=len(small))[0].type == "ticket.issued"


@pytest.mark.parametrize("source", ["goldenkey/parking", "goldenkey/feedback", "goldenkey/queues"])
def test_parse_event_refuses_an_event_whose_source_is_not_its_type_s_producer(source: str) -> None:
    document = json.loads(raw("ticket.issued", ticket_issued_data()))
    document["source"] = source
    with pytest.raises(ForgedSource) as poison:
        parse_event(json.dumps(document))
    assert poison.value.kind == "forged_source"
    assert "goldenkey/queue" in str(poison.value)


def test_every_registered_type_is_accepted_from_its_own_producer_only() -> None:
    for event_type, spec in EVENTS.items():
        document = json.loads(raw(event_type, {}))
        assert document["source"] == f"goldenkey/{spec.producer}"
        with contextlib.suppress(SchemaViolation):  # {} is no valid payload for most: the source passed
            parse_event(json.dumps(document))
        other = next(s for s in ("goldenkey/queue", "goldenkey/parking") if s != spec.source)
        with pytest.raises(ForgedSource):
            parse_event(json.dumps({**document, "source": other}))


def test_the_poison_kinds_are_the_dead_letter_kinds_the_docs_name() -> None:
    kinds = {
        cls.kind for cls in (MalformedEvent, TooDeep, OversizeEvent, UnknownEventType, ForgedSource, SchemaViolation)
    }
    assert kinds == {"malformed", "too_deep", "oversize", "unknown_type", "forged_source", "schema_violation"}
    assert PoisonMessage.kind == "poison"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())))
def test_parse_event_turns_any_garbage_into_a_poison_message(message: bytes) -> None:
    # Anything else would escape the dead-letter path and stop the consumer.
    with pytest.raises(PoisonMessage):
        parse_event(message)


@given(st.sampled_from(sorted(EVENTS)), st.dictionaries(st.sampled_from(["ticket_id", "score", "kind"]), JSON))
def test_parse_event_raises_nothing_but_a_schema_violation_for_any_payload(
    event_type: str, data: dict[str, Any]
) -> None:
    # A few random payloads are valid (ticket.cancelled needs only a ticket_id); the rest must be
    # refused as schema violations, never with an error the dead-letter path does not expect.
    with contextlib.suppress(SchemaViolation):
        parse_event(raw(event_type, data))


# --- the exported schemas against real events ----------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(DESIGNED_EVENTS))
@pytest.mark.parametrize("full", [False, True], ids=["required-only", "every-field"])
def test_every_exported_schema_accepts_a_real_serialized_event(event_type: str, full: bool) -> None:
    document = serialized(example(EVENTS[event_type].model, full=full))
    errors = [error.message for error in validator(committed_schema(event_type)).iter_errors(document)]
    assert not errors
    assert not list(validator(json.loads((DOCS / "envelope.json").read_text())).iter_errors(document))
    _, data = parse_event(json.dumps(document))
    assert data == example(EVENTS[event_type].model, full=full)


def test_an_event_schema_refuses_an_event_of_another_type_or_source() -> None:
    document = serialized(example(contracts.TicketCompleted, full=True))
    schema = validator(committed_schema("ticket.completed"))
    assert schema.is_valid(document)
    assert not schema.is_valid({**document, "type": "ticket.issued"})
    assert not schema.is_valid({**document, "source": "goldenkey/parking"})


def test_event_schemas_carry_their_topic_and_kafka_key() -> None:
    schema = committed_schema("coverage.gap_opened")
    assert schema["x-topic"] == "queue.windows"
    assert schema["x-kafka-key"] == "category"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- ids of caused events -------------------------------------------------------------------------


def test_derived_event_id_is_the_same_for_the_same_cause_type_and_subject() -> None:
    assert derived_event_id("cause-1", "assistance.requested", "a-1") == derived_event_id(
        "cause-1", "assistance.requested", "a-1"
    )


def test_derived_event_id_differs_per_cause_type_and_subject() -> None:
    ids = {
        derived_event_id("cause-1", "assistance.requested", "a-1"),
        derived_event_id("cause-2", "assistance.requested", "a-1"),
        derived_event_id("cause-1", "assistance.assigned", "a-1"),
        derived_event_id("cause-1", "assistance.requested", "a-2"),
    }
    assert len(ids) == 4


def test_a_redelivered_cause_yields_the_same_event_id() -> None:
    data = contracts.AssistanceRequested(assistance_id="a-1", kind="wheelchair")
    first = envelope_for(data, causationid="ticket-issued-event-1")
    again = envelope_for(data, causationid="ticket-issued-event-1")
    uncaused = {envelope_for(data).id, envelope_for(data).id}
    assert first.id == again.id == derived_event_id("ticket-issued-event-1", "assistance.requested", data.assistance_id)
    assert len(uncaused) == 2


def test_envelope_for_names_type_source_and_subject_from_the_registry() -> None:
    envelope = envelope_for(example(contracts.StockLow, full=True), sequence=7)
    assert (envelope.type, envelope.source, envelope.subject, envelope.sequence) == (
        "stock.low",
        "goldenkey/concierge",
        "sku-1",
        7,
    )
