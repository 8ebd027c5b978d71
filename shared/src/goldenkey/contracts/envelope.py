"""The CloudEvents 1.0 envelope every Golden Key Hall event travels in (structured mode, JSON)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"
ID_NAMESPACE = uuid.UUID("6f1c7a52-3f0e-4c51-9a4e-2d7b1b0c9e11")


class EventData(BaseModel):
    """Base of every event payload (`data`). Readers ignore fields they don't know."""

    # Field docstrings become descriptions in the exported JSON Schemas.
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured mode, with Golden Key Hall's extensions."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    source: str = Field(pattern=r"^goldenkey/[a-z]+$")
    time: AwareDatetime
    subject: str = Field(min_length=1, max_length=200)
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    correlationid: str | None = Field(default=None, max_length=200)
    """The visit or case the event belongs to."""
    causationid: str | None = Field(default=None, max_length=200)
    """The id of the event that caused this one, if any."""
    sequence: int | None = Field(default=None, ge=0)
    """Per-subject version, increasing."""

    def to_bytes(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json", exclude_none=True), ensure_ascii=False, separators=(",", ":")
        ).encode()


def derived_event_id(causation_id: str, event_type: str, subject: str) -> str:
    """The id of an event caused by another: the same cause always yields the same id."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{causation_id}|{event_type}|{subject}"))


def derived_id(*parts: str) -> str:
    """A deterministic id for something created because of `parts` (an event id, a need…)."""
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(parts)))


def new_event_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)
