"""What the APIs accept from people: request bodies that refuse unknown fields, free text of visible
characters with no control characters, and the paging and filter parameters of list endpoints.

Lengths differ by field, so a model adds its own: `Annotated[Line, Field(max_length=100)]`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

_VISIBLE = r"[^\s\x00-\x1f\x7f]"
ONE_LINE = rf"^[^\x00-\x1f\x7f]*{_VISIBLE}[^\x00-\x1f\x7f]*$"
"""Something visible, on one line (a name, a label, a location)."""
SOME_LINES = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*{_VISIBLE}[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Something visible, over lines and tabs if need be (a note)."""

Line = Annotated[str, Field(min_length=1, pattern=ONE_LINE)]
Lines = Annotated[str, Field(min_length=1, pattern=SOME_LINES)]

PAGE = 100
"""How many items a list endpoint answers when the caller gives no `limit`."""
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items (100 unless given; 500 at most).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Skip this many items first (the next page).")]


class Strict(BaseModel):
    """A request body: a field the API does not know is a 422, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def matching(**filters: str | None) -> dict[str, Any]:
    """A MongoDB query of the filters a list's caller gave (those left out match anything)."""
    return {name: value for name, value in filters.items() if value}
