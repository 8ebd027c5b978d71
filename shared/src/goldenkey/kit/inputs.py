"""Free text the APIs accept from people: visible characters, no control characters.

Lengths differ by field, so a model adds its own: `Annotated[Line, Field(max_length=100)]`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

_VISIBLE = r"[^\s\x00-\x1f\x7f]"
ONE_LINE = rf"^[^\x00-\x1f\x7f]*{_VISIBLE}[^\x00-\x1f\x7f]*$"
"""Something visible, on one line (a name, a label, a location)."""
SOME_LINES = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*{_VISIBLE}[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Something visible, over lines and tabs if need be (a note)."""

Line = Annotated[str, Field(min_length=1, pattern=ONE_LINE)]
Lines = Annotated[str, Field(min_length=1, pattern=SOME_LINES)]
