"""JSON Schemas (draft 2020-12) of the events, as committed under docs/events/ for other teams.

Each event type gets the schema of its whole CloudEvent: the envelope with `type` and `source`
pinned and `data` replaced by the payload model's schema. The output is deterministic so the
committed files can be compared with the code byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from goldenkey.contracts.envelope import CloudEvent
from goldenkey.contracts.registry import EVENTS, EventSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE_FILE = "envelope.json"
INDEX_FILE = "index.json"

Schema = dict[str, Any]


def envelope_schema() -> Schema:
    """The generic envelope: any event type, `data` any object."""
    schema = CloudEvent.model_json_schema(mode="validation")
    return {"$schema": DIALECT, **schema}


def event_schema(spec: EventSpec) -> Schema:
    """The full CloudEvent of one event type, with its topic and Kafka key as annotations."""
    schema = envelope_schema()
    properties = schema["properties"]
    properties["type"] = {"const": spec.type, "title": "Type", "type": "string"}
    properties["source"] = {"const": spec.source, "title": "Source", "type": "string"}
    properties["subject"] = {
        **properties["subject"],
        "description": f"The aggregate id, equal to data.{spec.key}; also the Kafka key.",
    }
    data = spec.model.model_json_schema(mode="validation")
    # Nested definitions must live at the root, where the payload's "#/$defs/..." refs point.
    if defs := data.pop("$defs", None):
        schema["$defs"] = defs
    properties["data"] = data
    schema.update(
        {
            "title": spec.type,
            "description": spec.description,
            "x-topic": spec.topic,
            "x-kafka-key": spec.key,
        }
    )
    return schema


def schema_file(event_type: str) -> str:
    return f"{event_type}.json"


def index() -> list[dict[str, str]]:
    """Every event type with its topic, key, producer and schema file, sorted by topic then type."""
    return [
        {
            "type": spec.type,
            "topic": spec.topic,
            "key": spec.key,
            "producer": spec.producer,
            "description": spec.description,
            "schema": schema_file(spec.type),
        }
        for spec in sorted(EVENTS.values(), key=lambda s: (s.topic, s.type))
    ]


def render(document: Any) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> content of everything `export-schemas` writes."""
    files = {schema_file(t): render(event_schema(spec)) for t, spec in EVENTS.items()}
    files[ENVELOPE_FILE] = render(envelope_schema())
    files[INDEX_FILE] = render(index())
    return dict(sorted(files.items()))


def export(directory: Path) -> list[str]:
    """Write every schema into `directory`, removing stale `*.json`; returns the names removed."""
    directory.mkdir(parents=True, exist_ok=True)
    files = expected_files()
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")
    stale = sorted(p.name for p in directory.glob("*.json") if p.name not in files)
    for name in stale:
        (directory / name).unlink()
    return stale


def differences(directory: Path) -> list[str]:
    """What in `directory` does not match the code: one line per differing, missing or extra file."""
    files = expected_files()
    present = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    problems = [f"missing: {name}" for name in files if name not in present]
    problems += [
        f"differs: {name}"
        for name in files
        if name in present and (directory / name).read_text(encoding="utf-8") != files[name]
    ]
    problems += [f"extra: {name}" for name in sorted(present - files.keys())]
    return problems
