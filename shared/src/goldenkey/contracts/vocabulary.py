"""The hall's shared words: enums and constrained strings that events and services both use.

Adding a value to one of these Literals is a breaking change for readers that validate against the
old list (they would dead-letter the event), so a new value needs a `.v2` event type, not an edit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt

# --- constrained strings -------------------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=64)]
"""Any identifier: ticket, window, loan, unit, sku, category, staff, guard…"""

Text = Annotated[str, Field(min_length=1, max_length=1000)]
"""Free text typed by a person (a note, a message, a resolution)."""

ShortText = Annotated[str, Field(min_length=1, max_length=200)]
"""A short human-readable label (a location in the hall)."""

TicketNumber = Annotated[str, Field(pattern=r"^[A-Z][0-9]{3,5}$", max_length=8)]
"""What the display shows: the category's ticket letter and the day's sequence number ("B023")."""

PlateHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A plate as HMAC-SHA256 hex digest (keyed, so it cannot be reversed by guessing plates)."""

PlateMasked = Annotated[str, Field(pattern=r"^[^*]*\*+[^*]*$", min_length=2, max_length=16)]
"""A plate with its middle hidden ("陕A***45"); the `*` is required so a raw plate cannot slip through."""

Seconds = NonNegativeFloat
Count = NonNegativeInt
Score = Annotated[int, Field(ge=1, le=5)]
"""The five-level government-service scale: 5 very satisfied … 1 very unsatisfied."""

# --- queue -----------------------------------------------------------------------------------------

Channel = Literal["kiosk", "app", "staff"]
Priority = Literal["elderly", "disabled", "pregnant", "with_infant", "appointment"]
Need = Literal["wheelchair", "reading_glasses", "escort", "proxy_service", "mother_baby_room"]
Outcome = Literal["done", "needs_materials", "referred"]
PauseReason = Literal["lunch", "break"]

# --- concierge -------------------------------------------------------------------------------------

AssistanceKind = Literal["proxy_service", "escort", "wheelchair", "mother_baby_room", "vehicle_help", "other"]
ReturnCondition = Literal["ok", "damaged", "lost"]
"""How a unit comes back (`POST /loans/{id}/return`); `lost` is announced as `item.lost`."""
ReturnedCondition = Literal["ok", "damaged"]
"""The conditions `item.returned` carries: a damaged unit goes to maintenance, not the shelf."""
ReturnReminderReason = Literal["due_soon", "visit_ended"]

# --- parking ---------------------------------------------------------------------------------------

IncidentKind = Literal["flat_tyre", "lights_on", "window_open", "blocking", "damage", "other"]
EscalationReason = Literal["no_ticket", "not_paged"]
VehicleSource = Literal["camera", "guard"]
"""Who saw a car come or go: the gate's camera, or a guard who typed the plate."""

# --- feedback --------------------------------------------------------------------------------------

SubjectType = Literal["ticket", "assistance", "incident"]
RatingReason = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")]
"""attitude, quality, efficiency, environment…: DESIGN leaves the list open, so a slug, not an enum."""
MessageKind = Literal["praise", "suggestion", "complaint"]
AppealGround = Literal["mistaken", "malicious"]
AppealVerdict = Literal["upheld", "rejected"]
ComplaintOrigin = Literal["bad_review", "message", "other"]
ComplaintComplexity = Literal["simple", "complex"]
ComplaintStage = Literal["verify", "rectify", "follow_up"]
"""The stages that have a deadline; closing has none."""

__all__ = [
    "AppealGround",
    "AppealVerdict",
    "AssistanceKind",
    "Channel",
    "ComplaintComplexity",
    "ComplaintOrigin",
    "ComplaintStage",
    "Count",
    "EscalationReason",
    "Id",
    "IncidentKind",
    "MessageKind",
    "Need",
    "Outcome",
    "PauseReason",
    "PlateHash",
    "PlateMasked",
    "Priority",
    "RatingReason",
    "ReturnCondition",
    "ReturnReminderReason",
    "ReturnedCondition",
    "Score",
    "Seconds",
    "ShortText",
    "SubjectType",
    "Text",
    "TicketNumber",
    "VehicleSource",
]
